#include "tests/cert/cert_test_util.h"

#include <cstdlib>
#include <vector>

#include "cert/checkpoint.h"
#include "cert/dsse.h"
#include "cert/encoding.h"
#include "cert/merkle.h"

namespace lethe::testing {

cert::CompletionRecord SampleRecord(const std::string& request_id) {
  cert::CompletionRecord r;
  r.request_id = request_id;
  r.legal_ground = "GDPR_ART17_1B_CONSENT_WITHDRAWN";
  r.legal_reference = "ticket DPO-4711";
  r.subject_commitment = cert::Sha256("commitment");
  r.submitted_us = 1735689600000000;  // 2025-01-01T00:00:00Z
  r.completed_us = r.submitted_us + int64_t{90} * 1000000;
  cert::ModelOutcome m;
  m.model_id = "5f0c2a84-7b1e-4d3a-8c9f-0e1d2c3b4a59";
  m.model_name = "fashion-mlp";
  m.version_before = 3;
  m.digest_before = cert::Sha256("model v3");
  m.version_after = 4;
  m.digest_after = cert::Sha256("model v4");
  m.records_removed = 17;
  m.method = "newton";
  m.guarantee = cert::Guarantee::kCertified;
  m.epsilon = 1.0;
  m.delta = 1e-5;
  m.metrics = {
      {"forget_accuracy", 0.11, cert::MetricCheck::Bound::kAtMost, 0.2},
      {"test_accuracy_ratio", 0.98, cert::MetricCheck::Bound::kAtLeast, 0.95}};
  r.models.push_back(m);
  return r;
}

cert::Bundle MakeBundle(const cert::CompletionRecord& record,
                        const cert::PrivateKey& key, uint64_t index,
                        uint64_t size) {
  auto statement = cert::MakeStatement(record);
  if (!statement.ok()) std::abort();
  cert::Bundle b;
  b.envelope =
      cert::SignEnvelope(cert::kInTotoPayloadType, *statement, key).Serialize();
  std::vector<std::string> leaves;
  for (uint64_t i = 0; i < size; ++i) {
    leaves.push_back(i == index ? cert::CertificateLeafHash(b.envelope)
                                : cert::HashLeaf(std::to_string(i)));
  }
  cert::VectorLeafSource source(&leaves);
  cert::Checkpoint cp{"lethe.test/log", size, *cert::RootHash(source, size)};
  b.checkpoint = *cert::SignCheckpoint(cp, key);
  b.leaf_index = index;
  b.tree_size = size;
  b.inclusion_proof = *cert::InclusionProof(source, index, size);
  return b;
}

}  // namespace lethe::testing
