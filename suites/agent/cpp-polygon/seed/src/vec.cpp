#include "vec.hpp"

// TODO: implement the functions declared in vec.hpp.
