// ErasureService against a real server and PostgreSQL.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "base/utf8.h"
#include "storage/hash.h"
#include "storage/postgres/run_sql.h"
#include "storage/postgres/stores.h"
#include "tests/server/test_server.h"
#include "validate/validate.h"

namespace lethe::testing {
namespace {

using storage::Role;

class ErasureApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ts_ = TestServer::Start();
    ASSERT_NE(ts_, nullptr);
    dataset_ = CreateDatasetWithRows(*ts_, "people",
                                     "alice,1,train,0.1,0.2,0.3,0.4\n"
                                     "alice,2,train,0.5,0.6,0.7,0.8\n"
                                     "bob,0,train,1,2,3,4\n"
                                     "carol,0,test,0,0,0,0\n");
    model_ = RegisterModel(*ts_, "people-logreg", dataset_);
  }

  v1::SubmitErasureRequest Request(const std::string& subject,
                                   const std::string& key) {
    v1::SubmitErasureRequest req;
    req.set_subject_id(subject);
    req.set_legal_ground(v1::LEGAL_GROUND_GDPR_ART17_1B_CONSENT_WITHDRAWN);
    req.set_legal_reference("ticket-42");
    req.set_idempotency_key(key);
    return req;
  }

  grpc::Status Submit(const v1::SubmitErasureRequest& req,
                      v1::SubmitErasureResponse* resp,
                      Role role = Role::kSubmitter) {
    return ts_->erasures().SubmitErasure(ts_->Ctx(role).get(), req, resp);
  }

  int64_t CountRequests() {
    return std::stoll(QueryScalar(ts_->database_url(),
                                  "SELECT count(*) FROM erasure_requests"));
  }

  int64_t CountRecords() {
    return std::stoll(
        QueryScalar(ts_->database_url(), "SELECT count(*) FROM records"));
  }

  // Uploads CSV `rows` (after the header) to the fixture's dataset.
  grpc::Status UploadCsv(const std::string& rows) {
    auto ctx = ts_->Ctx(Role::kOperator);
    v1::UploadRecordsResponse resp;
    auto writer = ts_->datasets().UploadRecords(ctx.get(), &resp);
    v1::UploadRecordsRequest msg;
    msg.mutable_header()->set_dataset_id(dataset_);
    msg.mutable_header()->set_format(v1::UPLOAD_FORMAT_CSV);
    writer->Write(msg);
    msg.Clear();
    msg.mutable_chunk()->set_part(v1::UPLOAD_PART_CSV);
    msg.mutable_chunk()->set_data("subject_id,label,split,f0,f1,f2,f3\n" +
                                  rows);
    writer->Write(msg);
    writer->WritesDone();
    return writer->Finish();
  }

  std::unique_ptr<TestServer> ts_;
  std::string dataset_;
  std::string model_;
};

TEST_F(ErasureApiTest, SubmitQueuesOneTaskPerModelHoldingTheSubject) {
  v1::SubmitErasureResponse resp;
  ASSERT_TRUE(Submit(Request("alice", "k1"), &resp).ok());
  EXPECT_EQ(resp.erasure().state(), v1::ERASURE_STATE_QUEUED);
  ASSERT_EQ(resp.erasure().tasks_size(), 1);
  EXPECT_EQ(resp.erasure().tasks(0).model_id(), model_);
  EXPECT_EQ(resp.erasure().tasks(0).state(), v1::TASK_STATE_QUEUED);
  EXPECT_EQ(resp.subject_salt().size(), 32u);
  EXPECT_EQ(resp.erasure().subject_commitment().size(), 32u);
  EXPECT_FALSE(resp.replayed());
  EXPECT_EQ(
      QueryScalar(ts_->database_url(),
                  "SELECT count(*) FROM erasure_tasks WHERE state = 'QUEUED'"),
      "1");
}

TEST_F(ErasureApiTest, SubjectWithoutRecordsIsNothingToErase) {
  v1::SubmitErasureResponse resp;
  ASSERT_TRUE(Submit(Request("nobody", "k1"), &resp).ok());
  EXPECT_EQ(resp.erasure().state(), v1::ERASURE_STATE_NOTHING_TO_ERASE);
  EXPECT_EQ(resp.erasure().tasks_size(), 0);
  EXPECT_TRUE(resp.erasure().has_complete_time());
}

TEST_F(ErasureApiTest, TestSplitRecordsAlsoCountAsHeld) {
  v1::SubmitErasureResponse resp;
  ASSERT_TRUE(Submit(Request("carol", "k1"), &resp).ok());
  EXPECT_EQ(resp.erasure().state(), v1::ERASURE_STATE_QUEUED);
}

