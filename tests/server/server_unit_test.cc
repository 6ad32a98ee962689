// Pure logic of the server layer: validation, subject keying, page tokens,
// configuration.
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <memory>
#include <mutex>

#include <gtest/gtest.h>
#include <pqxx/except>

#include "observability/log.h"
#include "server/auth.h"
#include "server/convert.h"
#include "server/deps.h"
#include "server/erasure_service.h"
#include "server/executor.h"
#include "server/subject.h"
#include "storage/api_key_store.h"
#include "storage/hash.h"
#include "storage/postgres/database.h"
#include "storage/reachability.h"
#include "validate/validate.h"

namespace lethe::server {
namespace {

TEST(HashTest, Sha256AndHmacKnownVectors) {
  EXPECT_EQ(storage::ToHex(storage::Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // RFC 4231 test case 2.
  EXPECT_EQ(storage::ToHex(
                storage::HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(SubjectTest, CommitmentIsDomainSeparatedSaltedSha256) {
  const std::string salt(32, '\x01');
  EXPECT_EQ(SubjectCommitment(salt, "alice"),
            storage::Sha256(std::string("lethe-subject/v1") + salt + "alice"));
  EXPECT_NE(SubjectCommitment(salt, "alice"),
            SubjectCommitment(std::string(32, '\x02'), "alice"));
  EXPECT_EQ(SubjectKey("secret", "alice"),
            storage::HmacSha256("secret", "alice"));
}

TEST(SubjectTest, PreparedSubmissionCarriesNoRawSubject) {
  v1::SubmitErasureRequest req;
  req.set_subject_id("alice@example.com");
  req.set_legal_ground(v1::LEGAL_GROUND_CCPA_1798_105);
  req.set_idempotency_key("k");
  req.add_model_ids("bbbbbbbb-0000-4000-8000-000000000000");
  req.add_model_ids("aaaaaaaa-0000-4000-8000-000000000000");
  req.add_model_ids("bbbbbbbb-0000-4000-8000-000000000000");
  auto p =
      PrepareSubmission(req, "key", std::string(32, 's'), std::string(32, 't'));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->scope_model_ids.size(), 2u);
  EXPECT_EQ(p->scope_model_ids[0], "aaaaaaaa-0000-4000-8000-000000000000");
  EXPECT_EQ(p->legal_ground, "CCPA_1798_105");
  for (const std::string* field :
       {&p->subject_key, &p->subject_commitment, &p->body_sha256}) {
    EXPECT_EQ(field->find("alice"), std::string::npos);
  }
  // The body hash ignores the salt (a replay has another) and scope order.
  auto q =
      PrepareSubmission(req, "key", std::string(32, 's'), std::string(32, 'u'));
  EXPECT_EQ(p->body_sha256, q->body_sha256);
  req.set_legal_reference("x");
  auto r =
      PrepareSubmission(req, "key", std::string(32, 's'), std::string(32, 't'));
  EXPECT_NE(p->body_sha256, r->body_sha256);
}

// Issue 17: the body hash is keyed with the server secret, so a subject key
// found elsewhere (records of another dataset) cannot be matched against a
// completed request whose own subject key was cleared. The unkeyed form,
// which requests stored before the change hold, travels only for replays.
TEST(SubjectTest, BodyHashIsKeyedWithTheServerSecret) {
  v1::SubmitErasureRequest req;
  req.set_subject_id("alice");
  req.set_legal_ground(v1::LEGAL_GROUND_GDPR_ART17_1A_NO_LONGER_NECESSARY);
  req.set_idempotency_key("k");
  const std::string secret(32, 's');
  auto p = PrepareSubmission(req, "key", secret, std::string(32, 't'));
  ASSERT_TRUE(p.ok()) << p.status();
  const std::string body =
      absl::StrCat("lethe-submit/v1\n", storage::ToHex(p->subject_key),
                   "\n\nGDPR_ART17_1A_NO_LONGER_NECESSARY\n");
  EXPECT_EQ(p->body_sha256, storage::HmacSha256(secret, body));
  EXPECT_EQ(p->legacy_body_sha256, storage::Sha256(body));
  // Knowing the subject key is not enough to recompute the stored hash.
  EXPECT_NE(p->body_sha256, storage::Sha256(body));
  auto other =
      PrepareSubmission(req, "key", std::string(32, 'o'), std::string(32, 't'));
  ASSERT_TRUE(other.ok());
  EXPECT_NE(p->body_sha256, other->body_sha256);
}

TEST(SubjectTest, ClientSaltMakesTheCommitmentAndBindsTheBody) {
  v1::SubmitErasureRequest req;
  req.set_subject_id("alice");
  req.set_legal_ground(v1::LEGAL_GROUND_CCPA_1798_105);
  req.set_idempotency_key("k");
  const std::string secret(32, 's');
  auto server_salted =
      PrepareSubmission(req, "key", secret, std::string(32, 't'));
  ASSERT_TRUE(server_salted.ok()) << server_salted.status();
  req.set_subject_salt(std::string(32, 'c'));
  auto p = PrepareSubmission(req, "key", secret, std::string(32, 't'));
  auto q = PrepareSubmission(req, "key", secret, std::string(32, 'u'));
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(
      p->subject_commitment,
      storage::Sha256("lethe-subject/v1" + std::string(32, 'c') + "alice"));
  EXPECT_EQ(p->subject_commitment, q->subject_commitment);  // no server salt
  EXPECT_EQ(p->body_sha256, q->body_sha256);
  EXPECT_NE(p->body_sha256, server_salted->body_sha256);
  req.set_subject_salt(std::string(32, 'd'));
  auto r = PrepareSubmission(req, "key", secret, std::string(32, 't'));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NE(p->body_sha256, r->body_sha256);
  for (size_t size : {1, 31, 33, 64}) {
    req.set_subject_salt(std::string(size, 'c'));
    auto bad = PrepareSubmission(req, "key", secret, std::string(32, 't'));
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << size;
    EXPECT_NE(bad.status().message().find("subject_salt"), std::string::npos);
  }
}

TEST(ValidateTest, SubjectIdIsStrictUtf8WithoutControlCharacters) {
  const std::vector<std::string> good = {"alice",
                                         "a",
                                         "with space",
                                         "Zo\xC3\xAB",
                                         "\xE2\x82\xAC",
                                         "\xEF\xBF\xBD",
                                         "\xF0\x9F\x98\x80",
                                         "\xF4\x8F\xBF\xBF",
                                         "\xED\x9F\xBF" /* U+D7FF */,
                                         "\xEE\x80\x80" /* U+E000 */,
                                         std::string(kMaxSubjectIdBytes, 's')};
  for (const std::string& id : good) {
    EXPECT_TRUE(CheckSubjectId(id).ok()) << storage::ToHex(id);
  }
  const std::vector<std::string> bad = {
      "", std::string(kMaxSubjectIdBytes + 1, 's'),
      // Control characters: C0, DEL, NUL inside.
      "tab\there", "line\nbreak", "cr\r", "\x01", "\x1F", "del\x7F",
      std::string("nul\0in", 6),
      // Overlong forms of '/', of U+07FF and of U+FFFF.
      "\xC0\xAF", "\xC1\xBF", "\xE0\x80\xAF", "\xE0\x9F\xBF",
      "\xF0\x80\x80\xAF", "\xF0\x8F\xBF\xBF",
      // Surrogates U+D800, U+DBFF, U+DC00, U+DFFF.
      "\xED\xA0\x80", "\xED\xAF\xBF", "\xED\xB0\x80", "\xED\xBF\xBF",
      // Above U+10FFFF, and the lead bytes F5..FF.
      "\xF4\x90\x80\x80", "\xF5\x80\x80\x80", "\xF7\xBF\xBF\xBF",
      "\xF8\x88\x80\x80\x80", "\xFC\x84\x80\x80\x80\x80", "\xFE", "\xFF",
      // Truncated, stray continuation, continuation missing.
      "\xC3", "\xE2\x82", "\xF0\x9F\x98", "\x80", "a\xBF", "\xC3(",
      "\xE2\x28\xA1"};
  for (const std::string& id : bad) {
    absl::Status st = CheckSubjectId(id);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument)
        << storage::ToHex(id);
    EXPECT_EQ(st.message().rfind("subject_id ", 0), 0u) << st.message();
  }
  EXPECT_NE(CheckSubjectId("a\tb").message().find("control character"),
            std::string::npos);
  // Messages never quote the id (personal data; errors are logged).
  EXPECT_EQ(CheckSubjectId("alice\x01").message().find("alice"),
            std::string::npos);
}

TEST(ValidateTest, SubmissionAppliesTheSubjectIdRule) {
  v1::SubmitErasureRequest req;
  req.set_legal_ground(v1::LEGAL_GROUND_CCPA_1798_105);
  req.set_idempotency_key("k");
  for (const std::string id : {"a\tb", "\xED\xA0\x80", "\xC0\xAF", ""}) {
    req.set_subject_id(id);
    auto p = PrepareSubmission(req, "key", std::string(32, 's'),
                               std::string(32, 't'));
    EXPECT_EQ(p.status(), CheckSubjectId(id)) << storage::ToHex(id);
  }
}

TEST(ValidateTest, UuidNameAndText) {
  EXPECT_TRUE(IsUuid("123e4567-e89b-12d3-a456-426614174000"));
  EXPECT_FALSE(IsUuid("123E4567-E89B-12D3-A456-426614174000"));
  EXPECT_FALSE(IsUuid("123e4567e89b12d3a456426614174000"));
  EXPECT_TRUE(CheckName("n", "fashion-mnist_v1.2").ok());
  EXPECT_FALSE(CheckName("n", "").ok());
  EXPECT_FALSE(CheckName("n", "a/b").ok());
  EXPECT_TRUE(CheckText("t", "Zoë", 10, true).ok());
  EXPECT_FALSE(CheckText("t", "\xc3", 10, true).ok());  // truncated UTF-8
  EXPECT_FALSE(CheckText("t", "", 10, true).ok());
  EXPECT_TRUE(CheckText("t", "", 10, false).ok());
  EXPECT_FALSE(CheckText("t", "tab\there", 10, false).ok());
  EXPECT_FALSE(CheckText("t", "\xED\xA0\x80", 10, false).ok());  // surrogate
  EXPECT_FALSE(CheckText("t", "\xC0\xAF", 10, false).ok());      // overlong
  EXPECT_FALSE(CheckText("t", "\xF5\x80\x80\x80", 10, false).ok());
  EXPECT_FALSE(CheckIdempotencyKey(std::string(129, 'a')).ok());
  EXPECT_TRUE(CheckIdempotencyKey(std::string(128, 'a')).ok());
}

TEST(ConvertTest, PageTokensRoundTripAndBindToFilters) {
  storage::PageCursor c{1700000000123456,
                        "123e4567-e89b-12d3-a456-426614174000"};
  const std::string token = EncodePageToken(c, "filters-a");
  auto back = DecodePageToken(token, "filters-a");
  ASSERT_TRUE(back.ok());
  ASSERT_TRUE(back->has_value());
  EXPECT_EQ((*back)->created_us, c.created_us);
  EXPECT_EQ((*back)->id, c.id);
  EXPECT_FALSE(DecodePageToken(token, "filters-b").ok());
  EXPECT_FALSE(DecodePageToken("!!", "filters-a").ok());
  auto empty = DecodePageToken("", "x");
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->has_value());
  EXPECT_EQ(*PageSize(0), 50);
  EXPECT_FALSE(PageSize(-1).ok());
}

TEST(ApiTokenTest, ParsesOnlyTheDocumentedShape) {
  const std::string good = "lethe_0123456789abcdef_" + std::string(64, 'a');
  auto t = storage::ParseApiToken(good);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->key_id, "0123456789abcdef");
  EXPECT_FALSE(storage::ParseApiToken("lethe_x").ok());
  EXPECT_FALSE(
      storage::ParseApiToken("lethe_0123456789abcdeg_" + std::string(64, 'a'))
          .ok());
}

// Issue 17, item 11: a key store error reaches the caller, who is not yet
// authenticated, as a generic UNAVAILABLE; the detail (hosts, users, SQL)
// goes to the log only.
class FailingKeyStore final : public storage::ApiKeyStore {
 public:
  // The store is down: every call fails as libpqxx reports it.
  absl::StatusOr<storage::NewApiKey> Create(
      const storage::ApiKeySpec& /*spec*/,
      const std::string& /*actor*/) override {
    return Down();
  }
  absl::StatusOr<storage::ApiKeyRow> Lookup(
      const std::string& /*key_id*/) override {
    return Down();
  }
  absl::Status Revoke(const std::string& /*key_id*/,
                      const std::string& /*actor*/) override {
    return Down();
  }

 private:
  static absl::Status Down() {
    return absl::UnavailableError(
        "connection to server at \"10.0.0.5\", port 5432 failed: FATAL: "
        "password authentication failed for user \"lethe_runtime\"");
  }
};

class CaptureSink final : public observability::LogSink {
 public:
  void Write(std::string_view line) override {
    std::lock_guard lock(mu_);
    lines_ += line;
  }
  std::string lines() {
    std::lock_guard lock(mu_);
    return lines_;
  }

 private:
  std::mutex mu_;
  std::string lines_;
};

TEST(AuthenticatorTest, KeyStoreErrorsAreGenericForCallersAndLogged) {
  FailingKeyStore keys;
  auto sink = std::make_shared<CaptureSink>();
  observability::Logger log(sink, observability::LogLevel::kInfo, "server");
  Authenticator auth(&keys, std::chrono::seconds(30), &log);
  AuthMetadata md{"Bearer lethe_0123456789abcdef_" + std::string(64, 'a')};
  auto principal = auth.Authenticate(md);
  EXPECT_EQ(principal.status().code(), absl::StatusCode::kUnavailable);
  const std::string message(principal.status().message());
  for (const char* secret : {"10.0.0.5", "5432", "lethe_runtime", "password"}) {
    EXPECT_EQ(message.find(secret), std::string::npos) << message;
    EXPECT_NE(sink->lines().find(secret), std::string::npos) << sink->lines();
  }
  EXPECT_NE(sink->lines().find("0123456789abcdef"), std::string::npos);
}

// Issue 17, item 4: a well-formed bogus or revoked key costs one lookup,
// not one per call, and is refused from the cache on the calling thread.
class CountingKeyStore final : public storage::ApiKeyStore {
 public:
  absl::StatusOr<storage::NewApiKey> Create(
      const storage::ApiKeySpec& /*spec*/,
      const std::string& /*actor*/) override {
    return absl::UnimplementedError("not here");
  }
  absl::StatusOr<storage::ApiKeyRow> Lookup(
      const std::string& key_id) override {
    ++lookups;
    if (key_id == "00000000000000ff") {
      storage::ApiKeyRow row;
      row.key_id = key_id;
      row.secret_sha256 = storage::Sha256(std::string(64, 'a'));
      row.revoked = true;
      return row;
    }
    return absl::NotFoundError("no such key");
  }
  absl::Status Revoke(const std::string& /*key_id*/,
                      const std::string& /*actor*/) override {
    return absl::UnimplementedError("not here");
  }
  int lookups = 0;
};

TEST(AuthenticatorTest, BogusAndRevokedKeysAreLookedUpOnce) {
  CountingKeyStore keys;
  // A positive TTL of 0 (look every valid key up) does not turn the
  // negative cache off: made-up ids stay made up, revocation is final.
  Authenticator auth(&keys, std::chrono::seconds(0));
  const AuthMetadata bogus{"Bearer lethe_0123456789abcdef_" +
                           std::string(64, 'a')};
  const AuthMetadata revoked{"Bearer lethe_00000000000000ff_" +
                             std::string(64, 'a')};
  for (const AuthMetadata* md : {&bogus, &revoked}) {
    EXPECT_EQ(auth.AuthorizeCached(*md, {storage::Role::kSubmitter}),
              std::nullopt);
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(auth.Authenticate(*md).status().code(),
                absl::StatusCode::kUnauthenticated);
    }
    auto cached = auth.AuthorizeCached(*md, {storage::Role::kSubmitter});
    ASSERT_TRUE(cached.has_value());
    EXPECT_EQ(cached->status().code(), absl::StatusCode::kUnauthenticated);
  }
  EXPECT_EQ(keys.lookups, 2);
  // Another bogus id is looked up in its turn.
  const AuthMetadata other{"Bearer lethe_fedcba9876543210_" +
                           std::string(64, 'a')};
  EXPECT_FALSE(auth.Authenticate(other).ok());
  EXPECT_EQ(keys.lookups, 3);
}

// Issue 17, item 11: PostgreSQL's text (SQL, constraint names, values)
// never reaches a client, whatever the call; the server's log has it.
TEST(ErrorDetailTest, DatabaseTextStaysInTheLog) {
  const char* kText =
      "ERROR:  duplicate key value violates unique constraint "
      "\"api_keys_pkey\" DETAIL:  Key (key_id)=(secret-ish) already exists.";
  std::vector<absl::Status> statuses;
  for (int kind = 0; kind < 3; ++kind) {
    try {
      if (kind == 0) throw pqxx::unique_violation(kText, "INSERT ...", "23505");
      if (kind == 1) throw pqxx::sql_error(kText, "SELECT ...", "42P01");
      throw std::runtime_error(kText);
    } catch (...) {
      statuses.push_back(storage::StatusFromCurrentException());
    }
  }
  auto sink = std::make_shared<CaptureSink>();
  observability::Logger log(sink, observability::LogLevel::kInfo, "server");
  for (const absl::Status& st : statuses) {
    const grpc::Status answer = ToGrpc(st, &log);
    EXPECT_EQ(answer.error_message().find("api_keys"), std::string::npos)
        << answer.error_message();
    EXPECT_EQ(answer.error_message().find("secret-ish"), std::string::npos);
    EXPECT_NE(storage::ErrorDetail(st).find("api_keys_pkey"),
              std::string::npos);
  }
  EXPECT_EQ(statuses[0].code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(statuses[1].code(), absl::StatusCode::kInternal);
  // The server's own failures are logged with their detail.
  EXPECT_NE(sink->lines().find("42P01"), std::string::npos) << sink->lines();
}

// Issue 17, item 4: new calls cannot queue without bound.
TEST(ExecutorTest, TrySubmitRefusesWhenTheQueueIsFull) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  bool started = false;
  int ran = 0;
  {
    Executor executor(/*threads=*/1, /*max_queued=*/2);
    executor.Submit([&] {  // holds the one thread
      std::unique_lock lock(mu);
      started = true;
      cv.notify_all();
      cv.wait(lock, [&] { return release; });
    });
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return started; });
    }
    auto count = [&] {
      std::lock_guard lock(mu);
      ++ran;
    };
    EXPECT_TRUE(executor.TrySubmit(count));
    EXPECT_TRUE(executor.TrySubmit(count));
    EXPECT_FALSE(executor.TrySubmit(count));  // two wait already
    executor.Submit(count);                   // admitted work always queues
    {
      std::lock_guard lock(mu);
      release = true;
    }
    cv.notify_all();
  }  // runs what is queued, then joins
  EXPECT_EQ(ran, 3);
}

