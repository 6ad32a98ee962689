#include "observability/grpc_metrics.h"

#include <chrono>

#include <google/protobuf/descriptor.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>

#include "absl/strings/str_cat.h"

namespace lethe::observability {
namespace {

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::ServerRpcInfo;

const char* TypeName(ServerRpcInfo::Type type) {
  switch (type) {
    case ServerRpcInfo::Type::UNARY:
      return "unary";
    case ServerRpcInfo::Type::CLIENT_STREAMING:
      return "client_stream";
    case ServerRpcInfo::Type::SERVER_STREAMING:
      return "server_stream";
    case ServerRpcInfo::Type::BIDI_STREAMING:
      return "bidi_stream";
  }
  return "unknown";
}

struct Families {
  explicit Families(prometheus::Registry& r)
      : started(prometheus::BuildCounter()
                    .Name("grpc_server_started_total")
                    .Help("Total number of RPCs started on the server.")
                    .Register(r)),
        handled(prometheus::BuildCounter()
                    .Name("grpc_server_handled_total")
                    .Help("Total number of RPCs completed on the server, "
                          "regardless of success or failure.")
                    .Register(r)),
        seconds(prometheus::BuildHistogram()
                    .Name("grpc_server_handling_seconds")
                    .Help("Histogram of response latency (seconds) of gRPC "
                          "that had been application-level handled by the "
                          "server.")
                    .Register(r)) {}

  prometheus::Family<prometheus::Counter>& started;
  prometheus::Family<prometheus::Counter>& handled;
  prometheus::Family<prometheus::Histogram>& seconds;
};

// go-grpc-prometheus' default buckets.
const prometheus::Histogram::BucketBoundaries& HandlingBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return *buckets;
}

// One per call; gRPC owns it and deletes it when the call is done.
class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(const Families* families, ServerRpcInfo* info)
      : families_(families), start_(std::chrono::steady_clock::now()) {
    auto [service, method] =
        SplitGrpcMethod(info->method() ? info->method() : "");
    labels_ = {{"grpc_service", std::move(service)},
               {"grpc_method", std::move(method)},
               {"grpc_type", TypeName(info->type())}};
    families_->started.Add(labels_).Increment();
  }

  ~MetricsInterceptor() override {
    if (!handled_) Handled(grpc::StatusCode::CANCELLED);
  }

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (!handled_ && methods->QueryInterceptionHookPoint(
                         InterceptionHookPoints::PRE_SEND_STATUS)) {
      Handled(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  void Handled(grpc::StatusCode code) {
    handled_ = true;
    const std::chrono::duration<double> elapsed =
        std::chrono::steady_clock::now() - start_;
    families_->seconds.Add(labels_, HandlingBuckets()).Observe(elapsed.count());
    prometheus::Labels with_code = labels_;
    with_code.emplace("grpc_code", GrpcCodeName(code));
    families_->handled.Add(with_code).Increment();
  }

  const Families* const families_;
  const std::chrono::steady_clock::time_point start_;
  prometheus::Labels labels_;
  // Only gRPC's thread for this call's batches touches it.
  bool handled_ = false;
};

class MetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(prometheus::Registry& registry)
      : families_(registry) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      ServerRpcInfo* info) override {
    return new MetricsInterceptor(&families_, info);
  }

 private:
  const Families families_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
NewGrpcServerMetricsFactory(prometheus::Registry& registry) {
  return std::make_unique<MetricsInterceptorFactory>(registry);
}

std::pair<std::string, std::string> SplitGrpcMethod(std::string_view method) {
  if (method.size() < 4 || method[0] != '/') return {"unknown", "unknown"};
  const size_t slash = method.find('/', 1);
  if (slash == std::string_view::npos || slash == 1 ||
      slash + 1 == method.size() ||
      method.find('/', slash + 1) != std::string_view::npos) {
    return {"unknown", "unknown"};
  }
  std::string service(method.substr(1, slash - 1));
  std::string name(method.substr(slash + 1));
  // gRPC's own health service is served without its generated code, so
  // its methods need not be in the pool.
  const bool health = service == "grpc.health.v1.Health" &&
                      (name == "Check" || name == "Watch");
  if (!health &&
      google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(
          absl::StrCat(service, ".", name)) == nullptr) {
    return {"unknown", "unknown"};
  }
  return {std::move(service), std::move(name)};
}

const char* GrpcCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "Canceled";
    case grpc::StatusCode::UNKNOWN:
      return "Unknown";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "InvalidArgument";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DeadlineExceeded";
    case grpc::StatusCode::NOT_FOUND:
      return "NotFound";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "AlreadyExists";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PermissionDenied";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "ResourceExhausted";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FailedPrecondition";
    case grpc::StatusCode::ABORTED:
      return "Aborted";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OutOfRange";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "Unimplemented";
    case grpc::StatusCode::INTERNAL:
      return "Internal";
    case grpc::StatusCode::UNAVAILABLE:
      return "Unavailable";
    case grpc::StatusCode::DATA_LOSS:
      return "DataLoss";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "Unauthenticated";
    default:
      return "Unknown";
  }
}

}  // namespace lethe::observability
