#include "tests/server/test_server.h"

#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "server/subject.h"
#include "storage/memory/backend.h"
#include "storage/postgres/database.h"
#include "storage/postgres/migrations.h"
#include "storage/postgres/run_sql.h"
#include "storage/postgres/stores.h"
#include "storage/reachability.h"

namespace lethe::testing {

std::unique_ptr<TestServer> TestServer::Start(
    std::string database_url, std::vector<std::string> public_key_files) {
  std::unique_ptr<TestServer> ts(new TestServer());
  ts->public_key_files_ = std::move(public_key_files);
  if (database_url.empty()) {
    auto scratch = ScratchDatabase::Create("lethe_server");
    EXPECT_TRUE(scratch.ok()) << scratch.status();
    if (!scratch.ok()) return nullptr;
    ts->scratch_ = std::make_unique<ScratchDatabase>(std::move(*scratch));
    database_url = ts->scratch_->url();
  }
  ts->url_ = database_url;
  char tmpl[] = "/tmp/lethe-test-XXXXXX";
  ts->dir_ = mkdtemp(tmpl);
  ts->secrets_file_ = ts->dir_ + "/secret";
  EXPECT_TRUE(server::CreateServerSecret(ts->secrets_file_).ok());
  storage::Database db({ts->url_, 1, 30});
  auto migrated = storage::Migrate(db);
  EXPECT_TRUE(migrated.ok()) << migrated.status();
  storage::PgApiKeyStore keys(&db);
  for (auto role : {storage::Role::kSubmitter, storage::Role::kOperator,
                    storage::Role::kAuditor, storage::Role::kAdmin}) {
    auto key = keys.Create({role, "test", {}}, "test");
    EXPECT_TRUE(key.ok()) << key.status();
    ts->tokens_[role] = key->token;
  }
  if (!ts->Finish(nullptr)) return nullptr;
  return ts;
}

std::unique_ptr<TestServer> TestServer::StartInMemory() {
  std::unique_ptr<TestServer> ts(new TestServer());
  char tmpl[] = "/tmp/lethe-test-XXXXXX";
  ts->dir_ = mkdtemp(tmpl);
  ts->secrets_file_ = ts->dir_ + "/secret";
  EXPECT_TRUE(server::CreateServerSecret(ts->secrets_file_).ok());
  std::shared_ptr<storage::Backend> backend = storage::NewMemoryBackend();
  for (auto role : {storage::Role::kSubmitter, storage::Role::kOperator,
                    storage::Role::kAuditor, storage::Role::kAdmin}) {
    auto key = backend->api_keys().Create({role, "test", {}}, "test");
    EXPECT_TRUE(key.ok()) << key.status();
    ts->tokens_[role] = key->token;
  }
  if (!ts->Finish(std::move(backend))) return nullptr;
  return ts;
}

bool TestServer::Finish(std::shared_ptr<storage::Backend> backend) {
  auto server = backend ? server::LetheServer::Start(Options(), backend)
                        : server::LetheServer::Start(Options());
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) return false;
  server_ = std::move(*server);
  auto channel = Channel();
  erasures_ = v1::ErasureService::NewStub(channel);
  datasets_ = v1::DatasetService::NewStub(channel);
  models_ = v1::ModelRegistry::NewStub(channel);
  return true;
}

TestServer::~TestServer() {
  server_.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

server::ServerOptions TestServer::Options() const {
  server::ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.insecure_plaintext = true;
  o.database_url = url_;
  o.secrets_file = secrets_file_;
  o.db_pool_size = 8;
  o.handler_threads = 8;
  o.health_interval = std::chrono::milliseconds(200);
  o.watch_poll = std::chrono::milliseconds(500);
  o.key_cache_ttl = std::chrono::seconds(0);
  o.public_key_files = public_key_files_;
  return o;
}

std::unique_ptr<server::LetheServer> TestServer::StartReplica(
    const std::function<void(server::ServerOptions&)>& adjust) const {
  server::ServerOptions options = Options();
  if (adjust) adjust(options);
  auto server = server::LetheServer::Start(options);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? std::move(*server) : nullptr;
}

std::shared_ptr<grpc::Channel> TestServer::Channel(int port) const {
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(8 << 20);
  args.SetMaxReceiveMessageSize(8 << 20);
  return grpc::CreateCustomChannel(
      absl::StrCat("127.0.0.1:", port == 0 ? server_->port() : port),
      grpc::InsecureChannelCredentials(), args);
}

std::unique_ptr<grpc::ClientContext> TestServer::Ctx(storage::Role role) const {
  return CtxWithToken(tokens_.at(role));
}

std::unique_ptr<grpc::ClientContext> TestServer::CtxWithToken(
    const std::string& token) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(60));
  return ctx;
}

