#pragma once

struct Vec2 {
  double x;
  double y;
};

Vec2 add(Vec2 a, Vec2 b);
Vec2 sub(Vec2 a, Vec2 b);
double cross(Vec2 a, Vec2 b);
double length(Vec2 a);
