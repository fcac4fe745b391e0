#include "parse.hpp"

// TODO: implement the functions declared in parse.hpp.
