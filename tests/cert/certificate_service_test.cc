// CertificateService over gRPC on a real server and PostgreSQL: what the
// worker issues (CertificateStore::IssueInTxn in the transaction that
// completes a request) is served with proofs that verify against signed
// checkpoints; roles; and the offline checks of a bundle written by
// `lethectl certificate get --bundle`, with lethectl and with the
// standard-tool walkthrough of docs/compliance.md (scripts/audit-bundle.sh).
#include <filesystem>
#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cert/bundle.h"
#include "cert/checkpoint.h"
#include "cert/dsse.h"
#include "cert/encoding.h"
#include "cert/keys.h"
#include "cert/merkle.h"
#include "lethe/v1/certificate.grpc.pb.h"
#include "storage/certificate_store.h"
#include "storage/postgres/database.h"
#include "storage/postgres/stores.h"
#include "tests/server/test_server.h"
#include "tests/support/process.h"

namespace lethe::testing {
namespace {

using storage::Role;

constexpr char kKeyName[] = "lethe.test";

class CertificateServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lethe-cert-svc-XXXXXX";
    dir_ = mkdtemp(tmpl);
    auto key = cert::GenerateKeyFiles(dir_ + "/log", {kKeyName, 0, 0});
    ASSERT_TRUE(key.ok()) << key.status();
    keys_ = cert::KeyRing({*key});
    ts_ = TestServer::Start("", {dir_ + "/log.pub"});
    ASSERT_NE(ts_, nullptr);
    stub_ = v1::CertificateService::NewStub(ts_->Channel());
    db_ = std::make_unique<storage::Database>(
        storage::DatabaseOptions{ts_->database_url(), 2, 30});
    const std::string dataset =
        CreateDatasetWithRows(*ts_, "people",
                              "alice,1,train,0.1,0.2,0.3,0.4\n"
                              "bob,0,train,1,2,3,4\n"
                              "carol,2,train,0,0,0,1\n");
    model_a_ = RegisterModel(*ts_, "model-a", dataset);
    model_b_ = RegisterModel(*ts_, "model-b", dataset);
  }

