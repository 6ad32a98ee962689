// The gRPC handlers on the in-memory backend (storage/memory): validation,
// authorisation, idempotency and error codes, fast and without a
// database. The same paths against PostgreSQL are erasure_api_test and
// dataset_model_api_test.
#include <string>

#include <gtest/gtest.h>

#include "tests/server/test_server.h"

namespace lethe::testing {
namespace {

using storage::Role;

class ServerHandlersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ts_ = TestServer::StartInMemory();
    ASSERT_NE(ts_, nullptr);
    dataset_ = CreateDatasetWithRows(*ts_, "people",
                                     "alice,1,train,0.1,0.2,0.3,0.4\n"
                                     "alice,2,train,0.5,0.6,0.7,0.8\n"
                                     "bob,0,train,1,2,3,4\n");
    model_ = RegisterModel(*ts_, "people-logreg", dataset_);
  }

  static v1::SubmitErasureRequest Request(const std::string& subject,
                                          const std::string& key) {
    v1::SubmitErasureRequest req;
    req.set_subject_id(subject);
    req.set_legal_ground(v1::LEGAL_GROUND_GDPR_ART17_1B_CONSENT_WITHDRAWN);
    req.set_idempotency_key(key);
    return req;
  }

  grpc::Status Submit(const v1::SubmitErasureRequest& req,
                      v1::SubmitErasureResponse* resp,
                      Role role = Role::kSubmitter) {
    return ts_->erasures().SubmitErasure(ts_->Ctx(role).get(), req, resp);
  }

  int ListedRequests() {
    v1::ListErasuresRequest req;
    v1::ListErasuresResponse resp;
    auto st = ts_->erasures().ListErasures(ts_->Ctx(Role::kOperator).get(), req,
                                           &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp.erasures_size();
  }

  std::unique_ptr<TestServer> ts_;
  std::string dataset_;
  std::string model_;
};

TEST_F(ServerHandlersTest, SubmitQueuesATaskAndReplaysItsKey) {
  v1::SubmitErasureResponse first;
  ASSERT_TRUE(Submit(Request("alice", "k1"), &first).ok());
  EXPECT_EQ(first.erasure().state(), v1::ERASURE_STATE_QUEUED);
  ASSERT_EQ(first.erasure().tasks_size(), 1);
  EXPECT_EQ(first.erasure().tasks(0).model_id(), model_);
  EXPECT_FALSE(first.replayed());

  v1::SubmitErasureResponse again;
  ASSERT_TRUE(Submit(Request("alice", "k1"), &again).ok());
  EXPECT_TRUE(again.replayed());
  EXPECT_EQ(again.erasure().id(), first.erasure().id());

  v1::SubmitErasureResponse other;
  EXPECT_EQ(Submit(Request("bob", "k1"), &other).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(ListedRequests(), 1);
}

TEST_F(ServerHandlersTest, InvalidRequestsChangeNothing) {
  v1::SubmitErasureResponse resp;
  auto no_subject = Request("", "k1");
  EXPECT_EQ(Submit(no_subject, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  auto no_key = Request("alice", "");
  EXPECT_EQ(Submit(no_key, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  auto control = Request("tab\there", "k2");
  EXPECT_EQ(Submit(control, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  auto no_ground = Request("alice", "k3");
  no_ground.clear_legal_ground();
  EXPECT_EQ(Submit(no_ground, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  auto bad_scope = Request("alice", "k4");
  bad_scope.add_model_ids("not-a-uuid");
  EXPECT_EQ(Submit(bad_scope, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  auto unknown_scope = Request("alice", "k5");
  unknown_scope.add_model_ids("00000000-0000-4000-8000-000000000001");
  EXPECT_EQ(Submit(unknown_scope, &resp).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(ListedRequests(), 0);
}

TEST_F(ServerHandlersTest, KeysAndRolesAreChecked) {
  v1::SubmitErasureResponse resp;
  grpc::ClientContext anonymous;
  EXPECT_EQ(ts_->erasures()
                .SubmitErasure(&anonymous, Request("alice", "k1"), &resp)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  auto forged =
      ts_->CtxWithToken("lethe_0123456789abcdef_" + std::string(64, 'a'));
  EXPECT_EQ(ts_->erasures()
                .SubmitErasure(forged.get(), Request("alice", "k1"), &resp)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Submit(Request("alice", "k1"), &resp, Role::kAuditor).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(ListedRequests(), 0);
}

// Issue 17, item 5: a submitter key scoped to datasets erases from their
// models only, and cannot tell another tenant's model from a made-up id.
TEST_F(ServerHandlersTest, KeyScopedToDatasetsReachesOnlyTheirModels) {
  const std::string other =
      CreateDatasetWithRows(*ts_, "other-tenant", "alice,1,train,9,9,9,9\n");
  auto& keys = ts_->server()->backend()->api_keys();
  auto theirs = keys.Create({Role::kSubmitter, "tenant b", {other}}, "test");
  ASSERT_TRUE(theirs.ok()) << theirs.status();
  auto ours = keys.Create({Role::kSubmitter, "tenant a", {dataset_}}, "test");
  ASSERT_TRUE(ours.ok()) << ours.status();

  // Tenant b's key: alice is in its dataset, but no model uses it, so her
  // record there goes at once; people-logreg is not its model.
  v1::SubmitErasureResponse resp;
  ASSERT_TRUE(ts_->erasures()
                  .SubmitErasure(ts_->CtxWithToken(theirs->token).get(),
                                 Request("alice", "b1"), &resp)
                  .ok());
  EXPECT_EQ(resp.erasure().state(), v1::ERASURE_STATE_NOTHING_TO_ERASE);
  EXPECT_EQ(resp.erasure().tasks_size(), 0);
  auto named = Request("alice", "b2");
  named.add_model_ids(model_);
  const grpc::Status refused = ts_->erasures().SubmitErasure(
      ts_->CtxWithToken(theirs->token).get(), named, &resp);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(refused.error_message().find("datasets of this API key"),
            std::string::npos)
      << refused.error_message();

  // Tenant a's key reaches people-logreg.
  ASSERT_TRUE(ts_->erasures()
                  .SubmitErasure(ts_->CtxWithToken(ours->token).get(),
                                 Request("alice", "a1"), &resp)
                  .ok());
  EXPECT_EQ(resp.erasure().state(), v1::ERASURE_STATE_QUEUED);
  ASSERT_EQ(resp.erasure().tasks_size(), 1);
  EXPECT_EQ(resp.erasure().tasks(0).model_id(), model_);
}

TEST_F(ServerHandlersTest, UnknownRequestIsNotFoundAndCancelWorksOnce) {
  v1::GetErasureRequest get;
  get.set_id("00000000-0000-4000-8000-000000000002");
  v1::Erasure erasure;
  EXPECT_EQ(ts_->erasures()
                .GetErasure(ts_->Ctx(Role::kSubmitter).get(), get, &erasure)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);

  v1::SubmitErasureResponse submitted;
  ASSERT_TRUE(Submit(Request("alice", "k1"), &submitted).ok());
  v1::CancelErasureRequest cancel;
  cancel.set_id(submitted.erasure().id());
  v1::Erasure cancelled;
  auto st = ts_->erasures().CancelErasure(ts_->Ctx(Role::kSubmitter).get(),
                                          cancel, &cancelled);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(cancelled.state(), v1::ERASURE_STATE_CANCELLED);
}

}  // namespace
}  // namespace lethe::testing
