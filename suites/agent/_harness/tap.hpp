// A tiny test harness that prints TAP: "1..N" first, then one "ok"/"not ok" line per test.
// The gate copies it into tests/ with the pristine tests, so the agent cannot change it; the gate requires N results, all "ok".
#pragma once
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

namespace tap {
struct Case { const char* name; void (*body)(); };
struct Failure { std::string what; };

inline std::vector<Case>& cases() { static std::vector<Case> all; return all; }
struct Register { Register(const char* name, void (*body)()) { cases().push_back({name, body}); } };

inline int run_all() {
  std::printf("1..%zu\n", cases().size());
  std::fflush(stdout);
  int failed = 0;
  std::size_t number = 0;
  for (const Case& test : cases()) {
    ++number;
    std::string why;
    try { test.body(); }
    catch (const Failure& failure) { why = failure.what; }
    catch (const std::exception& error) { why = std::string("exception: ") + error.what(); }
    catch (...) { why = "unknown exception"; }
    if (why.empty()) {
      std::printf("ok %zu - %s\n", number, test.name);
    } else {
      ++failed;
      std::printf("not ok %zu - %s\n# %s\n", number, test.name, why.c_str());
    }
    std::fflush(stdout);
  }
  return failed == 0 ? 0 : 1;
}
}  // namespace tap

#define TAP_JOIN2(a, b) a##b
#define TAP_JOIN(a, b) TAP_JOIN2(a, b)
#define TEST(name) \
  static void name(); \
  static tap::Register TAP_JOIN(tap_register_, name)(#name, name); \
  static void name()
#define CHECK(condition) \
  do { if (!(condition)) throw tap::Failure{std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": CHECK(" #condition ") failed"}; } while (0)
#define CHECK_THROWS(expression) \
  do { bool thrown = false; try { (void)(expression); } catch (...) { thrown = true; } \
       if (!thrown) throw tap::Failure{std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": expected an exception from " #expression}; } while (0)
#define TAP_MAIN int main() { return tap::run_all(); }
