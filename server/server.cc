#include "server/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "observability/grpc_metrics.h"
#include "observability/metrics.h"
#include "server/certificate_service.h"
#include "server/dataset_service.h"
#include "server/erasure_service.h"
#include "server/model_service.h"
#include "server/subject.h"
#include "storage/postgres/backend.h"
#include "storage/reachability.h"

namespace lethe::server {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// Plaintext is an explicit choice, and a loopback-only one unless chosen
// twice (issue 17, item 7).
absl::Status CheckPlaintext(const ServerOptions& o) {
  if (!o.insecure_plaintext) {
    return absl::FailedPreconditionError(
        "lethe serve needs TLS: give --tls-cert and --tls-key (PEM; "
        "docs/security.md, \"TLS\"), or --insecure-plaintext to serve "
        "plaintext on a loopback address for local use");
  }
  if (!IsLoopbackListen(o.listen) && !o.insecure_plaintext_non_loopback) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--insecure-plaintext serves loopback addresses only, and --listen ",
        o.listen,
        " is not one: serve TLS (--tls-cert, --tls-key), listen on "
        "127.0.0.1, or add --insecure-plaintext-non-loopback if a proxy on "
        "a trusted network terminates TLS (API keys and subject ids then "
        "cross that network in clear)"));
  }
  return absl::OkStatus();
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
    if (auto st = CheckPlaintext(o); !st.ok()) return st;
    return grpc::InsecureServerCredentials();
  }
  if (o.insecure_plaintext || o.insecure_plaintext_non_loopback) {
    return absl::InvalidArgumentError(
        "--insecure-plaintext and --tls-cert exclude each other: give one");
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

// What the server registers while it waits for the database: every call of
// the API is answered UNAVAILABLE (health is served by gRPC's own service).
class UnavailableService final : public grpc::CallbackGenericService {
 public:
  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* /*ctx*/) override {
    class Reactor final : public grpc::ServerGenericBidiReactor {
     public:
      Reactor() {
        Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                            std::string(storage::kDatabaseUnavailable)));
      }
      void OnDone() override { delete this; }
    };
    return new Reactor;
  }
};

// host:port with the port replaced ("[::1]:0" -> "[::1]:41234").
std::string WithPort(const std::string& listen, int port) {
  return absl::StrCat(listen.substr(0, listen.rfind(':')), ":", port);
}

}  // namespace

bool IsLoopbackListen(const std::string& listen) {
  if (absl::StartsWith(listen, "unix:") ||
      absl::StartsWith(listen, "unix-abstract:")) {
    return true;
  }
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return false;
  absl::string_view host(listen.data(), colon);
  if (absl::ConsumePrefix(&host, "[") && !absl::ConsumeSuffix(&host, "]")) {
    return false;
  }
  if (host == "localhost" || host == "::1") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, std::string(host).c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  return false;
}

struct LetheServer::Impl {
  ServerOptions options;
  std::string secret;
  std::shared_ptr<grpc::ServerCredentials> credentials;
  // Before `backend`, whose intake writers report to it until they stop.
  std::unique_ptr<observability::IntakeMetrics> intake_metrics;
  // Outlives everything that follows: the stores are the backend's.
  std::shared_ptr<storage::Backend> backend;
  std::unique_ptr<Authenticator> auth;
  std::unique_ptr<ChangeHub> changes;
  std::unique_ptr<WatchSlots> watches;
  std::unique_ptr<ByteBudget> spooled;
  std::shared_ptr<observability::Logger> logger;
  std::unique_ptr<observability::DatabaseMetrics> db_metrics;  // or null
  Deps deps;
  std::unique_ptr<ErasureServiceImpl> erasure_service;
  std::unique_ptr<DatasetServiceImpl> dataset_service;
  std::unique_ptr<ModelRegistryImpl> model_service;
  std::vector<cert::PublicKey> public_keys;
  std::unique_ptr<CertificateServiceImpl> certificate_service;
  // Destroyed after `server`, whose shutdown waits for calls that executor
  // tasks finish, and before everything above: its destructor runs the
  // tasks still queued (a WatchReactor's last one unsubscribes from
  // `changes` after gRPC's OnDone), and they use the services and deps.
  std::unique_ptr<Executor> executor;
  std::unique_ptr<grpc::Server> server;
  // Until the database is ready: health NOT_SERVING, the API UNAVAILABLE.
  UnavailableService unavailable;
  std::unique_ptr<grpc::Server> waiting;
};

