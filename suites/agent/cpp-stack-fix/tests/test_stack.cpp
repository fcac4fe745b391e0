#include <stdexcept>

#include "stack.hpp"
#include "tap.hpp"

TEST(push_pop_order) {
  BoundedStack stack(3);
  stack.push(1);
  stack.push(2);
  stack.push(3);
  CHECK(stack.size() == 3);
  CHECK(stack.top() == 3);
  CHECK(stack.pop() == 3);
  CHECK(stack.pop() == 2);
  CHECK(stack.size() == 1);
}

TEST(full_stack_refuses) {
  BoundedStack stack(2);
  stack.push(7);
  stack.push(8);
  bool refused = false;
  try { stack.push(9); } catch (const std::overflow_error&) { refused = true; }
  CHECK(refused);
  CHECK(stack.size() == 2);
  CHECK(stack.top() == 8);
}

TEST(empty_stack_refuses) {
  BoundedStack stack(1);
  bool pop_refused = false, top_refused = false;
  try { stack.pop(); } catch (const std::underflow_error&) { pop_refused = true; }
  try { stack.top(); } catch (const std::underflow_error&) { top_refused = true; }
  CHECK(pop_refused);
  CHECK(top_refused);
}

TEST(empty_size) {
  BoundedStack stack(5);
  CHECK(stack.size() == 0);
}

TAP_MAIN
