#pragma once

#include <vector>

#include "vec.hpp"

double area(const std::vector<Vec2>& points);
double perimeter(const std::vector<Vec2>& points);
