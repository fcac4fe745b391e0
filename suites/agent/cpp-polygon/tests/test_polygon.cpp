#include <cmath>
#include <stdexcept>

#include "parse.hpp"
#include "polygon.hpp"
#include "tap.hpp"
#include "vec.hpp"

static bool near(double a, double b) { return std::fabs(a - b) < 1e-9; }

TEST(vector_ops) {
  Vec2 s = add({1, 2}, {3, 4});
  Vec2 d = sub({1, 2}, {3, 4});
  CHECK(near(s.x, 4) && near(s.y, 6));
  CHECK(near(d.x, -2) && near(d.y, -2));
  CHECK(near(cross({1, 0}, {0, 1}), 1));
  CHECK(near(length({3, 4}), 5));
}

TEST(triangle_area_and_perimeter) {
  std::vector<Vec2> triangle = {{0, 0}, {4, 0}, {4, 3}};
  CHECK(near(area(triangle), 6));
  CHECK(near(perimeter(triangle), 12));
}

TEST(clockwise_square) {
  std::vector<Vec2> square = {{0, 0}, {0, 2}, {2, 2}, {2, 0}};
  CHECK(near(area(square), 4));
  CHECK(near(area({{0, 0}, {1, 1}}), 0));
  CHECK(near(perimeter({{5, 5}}), 0));
}

TEST(parse_good) {
  std::vector<Vec2> points = parse_points("  0,0   4,0 4,3.5 ");
  CHECK(points.size() == 3);
  CHECK(near(points[2].x, 4) && near(points[2].y, 3.5));
  CHECK(parse_points("").empty());
}

TEST(parse_bad) {
  CHECK_THROWS(parse_points("1,2 3"));
  CHECK_THROWS(parse_points("a,b"));
  CHECK_THROWS(parse_points("1,2,3"));
}

TAP_MAIN