absl::StatusOr<std::unique_ptr<LetheServer>> LetheServer::Start(
    const ServerOptions& o) {
  std::unique_ptr<observability::IntakeMetrics> intake_metrics;
  storage::PostgresOptions pg;
  pg.url = o.database_url;
  pg.pool_size = o.db_pool_size;
  pg.artifact_dir = o.artifact_dir;
  pg.intake = o.intake;
  if (o.metrics_registry) {
    intake_metrics =
        std::make_unique<observability::IntakeMetrics>(*o.metrics_registry);
    pg.intake.on_batch = [m = intake_metrics.get()](size_t n, double s) {
      m->RecordBatch(n, s);
    };
  }
  std::shared_ptr<storage::Backend> backend = storage::OpenPostgres(pg);
  return Start(o, std::move(backend), std::move(intake_metrics));
}

absl::StatusOr<std::unique_ptr<LetheServer>> LetheServer::Start(
    const ServerOptions& o, std::shared_ptr<storage::Backend> backend,
    std::unique_ptr<observability::IntakeMetrics> intake_metrics) {
  auto impl = std::make_unique<Impl>();
  impl->options = o;
  impl->intake_metrics = std::move(intake_metrics);
  impl->backend = std::move(backend);
  auto secret = LoadServerSecret(o.secrets_file);
  if (!secret.ok()) return secret.status();
  impl->secret = *std::move(secret);
  auto creds = Credentials(o);
  if (!creds.ok()) return creds.status();
  impl->credentials = *std::move(creds);
  auto public_keys = cert::LoadPublicKeyFiles(o.public_key_files);
  if (!public_keys.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--public-keys: ", public_keys.status().message(),
        " (`lethe admin create-signing-key --out PREFIX` writes PREFIX.pub "
        "for the server and PREFIX.key for the workers)"));
  }
  impl->public_keys = *std::move(public_keys);
  impl->logger = o.logger ? o.logger
                          : std::make_shared<observability::Logger>(
                                observability::Logger::Stderr(
                                    observability::LogLevel::kInfo, "server"));
  if (impl->options.tls_cert_file.empty()) {
    impl->logger->Warn(
        {},
        "serving plaintext gRPC: API keys and subject ids are not encrypted",
        {{"listen", o.listen}, {"loopback", IsLoopbackListen(o.listen)}});
  }
  if (o.metrics_registry) {
    impl->db_metrics =
        std::make_unique<observability::DatabaseMetrics>(*o.metrics_registry);
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  std::unique_ptr<LetheServer> server(new LetheServer(std::move(impl)));
  const absl::Status ready = server->PrepareDatabase();
  if (!ready.ok() && !absl::IsUnavailable(ready)) return ready;
  if (ready.ok()) {
    server->BuildApi();
    if (auto st = server->Listen(o.listen); !st.ok()) return st;
  } else if (auto st = server->OpenWaiting(); !st.ok()) {
    return st;
  }
  server->background_ = std::thread([s = server.get(), ready] {
    if (!ready.ok() && !s->WaitForDatabase(ready)) return;
    s->HealthLoop();
  });
  return server;
}

storage::Backend* LetheServer::backend() const { return impl_->backend.get(); }

absl::Status LetheServer::PrepareDatabase() {
  return impl_->backend->Prepare(impl_->options.migrate_on_start);
}

absl::Status LetheServer::OpenWaiting() {
  grpc::ServerBuilder builder;
  builder.AddListeningPort(impl_->options.listen, impl_->credentials, &port_);
  builder.RegisterCallbackGenericService(&impl_->unavailable);
  impl_->waiting = builder.BuildAndStart();
  if (!impl_->waiting || port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", impl_->options.listen));
  }
  impl_->waiting->GetHealthCheckService()->SetServingStatus(false);
  return absl::OkStatus();
}

bool LetheServer::WaitForDatabase(const absl::Status& first) {
  const auto& log = *impl_->logger;
  const std::string database =
      storage::RedactedDatabaseUrl(impl_->options.database_url);
  storage::Backoff backoff;
  auto delay = backoff.first;
  for (int attempt = 1;; ++attempt) {
    absl::Status st = attempt == 1 ? first : PrepareDatabase();
    if (st.ok()) break;
    if (impl_->db_metrics) impl_->db_metrics->RecordError("ping");
    log.Warn({}, "database not ready; NOT_SERVING until it is",
             {{"attempt", attempt},
              {"retry_in_seconds", delay.count() / 1000.0},
              {"database", database},
              {"error", storage::ErrorDetail(st)}});
    if (!SleepUnlessStopping(delay)) return false;
    delay = std::min(delay * 2, backoff.max);
  }
  // The waiting server gives the port back; the API takes it at once
  // (callers that connect in between see UNAVAILABLE and retry).
  impl_->waiting->Shutdown(std::chrono::system_clock::now());
  impl_->waiting->Wait();
  impl_->waiting.reset();
  BuildApi();
  delay = backoff.first;
  while (true) {
    absl::Status st = Listen(WithPort(impl_->options.listen, port_));
    if (st.ok()) break;
    log.Error({}, "cannot open the API after the database became ready",
              {{"error", std::string(st.message())}});
    if (!SleepUnlessStopping(delay)) return false;
    delay = std::min(delay * 2, backoff.max);
  }
  log.Info({}, "database ready; serving", {{"port", port_}});
  return true;
}

