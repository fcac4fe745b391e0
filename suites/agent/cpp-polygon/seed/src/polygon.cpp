#include "polygon.hpp"

// TODO: implement the functions declared in polygon.hpp.
