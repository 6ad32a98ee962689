// Internal: runs a callable that may throw (LibTorch throws c10::Error) and
// turns any exception into a Status, so none escapes core/.
#ifndef LETHE_CORE_GUARD_H_
#define LETHE_CORE_GUARD_H_

#include <c10/util/Exception.h>

#include <new>
#include <string>

#include "lethe/core/status.h"

namespace lethe::core::internal {

// The first line of a LibTorch message, without its C++ backtrace.
std::string ShortError(const std::exception& e);

// f returns Status or Result<T>.
template <typename F>
auto Guarded(const std::string& what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const c10::OutOfMemoryError& e) {
    return ResourceExhaustedError(what + ": out of memory: " + ShortError(e));
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError(what + ": out of host memory");
  } catch (const std::exception& e) {
    return InternalError(what + ": " + ShortError(e));
  }
}

}  // namespace lethe::core::internal

#endif  // LETHE_CORE_GUARD_H_
