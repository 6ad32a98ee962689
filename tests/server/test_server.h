// TestServer: a real LetheServer on a scratch PostgreSQL database, with one
// API key per role and stubs for every service. For integration tests.
#ifndef LETHE_TESTS_SERVER_TEST_SERVER_H_
#define LETHE_TESTS_SERVER_TEST_SERVER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "lethe/v1/dataset.grpc.pb.h"
#include "lethe/v1/erasure.grpc.pb.h"
#include "lethe/v1/model.grpc.pb.h"
#include "server/server.h"
#include "storage/types.h"
#include "tests/support/scratch_database.h"

namespace lethe::testing {

class TestServer {
 public:
  // Creates a scratch database (or uses `database_url` when given), a
  // secret file, keys for every role, and starts a server on a free port,
  // serving `public_key_files` (.pub; none by default) from GetPublicKeys.
  static std::unique_ptr<TestServer> Start(
      std::string database_url = "",
      std::vector<std::string> public_key_files = {});
  ~TestServer();

  // The same, on the in-memory backend (storage/memory): no database, so
  // database_url() is empty and QueryScalar cannot be used. For fast unit
  // tests of the handlers.
  static std::unique_ptr<TestServer> StartInMemory();

  // Starts another server process-internally on the same database and
  // secret (a second replica), with `adjust` applied to its options.
  std::unique_ptr<server::LetheServer> StartReplica(
      const std::function<void(server::ServerOptions&)>& adjust = {}) const;

  std::shared_ptr<grpc::Channel> Channel(int port = 0) const;
  // A context carrying the key of `role`.
  std::unique_ptr<grpc::ClientContext> Ctx(storage::Role role) const;
  std::unique_ptr<grpc::ClientContext> CtxWithToken(
      const std::string& token) const;

  const std::string& token(storage::Role role) const {
    return tokens_.at(role);
  }
  const std::string& database_url() const { return url_; }
  const std::string& secrets_file() const { return secrets_file_; }
  const std::string& temp_dir() const { return dir_; }
  int port() const { return server_->port(); }
  server::LetheServer* server() { return server_.get(); }
  void StopServer() { server_.reset(); }

  v1::ErasureService::Stub& erasures() { return *erasures_; }
  v1::DatasetService::Stub& datasets() { return *datasets_; }
  v1::ModelRegistry::Stub& models() { return *models_; }

 private:
  TestServer() = default;
  server::ServerOptions Options() const;
  // Keys for every role, the server on `backend` (null: the database at
  // url_), the stubs.
  bool Finish(std::shared_ptr<storage::Backend> backend);

  std::unique_ptr<ScratchDatabase> scratch_;
  std::string url_;
  std::string dir_;
  std::string secrets_file_;
  std::vector<std::string> public_key_files_;
  std::map<storage::Role, std::string> tokens_;
  std::unique_ptr<server::LetheServer> server_;
  std::unique_ptr<v1::ErasureService::Stub> erasures_;
  std::unique_ptr<v1::DatasetService::Stub> datasets_;
  std::unique_ptr<v1::ModelRegistry::Stub> models_;
};

// Runs SQL and returns the first column of the first row as text.
std::string QueryScalar(const std::string& url, const std::string& sql);

// Creates a float32 dataset of 4 features and 3 classes and uploads
// `csv_rows` (lines after the header). Returns the dataset id.
std::string CreateDatasetWithRows(TestServer& ts, const std::string& name,
                                  const std::string& csv_rows);

// Registers a logistic-regression model (no artifact) on `dataset_id`.
std::string RegisterModel(TestServer& ts, const std::string& name,
                          const std::string& dataset_id);

// The metadata of a KIND_TORCHSCRIPT model on `dataset_id` (Adam, one
// epoch) whose artifact hashes to `sha256_hex` (empty: not stated).
v1::ModelMetadata TorchScriptMetadata(const std::string& name,
                                      const std::string& dataset_id,
                                      const std::string& sha256_hex);

}  // namespace lethe::testing

#endif  // LETHE_TESTS_SERVER_TEST_SERVER_H_
