// health: grpc.health.v1.Health/Check, for probes and the container's
// HEALTHCHECK. Needs no API key (the health service is not authenticated).
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "lethectl/commands.h"

namespace lethe::cli {
namespace {

using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;

Outcome Check(const Invocation& inv) {
  HealthCheckRequest request;
  request.set_service(inv.flags.Get("service"));
  HealthCheckResponse response;
  auto context = inv.connection.NewContext(/*streaming=*/false);
  grpc::Status status = Health::NewStub(inv.connection.channel())
                            ->Check(context.get(), request, &response);
  if (!status.ok()) return Outcome::Rpc(status);
  const std::string name =
      HealthCheckResponse::ServingStatus_Name(response.status());
  inv.printer.Print(response, name);
  if (response.status() == HealthCheckResponse::SERVING) return Outcome::Ok();
  return {kExitNotServing, absl::StrCat("the server is ", name)};
}

}  // namespace

std::vector<Command> HealthCommands() {
  return {
      {"health",
       "[--service NAME]",
       "check the server's grpc.health.v1 status (exit 0 only if SERVING)",
       0,
       {{"service", "NAME",
         "the service to check (default: the whole server)"}},
       Check},
  };
}

}  // namespace lethe::cli
