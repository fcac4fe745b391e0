#pragma once

#include <string>
#include <vector>

#include "vec.hpp"

std::vector<Vec2> parse_points(const std::string& text);
