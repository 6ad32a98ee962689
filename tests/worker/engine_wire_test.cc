// The worker <-> lethe-engine messages (worker/engine/engine_wire.h): every
// field round-trips, and a reply that is not exactly a reply to the call is
// an error, whatever its bytes (the engine process is untrusted).
#include "worker/engine/engine_wire.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string_view>

#include <gtest/gtest.h>

namespace lethe::worker {
namespace {

// Reads `bytes` at most `piece` bytes a read, from and advancing `at`: a
// pipe that delivers a message in pieces.
core::ByteReader PiecesOf(const std::string& bytes, size_t piece, size_t& at) {
  return [&bytes, piece, &at](char* buf, size_t max) {
    const size_t n = std::min({max, piece, bytes.size() - at});
    std::memcpy(buf, bytes.data() + at, n);
    at += n;
    return core::Result<size_t>(n);
  };
}

EngineCall Call() {
  EngineCall c;
  c.op = EngineOp::kUnlearn;
  c.device = "cpu";
  c.threads = 2;
  c.model.id = "model-1";
  c.model.architecture_json = R"({"kind": "KIND_MLP"})";
  c.model.recipe_json = R"({"epochs": 3})";
  c.model.policy_json = "{}";
  c.dataset.feature_shape = {1, 28, 28};
  c.dataset.feature_type = "uint8";
  c.dataset.num_classes = 10;
  c.model_size = 9;
  c.forget_subjects = {"a", "b"};
  c.trained_by_lethe = true;
  c.state = "LETHE-SISA-2...";
  return c;
}

TEST(EngineWireTest, CallRoundTrips) {
  const EngineCall c = Call();
  const std::string bytes = EncodeEngineCall(c);
  core::Result<EngineCall> back = DecodeEngineCall(bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->op, c.op);
  EXPECT_EQ(back->device, c.device);
  EXPECT_EQ(back->threads, c.threads);
  EXPECT_EQ(back->model.id, c.model.id);
  EXPECT_EQ(back->model.architecture_json, c.model.architecture_json);
  EXPECT_EQ(back->model.recipe_json, c.model.recipe_json);
  EXPECT_EQ(back->model.policy_json, c.model.policy_json);
  EXPECT_EQ(back->dataset.feature_shape, c.dataset.feature_shape);
  EXPECT_EQ(back->dataset.feature_type, c.dataset.feature_type);
  EXPECT_EQ(back->dataset.num_classes, c.dataset.num_classes);
  EXPECT_EQ(back->model_size, c.model_size);
  EXPECT_EQ(back->forget_subjects, c.forget_subjects);
  EXPECT_EQ(back->trained_by_lethe, c.trained_by_lethe);
  EXPECT_EQ(back->state, c.state);
  for (size_t cut = 0; cut < bytes.size(); cut += 13) {
    EXPECT_FALSE(DecodeEngineCall(bytes.substr(0, cut)).ok()) << cut;
  }
}

// On the engine's stdin the call is framed and the model file and the
// training set follow: reading the frame leaves them unread, and a short
// frame is an error.
TEST(EngineWireTest, TheCallFrameLeavesWhatFollowsItUnread) {
  const EngineCall c = Call();
  const std::string input = EncodeEngineCallFrame(c) + "MODELFILEDATASET";
  size_t at = 0;
  core::Result<EngineCall> back = ReadEngineCallFrame(PiecesOf(input, 5, at));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->model_size, 9);
  EXPECT_EQ(input.substr(at), "MODELFILEDATASET");
  const std::string frame = EncodeEngineCallFrame(c);
  for (size_t cut : {size_t{0}, size_t{4}, size_t{8}, frame.size() - 1}) {
    at = 0;
    const std::string part = frame.substr(0, cut);
    auto short_reader = [&](char* buf, size_t max) {
      const size_t n = std::min(max, part.size() - at);
      std::memcpy(buf, part.data() + at, n);
      at += n;
      return core::Result<size_t>(n);
    };
    EXPECT_EQ(ReadEngineCallFrame(short_reader).status().code(),
              core::Code::kInvalidArgument)
        << cut;
  }
}

// A train's reply with every field set (also the train_ok seed).
EngineReply TrainedReply() {
  EngineReply trained;
  trained.model_size = 7;
  trained.trained.model_sha256 = std::string(64, 'b');
  trained.trained.train_accuracy = 0.9;
  trained.trained.test_accuracy = 0.85;
  trained.trained.seconds = 12.5;
  trained.trained.sisa_state = "state";
  trained.peak_rss_bytes = int64_t{345} << 20;
  trained.cpu_seconds = 61.25;
  return trained;
}

TEST(EngineWireTest, RepliesRoundTripPerOp) {
  const EngineReply trained = TrainedReply();
  auto t = DecodeEngineReply(EngineOp::kTrain,
                             EncodeEngineReply(EngineOp::kTrain, trained));
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_TRUE(t->status.ok());
  EXPECT_EQ(t->model_size, 7);
  EXPECT_EQ(t->trained.test_accuracy, 0.85);
  EXPECT_EQ(t->trained.sisa_state, "state");
  // What the engine used travels with every reply.
  EXPECT_EQ(t->peak_rss_bytes, int64_t{345} << 20);
  EXPECT_EQ(t->cpu_seconds, 61.25);

  EngineReply unlearned;
  unlearned.model_size = 2;
  unlearned.outcome.newton_state = "newton";
  unlearned.outcome.report.ok = true;
  unlearned.outcome.report.method = "newton";
  unlearned.outcome.report.attempts.push_back(
      {"newton", "accepted", core::AttemptFailure::kNone, "", 1, false, {}});
  const std::string bytes = EncodeEngineReply(EngineOp::kUnlearn, unlearned);
  auto u = DecodeEngineReply(EngineOp::kUnlearn, bytes);
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->model_size, 2);
  EXPECT_EQ(u->outcome.newton_state, "newton");
  EXPECT_EQ(u->outcome.report.method, "newton");
  EXPECT_EQ(u->outcome.report.attempts.size(), 1u);
  // Not a reply to this op; cut anywhere; trailing bytes.
  EXPECT_FALSE(DecodeEngineReply(EngineOp::kTrain, bytes).ok());
  for (size_t cut = 0; cut < bytes.size(); cut += 5) {
    EXPECT_FALSE(
        DecodeEngineReply(EngineOp::kUnlearn, bytes.substr(0, cut)).ok())
        << cut;
  }
  EXPECT_FALSE(DecodeEngineReply(EngineOp::kUnlearn, bytes + "x").ok());
}

