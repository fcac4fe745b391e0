#include "tap.hpp"
#include "words.hpp"

TEST(simple) { CHECK(reverse_words("a b c") == "c b a"); }

TEST(extra_spaces) { CHECK(reverse_words("  the sky  is blue ") == "blue is sky the"); }

TEST(empty_and_single) {
  CHECK(reverse_words("") == "");
  CHECK(reverse_words("   ") == "");
  CHECK(reverse_words("word") == "word");
}

TAP_MAIN
