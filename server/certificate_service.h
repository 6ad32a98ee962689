// CertificateService handlers (proto/lethe/v1/certificate.proto): thin
// adapters from the API to storage::CertificateStore. The server only reads:
// workers issue certificates and sign checkpoints; the server serves the
// stored ones and the public keys it was given, and holds no private key.
#ifndef LETHE_SERVER_CERTIFICATE_SERVICE_H_
#define LETHE_SERVER_CERTIFICATE_SERVICE_H_

#include <string>
#include <vector>

#include "cert/keys.h"
#include "lethe/v1/certificate.grpc.pb.h"
#include "server/deps.h"
#include "storage/certificate_store.h"

namespace lethe::server {

// Everything the handlers need besides Deps; owned by LetheServer.
struct CertificateServiceOptions {
  storage::CertificateStore* store = nullptr;  // not owned
  // Not owned; may be empty.
  const std::vector<cert::PublicKey>* public_keys = nullptr;
};

class CertificateServiceImpl final
    : public v1::CertificateService::CallbackService {
 public:
  CertificateServiceImpl(const Deps* deps, CertificateServiceOptions options)
      : deps_(deps), options_(options) {}

  grpc::ServerUnaryReactor* GetCertificate(grpc::CallbackServerContext* ctx,
                                           const v1::GetCertificateRequest* req,
                                           v1::Certificate* resp) override;
  grpc::ServerUnaryReactor* ListCertificates(
      grpc::CallbackServerContext* ctx, const v1::ListCertificatesRequest* req,
      v1::ListCertificatesResponse* resp) override;
  grpc::ServerUnaryReactor* GetInclusionProof(
      grpc::CallbackServerContext* ctx, const v1::GetInclusionProofRequest* req,
      v1::InclusionProof* resp) override;
  grpc::ServerUnaryReactor* GetConsistencyProof(
      grpc::CallbackServerContext* ctx,
      const v1::GetConsistencyProofRequest* req,
      v1::ConsistencyProof* resp) override;
  grpc::ServerUnaryReactor* GetCheckpoint(grpc::CallbackServerContext* ctx,
                                          const v1::GetCheckpointRequest* req,
                                          v1::Checkpoint* resp) override;
  grpc::ServerUnaryReactor* GetPublicKeys(
      grpc::CallbackServerContext* ctx, const v1::GetPublicKeysRequest* req,
      v1::GetPublicKeysResponse* resp) override;

 private:
  const Deps* deps_;
  const CertificateServiceOptions options_;
};

}  // namespace lethe::server

#endif  // LETHE_SERVER_CERTIFICATE_SERVICE_H_