TEST_F(ErasureApiTest, ScopeRestrictsModelsAndUnknownModelIsNotFound) {
  auto other_dataset =
      CreateDatasetWithRows(*ts_, "other", "alice,0,train,1,1,1,1\n");
  auto other_model = RegisterModel(*ts_, "other-logreg", other_dataset);
  v1::SubmitErasureResponse resp;
  auto req = Request("alice", "scoped");
  req.add_model_ids(other_model);
  ASSERT_TRUE(Submit(req, &resp).ok());
  ASSERT_EQ(resp.erasure().tasks_size(), 1);
  EXPECT_EQ(resp.erasure().tasks(0).model_id(), other_model);

  v1::SubmitErasureResponse all;
  ASSERT_TRUE(Submit(Request("alice", "unscoped"), &all).ok());
  EXPECT_EQ(all.erasure().tasks_size(), 2);

  auto missing = Request("alice", "missing");
  missing.add_model_ids("00000000-0000-4000-8000-000000000000");
  const int64_t before = CountRequests();
  auto st = Submit(missing, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND) << st.error_message();
  EXPECT_EQ(CountRequests(), before);
}

TEST_F(ErasureApiTest, ReplayWithSameBodyReturnsOriginalWithoutSalt) {
  v1::SubmitErasureResponse first, second;
  ASSERT_TRUE(Submit(Request("alice", "same"), &first).ok());
  ASSERT_TRUE(Submit(Request("alice", "same"), &second).ok());
  EXPECT_EQ(first.erasure().id(), second.erasure().id());
  EXPECT_TRUE(second.replayed());
  EXPECT_TRUE(second.subject_salt().empty());
  EXPECT_EQ(CountRequests(), 1);
}

TEST_F(ErasureApiTest, ReusedKeyWithDifferentBodyIsAlreadyExists) {
  v1::SubmitErasureResponse resp;
  ASSERT_TRUE(Submit(Request("alice", "reused"), &resp).ok());
  auto st = Submit(Request("bob", "reused"), &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_NE(st.error_message().find("different request"), std::string::npos);
  auto other_ground = Request("alice", "reused");
  other_ground.set_legal_ground(v1::LEGAL_GROUND_CCPA_1798_105);
  EXPECT_EQ(Submit(other_ground, &resp).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(CountRequests(), 1);
}

TEST_F(ErasureApiTest, ThirtyTwoConcurrentIdenticalSubmissionsCreateOne) {
  constexpr int kClients = 32;
  std::vector<std::thread> threads;
  std::vector<std::string> ids(kClients);
  std::vector<grpc::Status> statuses(kClients);
  std::atomic<int> salts{0};
  threads.reserve(kClients);
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      auto stub = v1::ErasureService::NewStub(ts_->Channel());
      v1::SubmitErasureResponse resp;
      statuses[i] = stub->SubmitErasure(ts_->Ctx(Role::kSubmitter).get(),
                                        Request("alice", "burst"), &resp);
      ids[i] = resp.erasure().id();
      if (!resp.subject_salt().empty()) ++salts;
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& st : statuses) EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 1u);
  EXPECT_EQ(salts.load(), 1) << "exactly one response created the request";
  EXPECT_EQ(CountRequests(), 1);
  EXPECT_EQ(
      QueryScalar(ts_->database_url(), "SELECT count(*) FROM erasure_tasks"),
      "1");
}

TEST_F(ErasureApiTest, IdempotencyKeysAreScopedPerApiKey) {
  v1::SubmitErasureResponse a, b;
  ASSERT_TRUE(Submit(Request("alice", "shared"), &a, Role::kSubmitter).ok());
  ASSERT_TRUE(Submit(Request("bob", "shared"), &b, Role::kAdmin).ok());
  EXPECT_NE(a.erasure().id(), b.erasure().id());
}

struct BadSubmit {
  std::string name;
  std::function<void(v1::SubmitErasureRequest&)> mutate;
  std::string expected_field;
};