bool LetheServer::SleepUnlessStopping(std::chrono::milliseconds delay) {
  const auto until = std::chrono::steady_clock::now() + delay;
  while (!stopping_ && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return !stopping_;
}

void LetheServer::BuildApi() {
  Impl* impl = impl_.get();
  const ServerOptions& o = impl->options;
  storage::Backend& b = *impl->backend;
  impl->auth = std::make_unique<Authenticator>(
      &b.api_keys(), o.key_cache_ttl, impl->logger.get(),
      AuthLimits{o.rate_limit_per_key, o.auth_failures_per_peer});
  impl->executor =
      std::make_unique<Executor>(o.handler_threads, o.max_queued_calls);
  impl->changes = std::make_unique<ChangeHub>(&b, o.watch_poll);
  impl->watches = std::make_unique<WatchSlots>(o.max_watches_per_key);
  impl->deps =
      Deps{&b.erasures(),       &b.datasets(),        &b.models(),
           impl->auth.get(),    impl->executor.get(), impl->changes.get(),
           impl->watches.get(), impl->secret,         o.limits};
  impl->deps.logger = impl->logger.get();
  impl->spooled = std::make_unique<ByteBudget>(
      o.limits.max_spooled_bytes,
      "the server holds as many uploads and model files in its spool as "
      "--max-spooled-bytes allows; retry with backoff");
  impl->deps.spooled = impl->spooled.get();
  impl->deps.spool_dir = o.spool_dir;
  impl->erasure_service = std::make_unique<ErasureServiceImpl>(&impl->deps);
  impl->dataset_service = std::make_unique<DatasetServiceImpl>(&impl->deps);
  impl->model_service = std::make_unique<ModelRegistryImpl>(&impl->deps);
  impl->certificate_service = std::make_unique<CertificateServiceImpl>(
      &impl->deps,
      CertificateServiceOptions{&b.certificates(), &impl->public_keys});
}

absl::Status LetheServer::Listen(const std::string& listen) {
  Impl* impl = impl_.get();
  const ServerOptions& o = impl->options;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, impl->credentials, &port);
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(o.limits.max_chunk_bytes + (64 << 10)));
  builder.RegisterService(impl->erasure_service.get());
  builder.RegisterService(impl->dataset_service.get());
  builder.RegisterService(impl->model_service.get());
  builder.RegisterService(impl->certificate_service.get());
  if (o.metrics_registry) {
    std::vector<
        std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
        interceptors;
    interceptors.push_back(
        observability::NewGrpcServerMetricsFactory(*o.metrics_registry));
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
  }
  impl->server = builder.BuildAndStart();
  if (!impl->server || port == 0) {
    impl->server.reset();
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen));
  }
  port_ = port;
  return absl::OkStatus();
}

LetheServer::LetheServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

LetheServer::~LetheServer() {
  Shutdown(std::chrono::system_clock::now());
  Wait();
}

void LetheServer::HealthLoop() {
  auto* health = impl_->server->GetHealthCheckService();
  const auto& log = *impl_->logger;
  bool last = true;
  health->SetServingStatus(true);
  while (!stopping_) {
    const absl::Status st = impl_->backend->Ping();
    const bool serving = st.ok();
    if (!serving && impl_->db_metrics) impl_->db_metrics->RecordError("ping");
    if (serving != last) {
      health->SetServingStatus(serving);
      last = serving;
      if (serving) {
        log.Info({}, "database reachable again; SERVING");
      } else {
        log.Warn({}, "database unreachable; NOT_SERVING",
                 {{"error", storage::ErrorDetail(st)}});
      }
    }
    SleepUnlessStopping(impl_->options.health_interval);
  }
}

void LetheServer::Shutdown(std::chrono::system_clock::time_point deadline) {
  if (stopping_.exchange(true)) return;
  // After the join nothing else touches the two servers.
  if (background_.joinable()) background_.join();
  for (grpc::Server* s : {impl_->server.get(), impl_->waiting.get()}) {
    if (s == nullptr) continue;
    s->GetHealthCheckService()->SetServingStatus(false);
    s->Shutdown(deadline);
  }
  std::lock_guard lock(mu_);
  shut_down_ = true;
  shut_down_cv_.notify_all();
}

void LetheServer::Wait() {
  {
    std::unique_lock lock(mu_);
    shut_down_cv_.wait(lock, [this] { return shut_down_; });
  }
  if (impl_->server) impl_->server->Wait();
  if (impl_->waiting) impl_->waiting->Wait();
}

}  // namespace lethe::server
