#include "observability/metrics.h"

#include <exception>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace lethe::observability {

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (listen.empty() || colon == std::string::npos ||
      colon + 1 == listen.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics address '", listen, "' is not host:port (e.g. ",
        "127.0.0.1:9464)"));
  }
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(listen, 2);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat(
        "cannot serve metrics on ", listen, ": ", e.what()));
  }
  const std::vector<int> ports = exposer->GetListeningPorts();
  if (ports.empty() || ports[0] <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", listen));
  }
  const int port = ports[0];
  return std::unique_ptr<MetricsEndpoint>(
      new MetricsEndpoint(std::move(exposer), port));
}

void MetricsEndpoint::Register(
    const std::weak_ptr<prometheus::Collectable>& collectable) {
  exposer_->RegisterCollectable(collectable);
}

DatabaseMetrics::DatabaseMetrics(prometheus::Registry& registry)
    : errors_(prometheus::BuildCounter()
                  .Name("lethe_database_errors_total")
                  .Help("PostgreSQL operations that failed, per operation")
                  .Register(registry)) {}

void DatabaseMetrics::RecordError(std::string_view operation) {
  errors_.Add({{"operation", std::string(operation)}}).Increment();
}

}  // namespace lethe::observability
