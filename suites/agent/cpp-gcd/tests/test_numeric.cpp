#include "numeric.hpp"
#include "tap.hpp"

TEST(gcd_basics) {
  CHECK(gcd(12, 18) == 6);
  CHECK(gcd(17, 5) == 1);
  CHECK(gcd(0, 9) == 9);
  CHECK(gcd(0, 0) == 0);
}

TEST(gcd_negative) {
  CHECK(gcd(-12, 18) == 6);
  CHECK(gcd(12, -18) == 6);
}

TEST(lcm_values) {
  CHECK(lcm(4, 6) == 12);
  CHECK(lcm(-3, 5) == 15);
  CHECK(lcm(0, 5) == 0);
}

TAP_MAIN
