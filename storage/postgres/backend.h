// The PostgreSQL Backend: the one lethe runs in production.
#ifndef LETHE_STORAGE_POSTGRES_BACKEND_H_
#define LETHE_STORAGE_POSTGRES_BACKEND_H_

#include <memory>
#include <string>

#include "storage/backend.h"
#include "storage/erasure_store.h"
#include "storage/postgres/database.h"

namespace lethe::storage {

struct PostgresOptions {
  std::string url;    // libpq connection string or URL
  int pool_size = 8;  // pooled connections for the stores and queues
  int acquire_timeout_seconds = 30;
  std::string artifact_dir;    // empty: artifacts in PostgreSQL
  ErasureStoreOptions intake;  // group commit of submissions
};

class PostgresBackend : public Backend {
 public:
  // The pool the stores share, for tools and tests that need SQL.
  virtual Database& database() = 0;
};

// Connects lazily: opening never fails for an unreachable database (the
// first call does, with UNAVAILABLE). The queue gauges read on a pool of
// their own (one connection), so a scrape never waits behind requests.
std::unique_ptr<PostgresBackend> OpenPostgres(const PostgresOptions& options);

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_POSTGRES_BACKEND_H_