  void TearDown() override {
    ts_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Submits an erasure of `subject` on `model` over gRPC with `token`.
  v1::Erasure Submit(const std::string& subject, const std::string& model,
                     const std::string& token) {
    v1::SubmitErasureRequest req;
    req.set_subject_id(subject);
    req.add_model_ids(model);
    req.set_legal_ground(v1::LEGAL_GROUND_GDPR_ART17_1B_CONSENT_WITHDRAWN);
    req.set_legal_reference("ticket DPO-4711");
    req.set_idempotency_key(absl::StrCat(subject, "-", model));
    v1::SubmitErasureResponse resp;
    auto st = ts_->erasures().SubmitErasure(ts_->CtxWithToken(token).get(), req,
                                            &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp.erasure();
  }

  // Completes `erasure` as the worker does: the state change and the
  // certificate in one transaction.
  storage::IssuedCertificate Complete(const v1::Erasure& erasure,
                                      const std::string& model) {
    cert::CompletionRecord r;
    r.request_id = erasure.id();
    r.legal_ground = "GDPR_ART17_1B_CONSENT_WITHDRAWN";
    r.legal_reference = erasure.legal_reference();
    r.subject_commitment = erasure.subject_commitment();
    r.submitted_us = erasure.create_time().seconds() * 1000000 +
                     erasure.create_time().nanos() / 1000;
    r.completed_us = absl::ToUnixMicros(absl::Now());
    cert::ModelOutcome m;
    m.model_id = model;
    m.version_before = 1;
    m.digest_before = cert::Sha256(model + " v1");
    m.version_after = 2;
    m.digest_after = cert::Sha256(model + " v2");
    m.records_removed = 1;
    m.method = "retrain";
    m.guarantee = cert::Guarantee::kExact;
    m.metrics = {
        {"forget_accuracy", 0.1, cert::MetricCheck::Bound::kAtMost, 0.5}};
    r.models.push_back(m);
    auto issued =
        db_->TransactValue<storage::IssuedCertificate>([&](storage::Txn& txn) {
          txn.exec_params(
              "UPDATE erasure_requests SET state = 'COMPLETED', "
              "completed_at = now(), updated_at = now() WHERE id = $1::uuid",
              erasure.id());
          return storage::PgCertificateStore::IssueInTxn(txn, r, keys_);
        });
    EXPECT_TRUE(issued.ok()) << issued.status();
    return issued.ok() ? *issued : storage::IssuedCertificate{};
  }

  // A submitted and completed request of the default submitter key.
  storage::IssuedCertificate CompletedRequest(const std::string& subject,
                                              const std::string& model) {
    return Complete(Submit(subject, model, ts_->token(Role::kSubmitter)),
                    model);
  }

  // Signs a checkpoint of the log as it is now, as a worker does after
  // issuing (the server signs nothing).
  storage::StoredCheckpoint Sign() {
    storage::PgCertificateStore store(db_.get());
    auto cp = store.SignCheckpoint(keys_, "lethe.local/erasure-log");
    EXPECT_TRUE(cp.ok()) << cp.status();
    return cp.ok() ? *cp : storage::StoredCheckpoint{};
  }

  v1::Checkpoint Checkpoint(int64_t size = 0) {
    v1::GetCheckpointRequest req;
    req.set_tree_size(size);
    v1::Checkpoint cp;
    auto st = stub_->GetCheckpoint(ts_->Ctx(Role::kAuditor).get(), req, &cp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return cp;
  }

  std::vector<cert::PublicKey> PublicKeys() { return keys_.PublicKeys(); }

  std::string dir_;
  cert::KeyRing keys_;
  std::unique_ptr<TestServer> ts_;
  std::unique_ptr<v1::CertificateService::Stub> stub_;
  std::unique_ptr<storage::Database> db_;
  std::string model_a_;
  std::string model_b_;
};

TEST_F(CertificateServiceTest, GetCertificateReturnsTheSignedEnvelope) {
  const auto issued = CompletedRequest("alice", model_a_);
  v1::GetCertificateRequest req;
  req.set_request_id(issued.request_id);
  v1::Certificate c;
  auto st = stub_->GetCertificate(ts_->Ctx(Role::kAuditor).get(), req, &c);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(c.request_id(), issued.request_id);
  EXPECT_EQ(c.envelope(), issued.envelope);
  EXPECT_EQ(c.leaf_index(), 0);
  EXPECT_EQ(c.leaf_hash(), cert::CertificateLeafHash(c.envelope()));
  EXPECT_EQ(c.key_id(), keys_.keys()[0].public_key().key_id());
  ASSERT_EQ(c.model_ids_size(), 1);
  EXPECT_EQ(c.model_ids(0), model_a_);
  EXPECT_GT(c.issue_time().seconds(), 0);

  auto envelope = cert::Envelope::Parse(c.envelope());
  ASSERT_TRUE(envelope.ok()) << envelope.status();
  const auto pub = PublicKeys();
  EXPECT_TRUE(cert::VerifyEnvelope(*envelope, pub).ok());
  auto record = cert::ParseStatement(envelope->payload);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->request_id, issued.request_id);
}

TEST_F(CertificateServiceTest, RolesAndErrors) {
  const auto own = CompletedRequest("alice", model_a_);
  auto other_key = storage::PgApiKeyStore(db_.get()).Create(
      {Role::kSubmitter, "other client", {}}, "test");
  ASSERT_TRUE(other_key.ok()) << other_key.status();
  const auto others =
      Complete(Submit("bob", model_a_, other_key->token), model_a_);

  const auto get = [&](const std::string& token, const std::string& id) {
    v1::GetCertificateRequest req;
    req.set_request_id(id);
    v1::Certificate c;
    return stub_->GetCertificate(ts_->CtxWithToken(token).get(), req, &c)
        .error_code();
  };
  const std::string& submitter = ts_->token(Role::kSubmitter);
  EXPECT_EQ(get(submitter, own.request_id), grpc::StatusCode::OK);
  EXPECT_EQ(get(submitter, others.request_id), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(get(other_key->token, others.request_id), grpc::StatusCode::OK);
  EXPECT_EQ(get(other_key->token, own.request_id), grpc::StatusCode::NOT_FOUND);
  for (Role role : {Role::kAuditor, Role::kOperator, Role::kAdmin}) {
    EXPECT_EQ(get(ts_->token(role), others.request_id), grpc::StatusCode::OK);
  }
  EXPECT_EQ(get("", own.request_id), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(get("lethe_nokey_nosecret", own.request_id),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(get(ts_->token(Role::kAuditor), "not-a-uuid"),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(
      get(ts_->token(Role::kAuditor), "00000000-0000-4000-8000-000000000000"),
      grpc::StatusCode::NOT_FOUND);
  // A request that has not completed has no certificate yet.
  const auto pending = Submit("carol", model_a_, submitter);
  EXPECT_EQ(get(ts_->token(Role::kAuditor), pending.id()),
            grpc::StatusCode::NOT_FOUND);

  v1::ListCertificatesResponse list;
  EXPECT_EQ(stub_
                ->ListCertificates(ts_->Ctx(Role::kSubmitter).get(),
                                   v1::ListCertificatesRequest(), &list)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::GetPublicKeysResponse keys;
  EXPECT_EQ(stub_
                ->GetPublicKeys(ts_->CtxWithToken("").get(),
                                v1::GetPublicKeysRequest(), &keys)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  v1::Checkpoint cp;
  EXPECT_EQ(stub_
                ->GetCheckpoint(ts_->CtxWithToken("").get(),
                                v1::GetCheckpointRequest(), &cp)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(CertificateServiceTest, ListPagesNewestFirstAndFiltersByModel) {
  std::vector<std::string> ids;
  for (const auto& [subject, model] :
       {std::pair{"alice", model_a_}, {"bob", model_b_}, {"carol", model_a_}}) {
    ids.push_back(CompletedRequest(subject, model).request_id);
  }
  std::vector<std::string> seen;
  v1::ListCertificatesRequest req;
  req.set_page_size(1);
  std::string first_token;
  do {
    v1::ListCertificatesResponse resp;
    auto st =
        stub_->ListCertificates(ts_->Ctx(Role::kAuditor).get(), req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    ASSERT_LE(resp.certificates_size(), 1);
    for (const auto& c : resp.certificates()) seen.push_back(c.request_id());
    if (first_token.empty()) first_token = resp.next_page_token();
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  EXPECT_EQ(seen, (std::vector<std::string>{ids[2], ids[1], ids[0]}));

  v1::ListCertificatesRequest by_model;
  by_model.set_model_id(model_a_);
  v1::ListCertificatesResponse resp;
  ASSERT_TRUE(
      stub_->ListCertificates(ts_->Ctx(Role::kOperator).get(), by_model, &resp)
          .ok());
  ASSERT_EQ(resp.certificates_size(), 2);
  EXPECT_EQ(resp.certificates(0).request_id(), ids[2]);
  EXPECT_EQ(resp.certificates(1).request_id(), ids[0]);
  EXPECT_TRUE(resp.next_page_token().empty());

  v1::ListCertificatesRequest future;
  *future.mutable_issued_after() = google::protobuf::Timestamp();
  future.mutable_issued_after()->set_seconds(absl::ToUnixSeconds(absl::Now()) +
                                             3600);
  auto st =
      stub_->ListCertificates(ts_->Ctx(Role::kAuditor).get(), future, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.certificates_size(), 0);
  v1::ListCertificatesRequest past;
  *past.mutable_issued_before() = future.issued_after();
  past.mutable_issued_after()->set_seconds(absl::ToUnixSeconds(absl::Now()) -
                                           3600);
  st = stub_->ListCertificates(ts_->Ctx(Role::kAuditor).get(), past, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.certificates_size(), 3);

  // A token is bound to its filters; bad filters are refused.
  by_model.set_page_token(first_token);
  EXPECT_EQ(
      stub_->ListCertificates(ts_->Ctx(Role::kAuditor).get(), by_model, &resp)
          .error_code(),
      grpc::StatusCode::INVALID_ARGUMENT);
  v1::ListCertificatesRequest bad;
  bad.set_model_id("model-a");
  EXPECT_EQ(stub_->ListCertificates(ts_->Ctx(Role::kAuditor).get(), bad, &resp)
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(CertificateServiceTest, ProofsVerifyAgainstSignedCheckpoints) {
  const auto first = CompletedRequest("alice", model_a_);
  Sign();
  const v1::Checkpoint cp1 = Checkpoint();
  const auto second = CompletedRequest("bob", model_a_);
  const auto third = CompletedRequest("carol", model_b_);
  // Not signed yet: the server serves the newest stored checkpoint.
  EXPECT_EQ(Checkpoint().note(), cp1.note());
  Sign();
  const v1::Checkpoint cp3 = Checkpoint();
  ASSERT_EQ(cp1.tree_size(), 1);
  ASSERT_EQ(cp3.tree_size(), 3);
  const auto pub = PublicKeys();
  auto opened1 = cert::OpenCheckpoint(cp1.note(), pub);
  auto opened3 = cert::OpenCheckpoint(cp3.note(), pub);
  ASSERT_TRUE(opened1.ok()) << opened1.status();
  ASSERT_TRUE(opened3.ok()) << opened3.status();
  EXPECT_EQ(opened3->checkpoint.origin, "lethe.local/erasure-log");
  EXPECT_EQ(opened3->checkpoint.root_hash, cp3.root_hash());
  EXPECT_EQ(cp3.key_id(), pub[0].key_id());

  // The stored checkpoint at size 1 is the one signed then.
  EXPECT_EQ(Checkpoint(1).note(), cp1.note());
  // The latest is stable while the log does not grow.
  EXPECT_EQ(Checkpoint().note(), cp3.note());

  for (const auto* c : {&first, &second, &third}) {
    v1::GetInclusionProofRequest req;
    req.set_leaf_index(c->leaf_index);
    req.set_tree_size(3);
    v1::InclusionProof proof;
    auto st =
        stub_->GetInclusionProof(ts_->Ctx(Role::kSubmitter).get(), req, &proof);
    ASSERT_TRUE(st.ok()) << st.error_message();
    std::vector<std::string> hashes(proof.hashes().begin(),
                                    proof.hashes().end());
    EXPECT_TRUE(cert::VerifyInclusion(c->leaf_index, 3,
                                      cert::CertificateLeafHash(c->envelope),
                                      hashes, opened3->checkpoint.root_hash)
                    .ok())
        << "leaf " << c->leaf_index;
  }

  v1::GetConsistencyProofRequest creq;
  creq.set_first_size(1);
  creq.set_second_size(3);
  v1::ConsistencyProof cproof;
  ASSERT_TRUE(
      stub_->GetConsistencyProof(ts_->Ctx(Role::kAuditor).get(), creq, &cproof)
          .ok());
  std::vector<std::string> hashes(cproof.hashes().begin(),
                                  cproof.hashes().end());
  EXPECT_TRUE(cert::VerifyConsistency(1, 3, hashes,
                                      opened1->checkpoint.root_hash,
                                      opened3->checkpoint.root_hash)
                  .ok());
  // The proof does not vouch for another old root.
  EXPECT_FALSE(cert::VerifyConsistency(1, 3, hashes,
                                       cert::CertificateLeafHash("forged"),
                                       opened3->checkpoint.root_hash)
                   .ok());

  const auto code = [&](auto call) { return call().error_code(); };
  v1::InclusionProof proof;
  v1::GetInclusionProofRequest out_of_tree;
  out_of_tree.set_leaf_index(3);
  out_of_tree.set_tree_size(3);
  EXPECT_EQ(code([&] {
              return stub_->GetInclusionProof(ts_->Ctx(Role::kAuditor).get(),
                                              out_of_tree, &proof);
            }),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::GetInclusionProofRequest beyond;
  beyond.set_leaf_index(0);
  beyond.set_tree_size(4);
  EXPECT_EQ(code([&] {
              return stub_->GetInclusionProof(ts_->Ctx(Role::kAuditor).get(),
                                              beyond, &proof);
            }),
            grpc::StatusCode::FAILED_PRECONDITION);
  creq.set_first_size(3);
  creq.set_second_size(2);
  EXPECT_EQ(code([&] {
              return stub_->GetConsistencyProof(ts_->Ctx(Role::kAuditor).get(),
                                                creq, &cproof);
            }),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::GetCheckpointRequest unsigned_size;
  unsigned_size.set_tree_size(2);
  v1::Checkpoint cp;
  EXPECT_EQ(code([&] {
              return stub_->GetCheckpoint(ts_->Ctx(Role::kAuditor).get(),
                                          unsigned_size, &cp);
            }),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(CertificateServiceTest, PublicKeysInEveryForm) {
  v1::GetPublicKeysResponse resp;
  ASSERT_TRUE(stub_
                  ->GetPublicKeys(ts_->Ctx(Role::kSubmitter).get(),
                                  v1::GetPublicKeysRequest(), &resp)
                  .ok());
  ASSERT_EQ(resp.keys_size(), 1);
  const cert::PublicKey& expected = keys_.keys()[0].public_key();
  const v1::PublicKey& key = resp.keys(0);
  EXPECT_EQ(key.key_id(), expected.key_id());
  EXPECT_EQ(key.name(), kKeyName);
  EXPECT_EQ(key.verifier_key(), cert::VerifierKey(kKeyName, expected));
  EXPECT_EQ(key.jwk(), expected.Jwk());
  EXPECT_FALSE(key.has_not_before());
  EXPECT_FALSE(key.has_not_after());
  auto parsed = cert::PublicKey::FromPem(key.pem());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->raw(), expected.raw());
  EXPECT_EQ(parsed->info().name, kKeyName);
}

TEST_F(CertificateServiceTest, ServerSignsNothingAndServesStoredCheckpoints) {
  // A replica given no public key: checkpoints are still served, as stored.
  auto keyless = TestServer::Start(ts_->database_url());
  ASSERT_NE(keyless, nullptr);
  auto stub = v1::CertificateService::NewStub(keyless->Channel());
  v1::Checkpoint cp;
  // Nothing signed yet, and the server does not sign: NOT_FOUND.
  CompletedRequest("alice", model_a_);
  auto st = stub->GetCheckpoint(keyless->Ctx(Role::kAuditor).get(),
                                v1::GetCheckpointRequest(), &cp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND) << st.error_message();
  const storage::StoredCheckpoint signed_cp = Sign();
  st = stub->GetCheckpoint(keyless->Ctx(Role::kAuditor).get(),
                           v1::GetCheckpointRequest(), &cp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(cp.note(), signed_cp.note);
  EXPECT_EQ(cp.tree_size(), 1);
  v1::GetPublicKeysResponse keys;
  ASSERT_TRUE(stub->GetPublicKeys(keyless->Ctx(Role::kAuditor).get(),
                                  v1::GetPublicKeysRequest(), &keys)
                  .ok());
  EXPECT_EQ(keys.keys_size(), 0);
}

TEST_F(CertificateServiceTest, ServerRefusesPrivateOrBadKeyFiles) {
  const std::string bad = dir_ + "/bad.pub";
  std::ofstream(bad) << "-----BEGIN PUBLIC KEY-----\nnot a key\n";
  for (const std::string& file :
       {bad, dir_ + "/missing.pub", dir_ + "/log.key"}) {
    server::ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.insecure_plaintext = true;
    o.database_url = ts_->database_url();
    o.secrets_file = ts_->secrets_file();
    o.public_key_files = {file};
    auto server = server::LetheServer::Start(o);
    ASSERT_FALSE(server.ok()) << file;
    EXPECT_EQ(server.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(server.status().message().find(file), std::string::npos)
        << server.status();
  }
  server::ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.insecure_plaintext = true;
  o.database_url = ts_->database_url();
  o.secrets_file = ts_->secrets_file();
  o.public_key_files = {dir_ + "/log.key"};
  auto server = server::LetheServer::Start(o);
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.status().message().find("a private key"), std::string::npos)
      << server.status();
}

// Runs a program to completion; its stdout and stderr go to `log`.
ExitStatus RunProgram(const std::string& program, std::vector<std::string> args,
                      const std::string& log) {
  SubprocessOptions o;
  o.program = program;
  o.args = std::move(args);
  o.stdout_path = log;
  o.stderr_path = log;
  auto p = Subprocess::Start(o);
  EXPECT_TRUE(p.ok()) << p.status();
  if (!p.ok()) return {};
  auto status = (*p)->Wait(std::chrono::seconds(60));
  EXPECT_TRUE(status.has_value()) << program << " did not finish";
  return status.value_or(ExitStatus{});
}

std::string ReadAll(const std::string& path) { return ReadFileOrEmpty(path); }

void WriteAll(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

class BundleTest : public CertificateServiceTest {
 protected:
  void SetUp() override {
    CertificateServiceTest::SetUp();
    if (HasFatalFailure()) return;
    CompletedRequest("alice", model_b_);
    issued_ = CompletedRequest("bob", model_a_);
    CompletedRequest("carol", model_a_);
    Sign();
    bundle_ = dir_ + "/bundle.json";
    const ExitStatus got =
        Lethectl({"certificate", "get", issued_.request_id, "--bundle", bundle_,
                  "--addr", absl::StrCat("127.0.0.1:", ts_->port()),
                  "--api-key", ts_->token(Role::kSubmitter)});
    ASSERT_TRUE(got.Success()) << got.ToString() << "\n" << ReadAll(log());
    text_ = ReadAll(bundle_);
    ASSERT_FALSE(text_.empty());
  }

  std::string log() const { return dir_ + "/out.log"; }

  ExitStatus Lethectl(std::vector<std::string> args) {
    return RunProgram(LETHECTL_BINARY, std::move(args), log());
  }

  ExitStatus Verify(const std::string& bundle) {
    return Lethectl({"verify", bundle, "--key", dir_ + "/log.pub"});
  }

  ExitStatus Audit(const std::string& bundle) {
    return RunProgram(LETHE_SOURCE_DIR "/scripts/audit-bundle.sh",
                      {bundle, dir_ + "/log.pub"}, log());
  }

  // The bundle with `from` replaced by `to` (once), in a file of its own.
  std::string Tampered(const std::string& name, const std::string& from,
                       const std::string& to) {
    const size_t at = text_.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    std::string changed = text_;
    if (at != std::string::npos) changed.replace(at, from.size(), to);
    std::string path = dir_ + "/" + name + ".json";
    WriteAll(path, changed);
    return path;
  }

  // Tampered copies that still parse, each breaking one check.
  std::vector<std::string> TamperedBundles() {
    auto bundle = cert::Bundle::Parse(text_);
    EXPECT_TRUE(bundle.ok()) << bundle.status();
    if (!bundle.ok()) return {};
    std::vector<std::string> out;
    // Another leaf index.
    out.push_back(
        Tampered("index", absl::StrCat("\"leafIndex\":", bundle->leaf_index),
                 absl::StrCat("\"leafIndex\":", bundle->leaf_index + 1)));
    // A forged proof hash.
    const std::string h = cert::Base64Encode(bundle->inclusion_proof[0]);
    std::string forged = bundle->inclusion_proof[0];
    forged[0] ^= 1;
    out.push_back(Tampered("proof", h, cert::Base64Encode(forged)));
    // One bit of the signed statement: the payload's base64 changes.
    auto env = cert::Envelope::Parse(bundle->envelope);
    EXPECT_TRUE(env.ok());
    cert::Envelope changed = *env;
    changed.payload =
        absl::StrReplaceAll(changed.payload, {{"retrain", "retrail"}});
    cert::Bundle b2 = *bundle;
    b2.envelope = changed.Serialize();
    WriteAll(dir_ + "/payload.json", b2.Serialize());
    out.push_back(dir_ + "/payload.json");
    // The checkpoint's tree size.
    cert::Bundle b3 = *bundle;
    b3.checkpoint = absl::StrReplaceAll(
        b3.checkpoint, {{absl::StrCat("\n", b3.tree_size, "\n"),
                         absl::StrCat("\n", b3.tree_size + 1, "\n")}});
    b3.tree_size += 1;
    WriteAll(dir_ + "/size.json", b3.Serialize());
    out.push_back(dir_ + "/size.json");
    return out;
  }

  storage::IssuedCertificate issued_;
  std::string bundle_;
  std::string text_;
};

TEST_F(BundleTest, LethectlVerifiesTheBundleAndRejectsTampering) {
  ExitStatus ok = Verify(bundle_);
  const std::string out = ReadAll(log());
  ASSERT_TRUE(ok.Success()) << ok.ToString() << "\n" << out;
  EXPECT_NE(out.find("VERIFIED"), std::string::npos) << out;
  EXPECT_NE(out.find(issued_.request_id), std::string::npos) << out;
  EXPECT_NE(out.find("guarantee: exact"), std::string::npos) << out;
  EXPECT_NE(out.find("forget_accuracy = 0.1, at most the bound 0.5"),
            std::string::npos)
      << out;

  for (const std::string& tampered : TamperedBundles()) {
    ExitStatus st = Verify(tampered);
    EXPECT_TRUE(st.exited && st.code == 1)
        << tampered << ": " << st.ToString() << "\n"
        << ReadAll(log());
    EXPECT_NE(ReadAll(log()).find("NOT VERIFIED"), std::string::npos);
  }
  // A key the bundle was not signed with.
  auto other = cert::GenerateKeyFiles(dir_ + "/other", {kKeyName, 0, 0});
  ASSERT_TRUE(other.ok());
  ExitStatus wrong =
      Lethectl({"verify", bundle_, "--key", dir_ + "/other.pub"});
  EXPECT_TRUE(wrong.exited && wrong.code == 1) << wrong.ToString();
  // Both keys, as after a rotation: the right one is found.
  ExitStatus both = Lethectl({"verify", bundle_, "--key", dir_ + "/other.pub",
                              "--key", dir_ + "/log.pub"});
  EXPECT_TRUE(both.Success()) << both.ToString() << "\n" << ReadAll(log());
}

TEST_F(BundleTest, AuditScriptChecksTheBundleWithStandardToolsOnly) {
  ExitStatus ok = Audit(bundle_);
  const std::string out = ReadAll(log());
  ASSERT_TRUE(ok.Success()) << ok.ToString() << "\n" << out;
  EXPECT_NE(out.find(issued_.request_id), std::string::npos) << out;
  EXPECT_NE(out.find("ALL CHECKS PASSED"), std::string::npos) << out;
  for (const std::string& tampered : TamperedBundles()) {
    ExitStatus st = Audit(tampered);
    EXPECT_TRUE(st.exited && st.code != 0)
        << tampered << ": " << st.ToString() << "\n"
        << ReadAll(log());
  }
  auto other = cert::GenerateKeyFiles(dir_ + "/other", {kKeyName, 0, 0});
  ASSERT_TRUE(other.ok());
  ExitStatus wrong = RunProgram(LETHE_SOURCE_DIR "/scripts/audit-bundle.sh",
                                {bundle_, dir_ + "/other.pub"}, log());
  EXPECT_TRUE(wrong.exited && wrong.code != 0) << wrong.ToString();
}

}  // namespace
}  // namespace lethe::testing
