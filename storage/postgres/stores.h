// The PostgreSQL stores behind storage/'s interfaces: datasets, models,
// API keys and certificates (the erasure store and the work queue have
// headers of their own). Each is thread-safe and maps errors as
// Database::Transact describes.
#ifndef LETHE_STORAGE_POSTGRES_STORES_H_
#define LETHE_STORAGE_POSTGRES_STORES_H_

#include <string>
#include <vector>

#include "storage/api_key_store.h"
#include "storage/certificate_store.h"
#include "storage/dataset_store.h"
#include "storage/model_store.h"
#include "storage/postgres/artifact_store.h"
#include "storage/postgres/database.h"

namespace lethe::storage {

class PgDatasetStore final : public DatasetStore {
 public:
  explicit PgDatasetStore(Database* db) : db_(db) {}

  absl::StatusOr<DatasetRow> Create(const DatasetRow& row,
                                    const std::string& actor) override;
  absl::StatusOr<DatasetRow> Get(const std::string& id) override;
  absl::StatusOr<DatasetPage> List(const Page& page) override;
  absl::StatusOr<AddRecordsResult> AddRecordBatches(
      const std::string& dataset_id, RecordBatches& records,
      const std::string& actor) override;

 private:
  Database* db_;  // not owned
};

class PgModelStore final : public ModelStore {
 public:
  PgModelStore(Database* db, ArtifactStore* artifacts)
      : db_(db), artifacts_(artifacts) {}

  absl::StatusOr<ModelRow> Register(const RegisterParams& params,
                                    const std::string& actor) override;
  absl::StatusOr<ModelRow> Get(const std::string& id) override;
  absl::StatusOr<ModelPage> List(const std::string& dataset_id,
                                 const Page& page) override;
  absl::StatusOr<VersionPage> ListVersions(const std::string& model_id,
                                           int64_t before_version,
                                           int32_t page_size) override;
  absl::StatusOr<ModelVersionRow> GetVersion(const std::string& model_id,
                                             int64_t version) override;
  absl::StatusOr<std::unique_ptr<ArtifactReader>> OpenArtifact(
      const std::string& sha256) override;

 private:
  Database* db_;              // not owned
  ArtifactStore* artifacts_;  // not owned
};

class PgApiKeyStore final : public ApiKeyStore {
 public:
  explicit PgApiKeyStore(Database* db) : db_(db) {}

  absl::StatusOr<NewApiKey> Create(const ApiKeySpec& spec,
                                   const std::string& actor) override;
  absl::StatusOr<ApiKeyRow> Lookup(const std::string& key_id) override;
  absl::Status Revoke(const std::string& key_id,
                      const std::string& actor) override;

 private:
  Database* db_;  // not owned
};

// Roots and proofs read O(log n) rows: the stored hashes of complete
// subtrees (certificate_log_nodes, migration 8; written as each leaf is
// appended, or from the leaves the first time a log older than that needs
// one) and the few leaves in between.
class PgCertificateStore final : public CertificateStore {
 public:
  explicit PgCertificateStore(Database* db) : db_(db) {}

  // Issue inside the caller's transaction (a publication's). Database
  // errors propagate as exceptions, like the caller's other statements, for
  // Database::Transact to map.
  static absl::StatusOr<IssuedCertificate> IssueInTxn(
      Txn& txn, const cert::CompletionRecord& record,
      const cert::KeyRing& keys);
  // The facts of a COMPLETED request, read inside `txn`
  // (CertificateScope::ReadCompleted).
  static absl::StatusOr<CompletedRequest> ReadCompletedInTxn(
      Txn& txn, const std::string& erasure_id);

  absl::StatusOr<IssuedCertificate> Issue(const cert::CompletionRecord& record,
                                          const cert::KeyRing& keys) override;
  absl::StatusOr<int> CertifyMissing(int limit,
                                     const CertifyHook& hook) override;
  absl::StatusOr<IssuedCertificate> Get(const std::string& request_id) override;
  absl::StatusOr<CertificatePage> List(const CertificateFilter& filter,
                                       const Page& page) override;
  absl::StatusOr<int64_t> TreeSize() override;
  absl::StatusOr<std::vector<std::string>> InclusionProof(
      int64_t leaf, int64_t tree_size) override;
  absl::StatusOr<std::vector<std::string>> ConsistencyProof(
      int64_t first, int64_t second) override;
  absl::StatusOr<StoredCheckpoint> SignCheckpoint(
      const cert::KeyRing& keys, const std::string& origin) override;
  absl::StatusOr<StoredCheckpoint> NewestCheckpoint() override;
  absl::StatusOr<StoredCheckpoint> CheckpointAt(int64_t tree_size) override;

 private:
  Database* db_;  // not owned
};

// The CertificateScope of a PostgreSQL transaction (Isolated: a savepoint).
class PgCertificateScope final : public CertificateScope {
 public:
  explicit PgCertificateScope(Txn& txn) : txn_(txn) {}
  absl::StatusOr<CompletedRequest> ReadCompleted(
      const std::string& erasure_id) override;
  absl::StatusOr<IssuedCertificate> Issue(const cert::CompletionRecord& record,
                                          const cert::KeyRing& keys) override;
  absl::Status Isolated(const std::function<absl::Status()>& fn) override;

 private:
  Txn& txn_;
};

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_POSTGRES_STORES_H_