TEST_F(ErasureApiTest, EachValidationErrorIsInvalidArgumentAndWritesNothing) {
  const std::vector<BadSubmit> cases = {
      {"empty subject", [](auto& r) { r.set_subject_id(""); }, "subject_id"},
      {"long subject", [](auto& r) { r.set_subject_id(std::string(257, 'x')); },
       "subject_id"},
      {"control char", [](auto& r) { r.set_subject_id("a\nb"); }, "subject_id"},
      {"no ground",
       [](auto& r) { r.set_legal_ground(v1::LEGAL_GROUND_UNSPECIFIED); },
       "legal_ground"},
      {"unknown ground",
       [](auto& r) { r.set_legal_ground(static_cast<v1::LegalGround>(99)); },
       "legal_ground"},
      {"other without reference",
       [](auto& r) {
         r.set_legal_ground(v1::LEGAL_GROUND_OTHER);
         r.clear_legal_reference();
       },
       "legal_reference"},
      {"long reference",
       [](auto& r) { r.set_legal_reference(std::string(1025, 'r')); },
       "legal_reference"},
      {"no key", [](auto& r) { r.clear_idempotency_key(); }, "idempotency_key"},
      {"key with space", [](auto& r) { r.set_idempotency_key("a b"); },
       "idempotency_key"},
      {"long key",
       [](auto& r) { r.set_idempotency_key(std::string(129, 'k')); },
       "idempotency_key"},
      {"bad model id", [](auto& r) { r.add_model_ids("not-a-uuid"); },
       "model_ids[0]"},
      {"too many models",
       [](auto& r) {
         for (int i = 0; i < 101; ++i) {
           r.add_model_ids("00000000-0000-4000-8000-000000000000");
         }
       },
       "model_ids"},
      {"short salt", [](auto& r) { r.set_subject_salt(std::string(31, 's')); },
       "subject_salt"},
      {"long salt", [](auto& r) { r.set_subject_salt(std::string(33, 's')); },
       "subject_salt"},
      {"hex salt", [](auto& r) { r.set_subject_salt(std::string(64, 'a')); },
       "subject_salt"},
  };
  for (const auto& c : cases) {
    auto req = Request("alice", "valid-key");
    c.mutate(req);
    v1::SubmitErasureResponse resp;
    auto st = Submit(req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.name;
    EXPECT_NE(st.error_message().find(c.expected_field), std::string::npos)
        << c.name << ": " << st.error_message();
  }
  EXPECT_EQ(CountRequests(), 0);
}

TEST_F(ErasureApiTest, AuthFailuresPerRole) {
  v1::SubmitErasureResponse resp;
  auto req = Request("alice", "auth");
  // Missing, malformed, unknown keys.
  EXPECT_EQ(ts_->erasures()
                .SubmitErasure(ts_->CtxWithToken("").get(), req, &resp)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ts_->erasures()
                .SubmitErasure(ts_->CtxWithToken("garbage").get(), req, &resp)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  std::string forged = ts_->token(Role::kAdmin);
  forged.back() = forged.back() == '0' ? '1' : '0';
  EXPECT_EQ(ts_->erasures()
                .SubmitErasure(ts_->CtxWithToken(forged).get(), req, &resp)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // Wrong roles.
  EXPECT_EQ(Submit(req, &resp, Role::kOperator).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Submit(req, &resp, Role::kAuditor).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // Again, now that the keys are in the authenticator's cache (SubmitErasure
  // then checks them on the gRPC thread, without the database).
  EXPECT_EQ(Submit(req, &resp, Role::kOperator).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(Submit(Request("alice", "auth-ok"), &resp).ok());
  std::string forged_cached = ts_->token(Role::kSubmitter);
  forged_cached.back() = forged_cached.back() == '0' ? '1' : '0';
  EXPECT_EQ(ts_->erasures()
                .SubmitErasure(ts_->CtxWithToken(forged_cached).get(),
                               Request("alice", "auth-forged"), &resp)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  v1::ListErasuresResponse list;
  EXPECT_EQ(ts_->erasures()
                .ListErasures(ts_->Ctx(Role::kSubmitter).get(), {}, &list)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::CreateDatasetRequest create;
  create.set_name("x");
  v1::Dataset dataset;
  EXPECT_EQ(
      ts_->datasets()
          .CreateDataset(ts_->Ctx(Role::kSubmitter).get(), create, &dataset)
          .error_code(),
      grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(ts_->datasets()
                .CreateDataset(ts_->Ctx(Role::kAuditor).get(), create, &dataset)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::GetModelRequest get_model;
  get_model.set_id(model_);
  v1::Model model;
  EXPECT_EQ(ts_->models()
                .GetModel(ts_->Ctx(Role::kSubmitter).get(), get_model, &model)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(ts_->models()
                  .GetModel(ts_->Ctx(Role::kAuditor).get(), get_model, &model)
                  .ok());
  // Allowed roles.
  EXPECT_TRUE(Submit(req, &resp, Role::kSubmitter).ok());
  EXPECT_TRUE(ts_->erasures()
                  .ListErasures(ts_->Ctx(Role::kAuditor).get(), {}, &list)
                  .ok());
  EXPECT_EQ(CountRequests(), 2);  // "auth-ok" and this one
}

TEST_F(ErasureApiTest, RevokedKeyIsRejected) {
  QueryScalar(
      ts_->database_url(),
      "UPDATE api_keys SET revoked_at = now() WHERE role = 'submitter'");
  v1::SubmitErasureResponse resp;
  EXPECT_EQ(Submit(Request("alice", "revoked"), &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(ErasureApiTest, ListPagesThroughEveryRequestOnceNewestFirst) {
  std::vector<std::string> created;
  for (int i = 0; i < 7; ++i) {
    v1::SubmitErasureResponse resp;
    ASSERT_TRUE(
        Submit(Request(i % 2 ? "alice" : "nobody", absl::StrCat("p", i)), &resp)
            .ok());
    created.push_back(resp.erasure().id());
  }
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    v1::ListErasuresRequest req;
    req.set_page_size(3);
    req.set_page_token(token);
    v1::ListErasuresResponse resp;
    ASSERT_TRUE(ts_->erasures()
                    .ListErasures(ts_->Ctx(Role::kOperator).get(), req, &resp)
                    .ok());
    for (const auto& e : resp.erasures()) seen.push_back(e.id());
    token = resp.next_page_token();
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  std::vector<std::string> expected(created.rbegin(), created.rend());
  EXPECT_EQ(seen, expected);

  // Filters: state and model.
  v1::ListErasuresRequest queued;
  queued.set_state(v1::ERASURE_STATE_QUEUED);
  queued.set_model_id(model_);
  v1::ListErasuresResponse resp;
  ASSERT_TRUE(ts_->erasures()
                  .ListErasures(ts_->Ctx(Role::kOperator).get(), queued, &resp)
                  .ok());
  EXPECT_EQ(resp.erasures_size(), 3);
  for (const auto& e : resp.erasures()) {
    EXPECT_EQ(e.state(), v1::ERASURE_STATE_QUEUED);
  }

  // Bad page size and a token used with other filters.
  v1::ListErasuresRequest bad;
  bad.set_page_size(1001);
  EXPECT_EQ(ts_->erasures()
                .ListErasures(ts_->Ctx(Role::kOperator).get(), bad, &resp)
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::ListErasuresRequest first;
  first.set_page_size(2);
  ASSERT_TRUE(ts_->erasures()
                  .ListErasures(ts_->Ctx(Role::kOperator).get(), first, &resp)
                  .ok());
  v1::ListErasuresRequest mismatched;
  mismatched.set_page_token(resp.next_page_token());
  mismatched.set_state(v1::ERASURE_STATE_QUEUED);
  EXPECT_EQ(
      ts_->erasures()
          .ListErasures(ts_->Ctx(Role::kOperator).get(), mismatched, &resp)
          .error_code(),
      grpc::StatusCode::INVALID_ARGUMENT);
  v1::ListErasuresRequest garbage;
  garbage.set_page_token("bm9wZQ");
  EXPECT_EQ(ts_->erasures()
                .ListErasures(ts_->Ctx(Role::kOperator).get(), garbage, &resp)
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ErasureApiTest, GetUnknownIsNotFoundAndMalformedIsInvalid) {
  v1::GetErasureRequest req;
  v1::Erasure e;
  req.set_id("00000000-0000-4000-8000-000000000000");
  EXPECT_EQ(ts_->erasures()
                .GetErasure(ts_->Ctx(Role::kAuditor).get(), req, &e)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
  req.set_id("nope");
  EXPECT_EQ(ts_->erasures()
                .GetErasure(ts_->Ctx(Role::kAuditor).get(), req, &e)
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ErasureApiTest, CancelBeforeClaimAndNotAfter) {
  v1::SubmitErasureResponse resp;
  ASSERT_TRUE(Submit(Request("alice", "c1"), &resp).ok());
  v1::CancelErasureRequest cancel;
  cancel.set_id(resp.erasure().id());
  v1::Erasure out;
  ASSERT_TRUE(ts_->erasures()
                  .CancelErasure(ts_->Ctx(Role::kSubmitter).get(), cancel, &out)
                  .ok());
  EXPECT_EQ(out.state(), v1::ERASURE_STATE_CANCELLED);
  EXPECT_EQ(out.tasks(0).state(), v1::TASK_STATE_CANCELLED);
  EXPECT_EQ(QueryScalar(ts_->database_url(),
                        "SELECT count(*) FROM erasure_requests WHERE "
                        "subject_key IS NOT NULL"),
            "0");
  // Cancelling again returns it unchanged.
  ASSERT_TRUE(ts_->erasures()
                  .CancelErasure(ts_->Ctx(Role::kSubmitter).get(), cancel, &out)
                  .ok());
  // A claimed task cannot be cancelled.
  ASSERT_TRUE(Submit(Request("alice", "c2"), &resp).ok());
  QueryScalar(ts_->database_url(),
              absl::StrCat("UPDATE erasure_tasks SET state = 'LEASED', "
                           "attempts = 1 WHERE erasure_id = '",
                           resp.erasure().id(), "'"));
  cancel.set_id(resp.erasure().id());
  auto st = ts_->erasures().CancelErasure(ts_->Ctx(Role::kSubmitter).get(),
                                          cancel, &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  // A terminal request cannot be cancelled.
  ASSERT_TRUE(Submit(Request("nobody", "c3"), &resp).ok());
  cancel.set_id(resp.erasure().id());
  EXPECT_EQ(ts_->erasures()
                .CancelErasure(ts_->Ctx(Role::kSubmitter).get(), cancel, &out)
                .error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(ErasureApiTest, SubmitterKeysSeeAndCancelOnlyTheirOwnRequests) {
  v1::SubmitErasureResponse resp;
  ASSERT_TRUE(Submit(Request("alice", "own-1"), &resp).ok());
  const std::string id = resp.erasure().id();
  // A second product backend with its own submitter key.
  storage::Database db({ts_->database_url(), 1, 30});
  auto other = storage::PgApiKeyStore(&db).Create(
      {Role::kSubmitter, "backend-b", {}}, "test");
  ASSERT_TRUE(other.ok()) << other.status();

  v1::GetErasureRequest get;
  get.set_id(id);
  v1::Erasure out;
  EXPECT_EQ(ts_->erasures()
                .GetErasure(ts_->CtxWithToken(other->token).get(), get, &out)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::CancelErasureRequest cancel;
  cancel.set_id(id);
  EXPECT_EQ(
      ts_->erasures()
          .CancelErasure(ts_->CtxWithToken(other->token).get(), cancel, &out)
          .error_code(),
      grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(QueryScalar(
                ts_->database_url(),
                absl::StrCat("SELECT state FROM erasure_requests WHERE id = '",
                             id, "'")),
            "QUEUED");
  v1::WatchErasureRequest watch;
  watch.set_id(id);
  auto ctx = ts_->CtxWithToken(other->token);
  auto reader = ts_->erasures().WatchErasure(ctx.get(), watch);
  v1::ErasureEvent event;
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);

  // The submitting key, operators and auditors read it; an admin may cancel it.
  EXPECT_TRUE(ts_->erasures()
                  .GetErasure(ts_->Ctx(Role::kSubmitter).get(), get, &out)
                  .ok());
  EXPECT_TRUE(ts_->erasures()
                  .GetErasure(ts_->Ctx(Role::kOperator).get(), get, &out)
                  .ok());
  EXPECT_TRUE(ts_->erasures()
                  .GetErasure(ts_->Ctx(Role::kAuditor).get(), get, &out)
                  .ok());
  ASSERT_TRUE(ts_->erasures()
                  .CancelErasure(ts_->Ctx(Role::kAdmin).get(), cancel, &out)
                  .ok());
  EXPECT_EQ(out.state(), v1::ERASURE_STATE_CANCELLED);
}

TEST_F(ErasureApiTest, WatchStreamsChangesUntilTerminal) {
  v1::SubmitErasureResponse resp;
  ASSERT_TRUE(Submit(Request("alice", "w1"), &resp).ok());
  const std::string id = resp.erasure().id();
  auto ctx = ts_->Ctx(Role::kSubmitter);
  v1::WatchErasureRequest req;
  req.set_id(id);
  auto reader = ts_->erasures().WatchErasure(ctx.get(), req);
  v1::ErasureEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.erasure().state(), v1::ERASURE_STATE_QUEUED);
  // Another party (a worker, here SQL) moves it on; the watcher sees each.
  QueryScalar(ts_->database_url(),
              absl::StrCat("UPDATE erasure_requests SET state = 'RUNNING', "
                           "updated_at = now() WHERE id = '",
                           id, "'"));
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.erasure().state(), v1::ERASURE_STATE_RUNNING);
  QueryScalar(ts_->database_url(),
              absl::StrCat("UPDATE erasure_requests SET state = 'COMPLETED', "
                           "updated_at = now(), completed_at = now() "
                           "WHERE id = '",
                           id, "'"));
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.erasure().state(), v1::ERASURE_STATE_COMPLETED);
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_TRUE(reader->Finish().ok());
}

// Issue 17 item 10: revoking a key ends the watch streams it opened (the
// test server caches no key, so the next poll sees the revocation).
TEST_F(ErasureApiTest, WatchOfARevokedKeyEnds) {
  v1::SubmitErasureResponse resp;
  ASSERT_TRUE(Submit(Request("alice", "w-revoked"), &resp).ok());
  auto ctx = ts_->Ctx(Role::kSubmitter);
  v1::WatchErasureRequest req;
  req.set_id(resp.erasure().id());
  auto reader = ts_->erasures().WatchErasure(ctx.get(), req);
  v1::ErasureEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.erasure().state(), v1::ERASURE_STATE_QUEUED);
  QueryScalar(
      ts_->database_url(),
      "UPDATE api_keys SET revoked_at = now() WHERE role = 'submitter'");
  EXPECT_FALSE(reader->Read(&event));  // ends without another event
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(ErasureApiTest, WatchUnknownRequestIsNotFound) {
  auto ctx = ts_->Ctx(Role::kSubmitter);
  v1::WatchErasureRequest req;
  req.set_id("00000000-0000-4000-8000-000000000000");
  auto reader = ts_->erasures().WatchErasure(ctx.get(), req);
  v1::ErasureEvent event;
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

// #14 item 2c: uploads and SubmitErasure apply one subject-id rule, so no
// uploaded subject is beyond erasure; a refused upload stores nothing.
TEST_F(ErasureApiTest, UploadRefusesEverySubjectIdThatSubmitRefuses) {
  const int64_t records = CountRecords();
  // \364\220\200\200 is F4 90 80 80 (octal: a hex escape would eat "be").
  for (const std::string bad :
       {"tab\there", "bell\x07", "del\x7f", "cr\rhere", "\xC0\xAFoverlong",
        "\xED\xA0\x80surrogate", "\364\220\200\200beyond", "\xF5\x80\x80\x80",
        "\xFF"}) {
    auto st = UploadCsv("dave,0,train,1,1,1,1\n" + bad + ",1,train,1,1,1,1\n");
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(st.error_message().find("line 3: subject_id"), std::string::npos)
        << st.error_message();
    // A `string` field that is not UTF-8 never reaches the handler (the
    // server's protobuf parser refuses the message); the rest reach
    // CheckSubjectId.
    v1::SubmitErasureResponse resp;
    st = Submit(Request(bad, "bad-subject"), &resp);
    EXPECT_FALSE(st.ok());
    if (base::IsValidUtf8(bad)) {
      EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
      EXPECT_NE(st.error_message().find("subject_id has a control character"),
                std::string::npos)
          << st.error_message();
    }
  }
  EXPECT_EQ(CountRecords(), records) << "dave (line 2) must not be stored";
  EXPECT_EQ(CountRequests(), 0);
}

TEST_F(ErasureApiTest, EveryUploadedSubjectCanBeSubmitted) {
  int n = 0;
  for (const std::string good : {"j\xC3\xBCrgen", "smile \xF0\x9F\x98\x80",
                                 "\xF4\x8F\xBF\xBF", "\xEF\xBF\xBD"}) {
    ASSERT_TRUE(UploadCsv(good + ",0,train,1,1,1,1\n").ok());
    v1::SubmitErasureResponse resp;
    ASSERT_TRUE(Submit(Request(good, absl::StrCat("good-", n++)), &resp).ok());
    EXPECT_EQ(resp.erasure().state(), v1::ERASURE_STATE_QUEUED);
    EXPECT_EQ(resp.erasure().tasks_size(), 1);
  }
}

// #14 item 5: the client draws the salt, so a lost response loses nothing.
std::string Commitment(const std::string& salt, const std::string& subject) {
  return storage::Sha256("lethe-subject/v1" + salt + subject);
}

TEST_F(ErasureApiTest, ClientSaltIsEchoedAndOpensTheCommitment) {
  const std::string salt = storage::RandomBytes(32);
  auto req = Request("alice", "client-salt");
  req.set_subject_salt(salt);
  v1::SubmitErasureResponse resp;
  ASSERT_TRUE(Submit(req, &resp).ok());
  EXPECT_FALSE(resp.replayed());
  EXPECT_EQ(resp.subject_salt(), salt);
  EXPECT_EQ(resp.erasure().subject_commitment(), Commitment(salt, "alice"));
  EXPECT_NE(resp.erasure().subject_commitment(), Commitment(salt, "bob"));
}

TEST_F(ErasureApiTest, LostResponseReplayReturnsTheCommitmentTheSaltOpens) {
  const std::string salt = storage::RandomBytes(32);
  auto req = Request("alice", "lost-response");
  req.set_subject_salt(salt);
  v1::SubmitErasureResponse lost, replay;
  ASSERT_TRUE(Submit(req, &lost).ok());  // committed; the answer never arrives
  ASSERT_TRUE(Submit(req, &replay).ok());
  EXPECT_TRUE(replay.replayed());
  EXPECT_EQ(replay.erasure().id(), lost.erasure().id());
  EXPECT_EQ(replay.subject_salt(), salt);
  EXPECT_EQ(replay.erasure().subject_commitment(), Commitment(salt, "alice"));
  v1::GetErasureRequest get;
  get.set_id(replay.erasure().id());
  v1::Erasure stored;
  ASSERT_TRUE(ts_->erasures()
                  .GetErasure(ts_->Ctx(Role::kAuditor).get(), get, &stored)
                  .ok());
  EXPECT_EQ(stored.subject_commitment(), Commitment(salt, "alice"));
  EXPECT_EQ(CountRequests(), 1);
}

TEST_F(ErasureApiTest, ReplayWithAnotherSaltIsAlreadyExists) {
  auto req = Request("alice", "salted");
  req.set_subject_salt(storage::RandomBytes(32));
  v1::SubmitErasureResponse resp;
  ASSERT_TRUE(Submit(req, &resp).ok());
  auto other_salt = req;
  other_salt.set_subject_salt(storage::RandomBytes(32));
  auto st = Submit(other_salt, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::ALREADY_EXISTS)
      << st.error_message();
  auto no_salt = req;
  no_salt.clear_subject_salt();
  EXPECT_EQ(Submit(no_salt, &resp).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  // And the other way round: a server-salted request cannot be replayed
  // with a salt, which would not open its commitment.
  ASSERT_TRUE(Submit(Request("alice", "unsalted"), &resp).ok());
  auto late_salt = Request("alice", "unsalted");
  late_salt.set_subject_salt(storage::RandomBytes(32));
  EXPECT_EQ(Submit(late_salt, &resp).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(CountRequests(), 2);
}

// #17 item 2: a WatchErasure cancelled while its authorisation waited in
// the executor's queue made OnCancel finish the call; gRPC then freed the
// context, and the queued task read its metadata (ASan: heap-use-after-
// free in Authenticator::Parse). A replica with one handler thread, busy
// with a burst of key lookups, keeps the watches queued past their 1 ms
// deadline. Run under AddressSanitizer to see the old failure.
TEST_F(ErasureApiTest, WatchCancelledBeforeItsAuthorizationLeavesServerUp) {
  v1::SubmitErasureResponse submitted;
  ASSERT_TRUE(Submit(Request("alice", "watched"), &submitted).ok());
  // No limit on failed authentications: the burst must reach the executor
  // (the limits have their own test, LimitsTest below).
  auto replica = ts_->StartReplica([](server::ServerOptions& o) {
    o.handler_threads = 1;
    o.auth_failures_per_peer = 0;
    o.max_queued_calls = 0;
  });
  ASSERT_NE(replica, nullptr);
  auto stub = v1::ErasureService::NewStub(ts_->Channel(replica->port()));
  v1::GetErasureRequest get;
  get.set_id(submitted.erasure().id());

  // Unknown, well-formed keys, each new: each costs a lookup in PostgreSQL
  // (the negative cache holds only keys seen before). The
  // burst keeps kInFlight calls queued on the replica's one executor thread
  // until every watch has ended: each finished call starts another, so a
  // watch always queues behind them, however fast the machine.
  constexpr int kInFlight = 500;
  struct Call {
    grpc::ClientContext ctx;
    v1::Erasure resp;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::unique_ptr<Call>> calls;  // guarded by mu
  int started = 0;                          // guarded by mu
  int done = 0;                             // guarded by mu
  bool stop = false;                        // guarded by mu
  std::function<void()> start_one = [&] {   // with mu held
    auto& call = *calls.emplace_back(std::make_unique<Call>());
    ++started;
    call.ctx.AddMetadata(
        "authorization",
        absl::StrCat("Bearer lethe_", storage::ToHex(storage::RandomBytes(8)),
                     "_", storage::ToHex(storage::RandomBytes(32))));
    call.ctx.set_deadline(std::chrono::system_clock::now() +
                          std::chrono::seconds(120));
    stub->async()->GetErasure(&call.ctx, &get, &call.resp,
                              [&](const grpc::Status&) {
                                std::lock_guard lock(mu);
                                ++done;
                                if (!stop) start_one();
                                cv.notify_all();
                              });
  };
  {
    std::lock_guard lock(mu);
    for (int i = 0; i < kInFlight; ++i) start_one();
  }
  v1::WatchErasureRequest watch;
  watch.set_id(submitted.erasure().id());
  for (int i = 0; i < 100; ++i) {
    auto ctx = ts_->Ctx(Role::kSubmitter);
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(1));
    auto reader = stub->WatchErasure(ctx.get(), watch);
    v1::ErasureEvent event;
    while (reader->Read(&event)) {
    }
    EXPECT_EQ(reader->Finish().error_code(),
              grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  std::unique_lock lock(mu);
  stop = true;
  EXPECT_LT(done, started) << "no call of the burst was left when the last "
                              "watch ended";
  auto all_done = [&] { return done == started; };
  const bool drained = cv.wait_for(lock, std::chrono::seconds(120), all_done);
  if (!drained) {   // the callbacks must not outlive `mu`
    lock.unlock();  // with `stop` set, `calls` no longer changes
    for (auto& call : calls) call->ctx.TryCancel();
    lock.lock();
    cv.wait(lock, all_done);
  }
  lock.unlock();
  ASSERT_TRUE(drained) << "the burst took over 120 s to drain";

  v1::Erasure got;
  auto st = stub->GetErasure(ts_->Ctx(Role::kSubmitter).get(), get, &got);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(got.id(), submitted.erasure().id());
}

// Issue 17, item 4: the resource limits, each on a replica of its own.
TEST_F(ErasureApiTest, LimitsCallsPerKey) {
  // Half a call a second, a bucket of one: the first call passes, a second
  // right after it is refused until the bucket refills (2 s).
  auto replica = ts_->StartReplica(
      [](server::ServerOptions& o) { o.rate_limit_per_key = 0.5; });
  ASSERT_NE(replica, nullptr);
  auto stub = v1::ErasureService::NewStub(ts_->Channel(replica->port()));
  v1::ListErasuresRequest req;
  v1::ListErasuresResponse resp;
  ASSERT_TRUE(
      stub->ListErasures(ts_->Ctx(Role::kOperator).get(), req, &resp).ok());
  const grpc::Status limited =
      stub->ListErasures(ts_->Ctx(Role::kOperator).get(), req, &resp);
  EXPECT_EQ(limited.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(limited.error_message().find("rate limit"), std::string::npos)
      << limited.error_message();
  // Another key has its own bucket.
  EXPECT_TRUE(
      stub->ListErasures(ts_->Ctx(Role::kAuditor).get(), req, &resp).ok());
}

TEST_F(ErasureApiTest, LimitsFailedAuthenticationsPerAddress) {
  // One failure a second, a bucket of five: five bogus keys are looked up
  // and refused, then the address is refused before any lookup, while a
  // key the replica has verified already still works.
  auto replica = ts_->StartReplica([](server::ServerOptions& o) {
    o.auth_failures_per_peer = 1;
    o.key_cache_ttl = std::chrono::seconds(300);
  });
  ASSERT_NE(replica, nullptr);
  auto stub = v1::ErasureService::NewStub(ts_->Channel(replica->port()));
  v1::ListErasuresRequest req;
  v1::ListErasuresResponse resp;
  ASSERT_TRUE(
      stub->ListErasures(ts_->Ctx(Role::kOperator).get(), req, &resp).ok());
  std::vector<grpc::StatusCode> codes;
  for (int i = 0; i < 8; ++i) {
    auto ctx = ts_->CtxWithToken(
        absl::StrCat("lethe_", storage::ToHex(storage::RandomBytes(8)), "_",
                     storage::ToHex(storage::RandomBytes(32))));
    codes.push_back(stub->ListErasures(ctx.get(), req, &resp).error_code());
  }
  EXPECT_EQ(codes.front(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(codes.back(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(
      stub->ListErasures(ts_->Ctx(Role::kOperator).get(), req, &resp).ok());
}

TEST_F(ErasureApiTest, LimitsWatchStreamsPerKey) {
  auto replica = ts_->StartReplica(
      [](server::ServerOptions& o) { o.max_watches_per_key = 2; });
  ASSERT_NE(replica, nullptr);
  auto stub = v1::ErasureService::NewStub(ts_->Channel(replica->port()));
  v1::SubmitErasureResponse submitted;
  ASSERT_TRUE(Submit(Request("alice", "watched"), &submitted).ok());
  v1::WatchErasureRequest req;
  req.set_id(submitted.erasure().id());
  struct Watch {
    std::unique_ptr<grpc::ClientContext> ctx;
    std::unique_ptr<grpc::ClientReader<v1::ErasureEvent>> reader;
  };
  auto open = [&] {
    Watch w{ts_->Ctx(Role::kSubmitter), nullptr};
    w.reader = stub->WatchErasure(w.ctx.get(), req);
    return w;
  };
  v1::ErasureEvent event;
  Watch first = open();
  ASSERT_TRUE(first.reader->Read(&event));  // open and counted
  Watch second = open();
  ASSERT_TRUE(second.reader->Read(&event));
  Watch third = open();
  EXPECT_FALSE(third.reader->Read(&event));
  const grpc::Status refused = third.reader->Finish();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(refused.error_message().find("--max-watches-per-key"),
            std::string::npos)
      << refused.error_message();
  // Another key may watch; a closed stream frees its slot.
  Watch operator_watch{ts_->Ctx(Role::kOperator), nullptr};
  operator_watch.reader = stub->WatchErasure(operator_watch.ctx.get(), req);
  ASSERT_TRUE(operator_watch.reader->Read(&event));
  first.ctx->TryCancel();
  while (first.reader->Read(&event)) {
  }
  first.reader->Finish();
  bool reopened = false;
  for (int i = 0; i < 100 && !reopened; ++i) {  // the slot frees on OnDone
    Watch again = open();
    reopened = again.reader->Read(&event);
    again.ctx->TryCancel();
    while (again.reader->Read(&event)) {
    }
    again.reader->Finish();
    if (!reopened) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(reopened);
  second.ctx->TryCancel();
  operator_watch.ctx->TryCancel();
}

TEST_F(ErasureApiTest, AuditLogIsAppendOnly) {
  v1::SubmitErasureResponse resp;
  ASSERT_TRUE(Submit(Request("alice", "audit"), &resp).ok());
  EXPECT_GE(std::stoi(QueryScalar(ts_->database_url(),
                                  "SELECT count(*) FROM audit_log")),
            1);
  for (const char* sql :
       {"DELETE FROM audit_log", "UPDATE audit_log SET actor = 'x'"}) {
    auto refused = storage::RunSql(ts_->database_url(), sql);
    EXPECT_FALSE(refused.ok()) << sql;
    EXPECT_FALSE(absl::IsUnavailable(refused.status())) << sql;
  }
}

}  // namespace
}  // namespace lethe::testing