// A model file follows a successful train's or unlearning's reply, never
// empty, and nothing else's: a reply announcing otherwise is malformed.
TEST(EngineWireTest, OnlyAProducedModelFileMayFollowAReply) {
  EngineReply trained;
  trained.model_size = 0;
  EXPECT_FALSE(DecodeEngineReply(EngineOp::kTrain,
                                 EncodeEngineReply(EngineOp::kTrain, trained))
                   .ok());
  trained.model_size = -1;
  EXPECT_FALSE(DecodeEngineReply(EngineOp::kTrain,
                                 EncodeEngineReply(EngineOp::kTrain, trained))
                   .ok());
  EngineReply valid;
  valid.model_size = 5;
  EXPECT_FALSE(DecodeEngineReply(EngineOp::kValidate,
                                 EncodeEngineReply(EngineOp::kValidate, valid))
                   .ok());
  EngineReply rejected;  // every method failed: no model
  rejected.model_size = 5;
  EXPECT_FALSE(
      DecodeEngineReply(EngineOp::kUnlearn,
                        EncodeEngineReply(EngineOp::kUnlearn, rejected))
          .ok());
  EngineReply failed;
  failed.status = core::Status(core::Code::kInternal, "crashed");
  failed.model_size = 5;
  EXPECT_FALSE(DecodeEngineReply(EngineOp::kTrain,
                                 EncodeEngineReply(EngineOp::kTrain, failed))
                   .ok());
}

// On the engine's stdout the reply is framed and the model file follows.
TEST(EngineWireTest, TheReplyFrameLeavesTheModelFileUnread) {
  EngineReply trained;
  trained.model_size = 9;
  trained.trained.test_accuracy = 0.5;
  const std::string out =
      EncodeEngineReplyFrame(EngineOp::kTrain, trained) + "MODELFILE";
  size_t at = 0;
  const core::ByteReader reader = PiecesOf(out, 3, at);
  core::Result<EngineReply> back =
      ReadEngineReplyFrame(EngineOp::kTrain, reader, 1 << 20);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->model_size, 9);
  EXPECT_EQ(out.substr(at), "MODELFILE");
  // A frame longer than the caller allows is refused before it is read.
  at = 0;
  EXPECT_EQ(ReadEngineReplyFrame(EngineOp::kTrain, reader, 16).status().code(),
            core::Code::kInvalidArgument);
}

TEST(EngineWireTest, ErrorsKeepTheirCodeAndUnknownCodesAreRejected) {
  EngineReply failed;
  failed.status = core::Status(core::Code::kNotFound, "no such subject");
  std::string bytes = EncodeEngineReply(EngineOp::kUnlearn, failed);
  auto r = DecodeEngineReply(EngineOp::kUnlearn, bytes);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status.code(), core::Code::kNotFound);
  EXPECT_EQ(r->status.message(), "no such subject");
  // The status code is the u64 after the magic (20 bytes) and the op.
  bytes[28] = 42;
  EXPECT_FALSE(DecodeEngineReply(EngineOp::kUnlearn, bytes).ok());
}

