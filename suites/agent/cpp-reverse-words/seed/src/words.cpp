#include "words.hpp"

std::string reverse_words(const std::string& text) { return text; }
