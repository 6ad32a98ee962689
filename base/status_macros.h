// LETHE_RETURN_IF_ERROR and LETHE_ASSIGN_OR_RETURN for absl::Status and
// absl::StatusOr. Our abseil (20220623) predates ABSL_RETURN_IF_ERROR; these
// two macros are the small replacement STYLE.md asks for, and the only pair
// for absl::Status in the tree.
#ifndef LETHE_BASE_STATUS_MACROS_H_
#define LETHE_BASE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Returns the status of `expr` from the enclosing function unless it is OK.
#define LETHE_RETURN_IF_ERROR(expr)             \
  do {                                          \
    if (absl::Status _st = (expr); !_st.ok()) { \
      return _st;                               \
    }                                           \
  } while (0)

#define LETHE_CONCAT_INNER_(a, b) a##b
#define LETHE_CONCAT_(a, b) LETHE_CONCAT_INNER_(a, b)

// LETHE_ASSIGN_OR_RETURN(auto x, FunctionReturningStatusOr());
// Returns the status from the enclosing function unless it is OK; else
// moves the value into `lhs`. Expands to several statements: not for the
// body of an unbraced `if`.
#define LETHE_ASSIGN_OR_RETURN(lhs, expr) \
  LETHE_ASSIGN_OR_RETURN_IMPL_(LETHE_CONCAT_(_statusor_, __LINE__), lhs, expr)
// NOLINTBEGIN(bugprone-macro-parentheses): `tmp` names a variable and `lhs`
// may be a declaration; neither can be parenthesised.
#define LETHE_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return std::move(tmp).status();     \
  lhs = std::move(tmp).value()
// NOLINTEND(bugprone-macro-parentheses)

#endif  // LETHE_BASE_STATUS_MACROS_H_