// The fuzz target's seeds (tests/fuzz/corpus/engine_reply) are valid
// messages, so that fuzzing starts deep in the decoders; a format change
// that breaks them fails here.
std::string Seed(const std::string& name) {
  std::ifstream in(std::string(LETHE_FUZZ_CORPUS) + "/engine_reply/" + name,
                   std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
  EXPECT_FALSE(bytes.empty()) << name;
  return bytes;
}

// An unlearn reply with every part of the report set: the unlearn_ok seed.
// LETHE_WRITE_FUZZ_SEEDS=DIR writes it and the other seeds (WriteSeeds)
// into DIR when the wire's or the report's encoding changes.
EngineReply SeedUnlearnReply() {
  EngineReply r;
  r.model_size = 2;
  r.outcome.model_sha256 = std::string(64, 'c');
  r.outcome.sisa_state = "sisa";
  core::Report& rep = r.outcome.report;
  rep.ok = true;
  rep.method = "sisa";
  rep.guarantee = "exact";
  rep.forget_records = 40;
  rep.retain_records = 960;
  rep.test_records = 480;
  rep.validation_records = 520;
  rep.before = {0.01, 0.99, 0.85, 0.6, 0.86};
  rep.after = {0.15, 0.97, 0.84, 0.5, 0.85};
  rep.gate = {1, 1.5, 100, 0.01, 0.25};
  core::Calibration c;
  c.available = true;
  c.forget_records = 40;
  c.validation_records = 520;
  c.validation_subjects = 26;
  c.resamples = 4000;
  c.alpha = 0.01;
  c.accuracy_drop_points = 0.4;
  c.allowed_drop_points = 2.1;
  c.neighbours = 10;
  c.matched_records = 180;
  c.offset_accuracy = -0.25;
  c.offset_confidence = -0.5;
  c.offset_records = 400;
  c.accuracy = {0.95, 0.84, 0.06, 0.675, 0.975, 0.04};
  c.confidence = {0.61, 0.5, 0.04, 0.4, 0.6, 0.006};
  rep.calibration_before = c;
  core::Attempt failed{"finetune",
                       "failed_gate",
                       core::AttemptFailure::kForgetConfidence,
                       "forget-set confidence rank 0.61 is outside",
                       0.5,
                       true,
                       rep.after,
                       c,
                       1};
  rep.attempts.push_back(failed);
  rep.attempts.push_back({"sisa", "accepted", core::AttemptFailure::kNone, "",
                          2, true, rep.after});
  rep.sisa_retrained_shards = {1, 5};
  rep.reproducibility = {"1.13.0", 2, "cpu", true};
  r.peak_rss_bytes = int64_t{200} << 20;
  r.cpu_seconds = 3.5;
  return r;
}

// Each seed is the fuzz target's op byte (0 validate, 1 train, 2 unlearn),
// then the message.
void WriteSeeds(const std::string& dir) {
  auto write = [&dir](const char* name, char op, const std::string& bytes) {
    std::ofstream out(dir + "/" + name, std::ios::binary);
    out << op << bytes;
  };
  write("unlearn_ok", '\x02',
        EncodeEngineReply(EngineOp::kUnlearn, SeedUnlearnReply()));
  write("train_ok", '\x01',
        EncodeEngineReply(EngineOp::kTrain, TrainedReply()));
  EngineReply not_found;
  not_found.status =
      core::Status(core::Code::kNotFound, "no training record of a subject");
  write("unlearn_not_found", '\x02',
        EncodeEngineReply(EngineOp::kUnlearn, not_found));
  EngineReply invalid;
  invalid.status =
      core::Status(core::Code::kInvalidArgument, "not TorchScript");
  write("validate_invalid", '\x00',
        EncodeEngineReply(EngineOp::kValidate, invalid));
  write("call_unlearn", '\x00', EncodeEngineCall(Call()));
}

TEST(EngineWireTest, FuzzSeedsAreValidMessages) {
  if (const char* dir = std::getenv("LETHE_WRITE_FUZZ_SEEDS")) WriteSeeds(dir);
  struct Case {
    const char* name;
    EngineOp op;
    core::Code code;
  } cases[] = {
      {"train_ok", EngineOp::kTrain, core::Code::kOk},
      {"unlearn_ok", EngineOp::kUnlearn, core::Code::kOk},
      {"unlearn_not_found", EngineOp::kUnlearn, core::Code::kNotFound},
      {"validate_invalid", EngineOp::kValidate, core::Code::kInvalidArgument},
  };
  for (const Case& c : cases) {
    const std::string seed = Seed(c.name);
    ASSERT_FALSE(seed.empty());
    auto reply = DecodeEngineReply(c.op, std::string_view(seed).substr(1));
    ASSERT_TRUE(reply.ok()) << c.name << ": " << reply.status().ToString();
    EXPECT_EQ(reply->status.code(), c.code) << c.name;
  }
  auto unlearned = DecodeEngineReply(
      EngineOp::kUnlearn, std::string_view(Seed("unlearn_ok")).substr(1));
  ASSERT_TRUE(unlearned.ok());
  EXPECT_EQ(unlearned->outcome.report.attempts.size(), 2u);
  EXPECT_EQ(unlearned->outcome.report.sisa_retrained_shards,
            (std::vector<int>{1, 5}));
  const std::string call = Seed("call_unlearn");
  auto decoded = DecodeEngineCall(std::string_view(call).substr(1));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->forget_subjects, (std::vector<std::string>{"a", "b"}));
}

}  // namespace
}  // namespace lethe::worker
