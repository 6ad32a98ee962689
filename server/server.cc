#include "server/server.h"

#include <fstream>
#include <sstream>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "observability/grpc_metrics.h"
#include "observability/metrics.h"
#include "server/certificate_service.h"
#include "server/dataset_service.h"
#include "server/erasure_service.h"
#include "server/model_service.h"
#include "server/subject.h"
#include "storage/api_key_store.h"
#include "storage/migrations.h"

namespace lethe::server {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(
    const ServerOptions& o) {
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls-cert and --tls-key must be given together");
  }
  if (o.tls_cert_file.empty()) {
    if (!o.tls_client_ca_file.empty()) {
      return absl::InvalidArgumentError(
          "--tls-client-ca needs --tls-cert and --tls-key");
    }
    return grpc::InsecureServerCredentials();
  }
  grpc::SslServerCredentialsOptions ssl;
  auto cert = ReadFile(o.tls_cert_file);
  if (!cert.ok()) return cert.status();
  auto key = ReadFile(o.tls_key_file);
  if (!key.ok()) return key.status();
  ssl.pem_key_cert_pairs.push_back({*key, *cert});
  if (!o.tls_client_ca_file.empty()) {
    auto ca = ReadFile(o.tls_client_ca_file);
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
    ssl.client_certificate_request =
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

struct LetheServer::Impl {
  ServerOptions options;
  std::unique_ptr<storage::Database> db;
  std::unique_ptr<storage::ArtifactStore> artifacts;
  std::unique_ptr<storage::ApiKeyStore> keys;
  // Before `erasures`, whose writers report to it until they stop.
  std::unique_ptr<observability::IntakeMetrics> intake_metrics;
  std::unique_ptr<storage::ErasureStore> erasures;
  std::unique_ptr<storage::DatasetStore> datasets;
  std::unique_ptr<storage::ModelStore> models;
  std::unique_ptr<Authenticator> auth;
  std::unique_ptr<Executor> executor;
  std::unique_ptr<ChangeHub> changes;
  std::shared_ptr<observability::Logger> logger;
  std::unique_ptr<observability::DatabaseMetrics> db_metrics;  // or null
  Deps deps;
  std::unique_ptr<ErasureServiceImpl> erasure_service;
  std::unique_ptr<DatasetServiceImpl> dataset_service;
  std::unique_ptr<ModelRegistryImpl> model_service;
  cert::KeyRing signing_keys;
  std::unique_ptr<storage::CertificateStore> certificates;
  std::unique_ptr<CertificateServiceImpl> certificate_service;
  std::unique_ptr<grpc::Server> server;
};

absl::StatusOr<std::unique_ptr<LetheServer>> LetheServer::Start(
    const ServerOptions& o) {
  auto impl = std::make_unique<Impl>();
  impl->options = o;
  auto secret = LoadServerSecret(o.secrets_file);
  if (!secret.ok()) return secret.status();
  auto creds = Credentials(o);
  if (!creds.ok()) return creds.status();
  auto signing_keys = cert::KeyRing::LoadFiles(o.signing_key_files);
  if (!signing_keys.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--signing-keys: ", signing_keys.status().message(),
        " (make one with `lethe admin create-signing-key --out PREFIX`)"));
  }
  impl->signing_keys = *std::move(signing_keys);

