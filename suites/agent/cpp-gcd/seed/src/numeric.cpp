#include "numeric.hpp"

#include <stdexcept>

long long gcd(long long a, long long b) { throw std::logic_error("not implemented"); }

long long lcm(long long a, long long b) { throw std::logic_error("not implemented"); }
