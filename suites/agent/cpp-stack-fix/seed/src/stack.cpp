#include "stack.hpp"

#include <stdexcept>

BoundedStack::BoundedStack(std::size_t capacity) : capacity_(capacity) {}

void BoundedStack::push(int value) {
  if (values_.size() > capacity_) throw std::overflow_error("stack is full");
  values_.push_back(value);
}

int BoundedStack::pop() {
  int value = values_.front();
  values_.pop_back();
  return value;
}

int BoundedStack::top() const { return values_.back(); }

std::size_t BoundedStack::size() const { return capacity_; }