  impl->db = std::make_unique<storage::Database>(
      storage::DatabaseOptions{o.database_url, o.db_pool_size, 30});
  if (o.migrate_on_start) {
    auto migrated = storage::Migrate(*impl->db);
    if (!migrated.ok()) return migrated.status();
  } else if (auto st = impl->db->Ping(); !st.ok()) {
    return st;
  }
  impl->artifacts = o.artifact_dir.empty()
                        ? storage::NewPostgresArtifactStore()
                        : storage::NewFilesystemArtifactStore(o.artifact_dir);
  impl->keys = std::make_unique<storage::ApiKeyStore>(impl->db.get());
  storage::ErasureStoreOptions intake = o.intake;
  if (o.metrics_registry) {
    impl->intake_metrics =
        std::make_unique<observability::IntakeMetrics>(*o.metrics_registry);
    intake.on_batch = [m = impl->intake_metrics.get()](size_t n, double s) {
      m->RecordBatch(n, s);
    };
  }
  impl->erasures =
      std::make_unique<storage::ErasureStore>(impl->db.get(), intake);
  impl->datasets = std::make_unique<storage::DatasetStore>(impl->db.get());
  impl->models = std::make_unique<storage::ModelStore>(impl->db.get(),
                                                       impl->artifacts.get());
  impl->auth = std::make_unique<Authenticator>(impl->keys.get(),
                                               o.key_cache_ttl);
  impl->executor = std::make_unique<Executor>(o.handler_threads);
  impl->changes = std::make_unique<ChangeHub>(impl->db.get(), o.watch_poll);
  impl->deps = Deps{impl->erasures.get(), impl->datasets.get(),
                    impl->models.get(),   impl->auth.get(),
                    impl->executor.get(), impl->changes.get(),
                    *secret,              o.limits};
  impl->logger = o.logger ? o.logger
                          : std::make_shared<observability::Logger>(
                                observability::Logger::Stderr(
                                    observability::LogLevel::kInfo, "server"));
  impl->deps.logger = impl->logger.get();
  impl->erasure_service = std::make_unique<ErasureServiceImpl>(&impl->deps);
  impl->dataset_service = std::make_unique<DatasetServiceImpl>(&impl->deps);
  impl->model_service = std::make_unique<ModelRegistryImpl>(&impl->deps);
  impl->certificates =
      std::make_unique<storage::CertificateStore>(impl->db.get());
  impl->certificate_service = std::make_unique<CertificateServiceImpl>(
      &impl->deps, CertificateServiceOptions{impl->certificates.get(),
                                             &impl->signing_keys,
                                             o.log_origin});

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(o.listen, *creds, &port);
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(o.limits.max_chunk_bytes + (64 << 10)));
  builder.RegisterService(impl->erasure_service.get());
  builder.RegisterService(impl->dataset_service.get());
  builder.RegisterService(impl->model_service.get());
  builder.RegisterService(impl->certificate_service.get());
  if (o.metrics_registry) {
    impl->db_metrics =
        std::make_unique<observability::DatabaseMetrics>(*o.metrics_registry);
    std::vector<std::unique_ptr<
        grpc::experimental::ServerInterceptorFactoryInterface>>
        interceptors;
    interceptors.push_back(
        observability::NewGrpcServerMetricsFactory(*o.metrics_registry));
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
  }
  impl->server = builder.BuildAndStart();
  if (!impl->server || port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", o.listen));
  }
  std::unique_ptr<LetheServer> server(new LetheServer(std::move(impl)));
  server->port_ = port;
  server->health_thread_ = std::thread([s = server.get()] { s->HealthLoop(); });
  return server;
}

LetheServer::LetheServer(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}

LetheServer::~LetheServer() {
  Shutdown(std::chrono::system_clock::now());
  Wait();
}

void LetheServer::HealthLoop() {
  auto* health = impl_->server->GetHealthCheckService();
  bool last = true;
  health->SetServingStatus(true);
  while (!stopping_) {
    const bool serving = impl_->db->Ping().ok();
    if (!serving && impl_->db_metrics) impl_->db_metrics->RecordError("ping");
    if (serving != last) {
      health->SetServingStatus(serving);
      last = serving;
    }
    const auto until =
        std::chrono::steady_clock::now() + impl_->options.health_interval;
    while (!stopping_ && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

void LetheServer::Shutdown(std::chrono::system_clock::time_point deadline) {
  if (stopping_.exchange(true)) return;
  if (health_thread_.joinable()) health_thread_.join();
  impl_->server->GetHealthCheckService()->SetServingStatus(false);
  impl_->server->Shutdown(deadline);
}

void LetheServer::Wait() {
  impl_->server->Wait();
}

}  // namespace lethe::server
