#pragma once

#include <string>

std::string reverse_words(const std::string& text);
