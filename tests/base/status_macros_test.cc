#include "base/status_macros.h"

#include <memory>

#include "gtest/gtest.h"

namespace lethe::base {
namespace {

absl::StatusOr<std::unique_ptr<int>> MakeInt(bool ok) {
  if (!ok) return absl::NotFoundError("no int");
  return std::make_unique<int>(7);
}

absl::Status Check(bool ok, int* out) {
  LETHE_RETURN_IF_ERROR(ok ? absl::OkStatus()
                           : absl::InvalidArgumentError("not ok"));
  LETHE_ASSIGN_OR_RETURN(std::unique_ptr<int> v, MakeInt(true));
  *out = *v;
  return absl::OkStatus();
}

absl::StatusOr<int> Twice(bool ok) {
  LETHE_ASSIGN_OR_RETURN(auto a, MakeInt(ok));
  LETHE_ASSIGN_OR_RETURN(auto b, MakeInt(ok));  // a second on its own line
  return *a + *b;
}

TEST(StatusMacrosTest, ReturnTheFirstErrorAndMoveValues) {
  int out = 0;
  EXPECT_TRUE(Check(true, &out).ok());
  EXPECT_EQ(out, 7);
  EXPECT_EQ(Check(false, &out).message(), "not ok");
  EXPECT_EQ(*Twice(true), 14);
  EXPECT_EQ(Twice(false).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace lethe::base
