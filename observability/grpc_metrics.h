// gRPC server metrics recorded by an interceptor, so that no handler has to
// remember to: the families and labels of go-grpc-prometheus, which
// operators' dashboards already know.
//
//   grpc_server_started_total{grpc_service,grpc_method,grpc_type}
//   grpc_server_handled_total{grpc_service,grpc_method,grpc_type,grpc_code}
//   grpc_server_handling_seconds{grpc_service,grpc_method,grpc_type}
//
// grpc_type is unary, client_stream, server_stream or bidi_stream;
// grpc_code is the status code name as Go spells it (OK, Canceled,
// InvalidArgument, ...). A call is started when gRPC creates its
// interceptors and handled when the server sends its status; the handling
// time spans the two. A call that ends without the server sending a status
// (the server shut down under it) counts as handled with code Canceled, so
// started - handled is the number of calls in flight.
#ifndef LETHE_OBSERVABILITY_GRPC_METRICS_H_
#define LETHE_OBSERVABILITY_GRPC_METRICS_H_

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <grpcpp/support/server_interceptor.h>
#include <grpcpp/support/status.h>
#include <prometheus/registry.h>

namespace lethe::observability {

// For grpc::ServerBuilder::experimental().SetInterceptorCreators(). The
// families live in `registry`, which must outlive every server built with
// the factory. Several factories (server replicas in one process) may share
// one registry: their samples add up.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
NewGrpcServerMetricsFactory(prometheus::Registry& registry);

// "/lethe.v1.ErasureService/SubmitErasure" -> {"lethe.v1.ErasureService",
// "SubmitErasure"}; anything else, and any method that no service compiled
// into this process declares, -> {"unknown", "unknown"}: a client calling
// made-up paths cannot grow the metric series without bound (issue 17,
// item 4).
std::pair<std::string, std::string> SplitGrpcMethod(std::string_view method);

// go-grpc-prometheus' spelling of a code: "OK", "Canceled", "Unknown", ...
const char* GrpcCodeName(grpc::StatusCode code);

}  // namespace lethe::observability

#endif  // LETHE_OBSERVABILITY_GRPC_METRICS_H_
