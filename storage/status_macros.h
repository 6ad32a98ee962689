// LETHE_RETURN_IF_ERROR and LETHE_ASSIGN_OR_RETURN live in base/; include
// "base/status_macros.h" directly.
#ifndef LETHE_STORAGE_STATUS_MACROS_H_
#define LETHE_STORAGE_STATUS_MACROS_H_
#include "base/status_macros.h"  // IWYU pragma: export
#endif  // LETHE_STORAGE_STATUS_MACROS_H_