TEST(WatchSlotsTest, CapsStreamsPerKey) {
  WatchSlots slots(2);
  EXPECT_TRUE(slots.Acquire("a"));
  EXPECT_TRUE(slots.Acquire("a"));
  EXPECT_FALSE(slots.Acquire("a"));
  EXPECT_TRUE(slots.Acquire("b"));
  slots.Release("a");
  EXPECT_TRUE(slots.Acquire("a"));
  WatchSlots unlimited(0);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(unlimited.Acquire("a"));
}

TEST(ByteBudgetTest, HoldsAreCappedTogetherAndGivenBackWhenCallsEnd) {
  ByteBudget budget(100, "at most --max-spooled-bytes");
  {
    BudgetHold a(&budget);
    BudgetHold b(&budget);
    EXPECT_TRUE(a.Take(60).ok());
    EXPECT_TRUE(b.Take(40).ok());
    const absl::Status over = b.Take(1);
    EXPECT_EQ(over.code(), absl::StatusCode::kResourceExhausted);
    EXPECT_NE(over.message().find("--max-spooled-bytes"),
              absl::string_view::npos);
    EXPECT_EQ(budget.used(), 100);  // the refused byte was not taken
  }
  EXPECT_EQ(budget.used(), 0);
  ByteBudget unlimited(0, "full");
  BudgetHold h(&unlimited);
  EXPECT_TRUE(h.Take(int64_t{1} << 40).ok());
}

}  // namespace
}  // namespace lethe::server
