#pragma once

#include <cstddef>
#include <vector>

class BoundedStack {
 public:
  explicit BoundedStack(std::size_t capacity);
  void push(int value);
  int pop();
  int top() const;
  std::size_t size() const;

 private:
  std::size_t capacity_;
  std::vector<int> values_;
};