std::string QueryScalar(const std::string& url, const std::string& sql) {
  auto rows = storage::RunSql(url, sql);
  EXPECT_TRUE(rows.ok()) << storage::ErrorDetail(rows.status()) << ": " << sql;
  if (!rows.ok() || rows->empty() || !(*rows)[0][0]) return "";
  return *(*rows)[0][0];
}

std::string CreateDatasetWithRows(TestServer& ts, const std::string& name,
                                  const std::string& csv_rows) {
  v1::CreateDatasetRequest req;
  req.set_name(name);
  req.add_feature_shape(4);
  req.set_feature_type(v1::FEATURE_TYPE_FLOAT32);
  req.set_num_classes(3);
  v1::Dataset dataset;
  auto st = ts.datasets().CreateDataset(ts.Ctx(storage::Role::kOperator).get(),
                                        req, &dataset);
  EXPECT_TRUE(st.ok()) << st.error_message();
  if (csv_rows.empty()) return dataset.id();
  auto ctx = ts.Ctx(storage::Role::kOperator);
  v1::UploadRecordsResponse resp;
  auto writer = ts.datasets().UploadRecords(ctx.get(), &resp);
  v1::UploadRecordsRequest msg;
  msg.mutable_header()->set_dataset_id(dataset.id());
  msg.mutable_header()->set_format(v1::UPLOAD_FORMAT_CSV);
  writer->Write(msg);
  msg.Clear();
  msg.mutable_chunk()->set_part(v1::UPLOAD_PART_CSV);
  msg.mutable_chunk()->set_data("subject_id,label,split,f0,f1,f2,f3\n" +
                                csv_rows);
  writer->Write(msg);
  writer->WritesDone();
  st = writer->Finish();
  EXPECT_TRUE(st.ok()) << st.error_message();
  return dataset.id();
}

std::string RegisterModel(TestServer& ts, const std::string& name,
                          const std::string& dataset_id) {
  auto ctx = ts.Ctx(storage::Role::kOperator);
  v1::Model model;
  auto writer = ts.models().RegisterModel(ctx.get(), &model);
  v1::RegisterModelRequest msg;
  auto* md = msg.mutable_metadata();
  md->set_name(name);
  md->set_dataset_id(dataset_id);
  md->mutable_architecture()->set_kind(
      v1::Architecture::KIND_LOGISTIC_REGRESSION);
  auto* recipe = md->mutable_recipe();
  recipe->set_optimizer(v1::OPTIMIZER_SGD_MOMENTUM);
  recipe->set_learning_rate(0.1);
  recipe->set_epochs(2);
  recipe->set_batch_size(8);
  writer->Write(msg);
  writer->WritesDone();
  auto st = writer->Finish();
  EXPECT_TRUE(st.ok()) << st.error_message();
  return model.id();
}

v1::ModelMetadata TorchScriptMetadata(const std::string& name,
                                      const std::string& dataset_id,
                                      const std::string& sha256_hex) {
  v1::ModelMetadata md;
  md.set_name(name);
  md.set_dataset_id(dataset_id);
  md.mutable_architecture()->set_kind(v1::Architecture::KIND_TORCHSCRIPT);
  md.mutable_recipe()->set_optimizer(v1::OPTIMIZER_ADAM);
  md.mutable_recipe()->set_learning_rate(0.001);
  md.mutable_recipe()->set_epochs(1);
  md.mutable_recipe()->set_batch_size(32);
  md.set_artifact_sha256(sha256_hex);
  return md;
}

}  // namespace lethe::testing
