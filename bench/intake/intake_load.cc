// intake_load: closed-loop load generator for ErasureService.SubmitErasure.
//
// `--concurrency N` calls are kept in flight: with `--client sync`, N
// threads each make one blocking call at a time; with `--client callback`
// (gRPC's callback API), N call slots each start the next call from the
// previous one's completion, which costs the client far less CPU. Channels
// are one shared HTTP/2 connection or one per thread/slot (`--channels`).
// Calls run for --warmup seconds, then for --duration seconds while each
// call's latency is recorded, and the process prints one JSON line:
//
//   {"tool":"lethe","concurrency":32,"channels":"shared","client":"callback",
//    "seconds":20.0,"requests":51234,"errors":0,"rps":2561.7,"p50_ms":11.9,
//    "p99_ms":21.3,"max_ms":40.2,"replayed":0,"error_codes":{},
//    "first_error":""}
//
// Every request has a fresh idempotency key, so each one is a new durable
// request; the subject is drawn uniformly from --subjects ids shaped like
// the fixture's (`--subject-format`, printf with one integer), so the submit
// does the real records lookup. A failed call counts as an error (its code
// is reported) and is not part of the latency figures. Exit status 1 when
// any call failed.
//
// `--flood bad-keys|watches` runs an attack alongside the measured load
// (issue 17, item 4), from `--flood-concurrency` threads on a connection of
// their own: `bad-keys` sends GetErasure calls, each with a new well-formed
// API key that does not exist; `watches` keeps opening WatchErasure streams
// on one request of `--flood-token` (default: the load's key), each held
// for 200 ms; `--flood-nice N` runs those threads at that nice value. The JSON
// line then adds "flood", "flood_calls" and "flood_codes" (status code ->
// count); the flood's errors are expected and do not set the exit status.
// With `--concurrency 0` the process runs the flood alone for the warm-up
// and the duration: an attacker in a process of its own, whose calls share
// nothing of the measured client's gRPC runtime.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "lethe/v1/erasure.grpc.pb.h"

namespace lethe::bench {
namespace {

namespace v1 = ::lethe::v1;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string target = "127.0.0.1:50051";
  std::string token;
  int concurrency = 1;
  double warmup_s = 3;
  double duration_s = 20;
  bool shared_channel = false;
  bool callback_client = false;
  int subjects = 1000;
  std::string subject_format = "subject-%06d@example.org";
  std::string run_id;
  std::string flood = "none";  // none | bad-keys | watches
  int flood_concurrency = 64;
  std::string flood_token;  // empty: token
  int flood_nice = 0;       // the flood threads' nice value
};

void Usage() {
  std::fprintf(stderr,
               "usage: intake_load --target HOST:PORT --token TOKEN "
               "[--concurrency N] [--warmup S] [--duration S]\n"
               "                   [--channels per-thread|shared] "
               "[--subjects K] [--subject-format FMT] [--run-id ID]\n"
               "                   [--flood none|bad-keys|watches] "
               "[--flood-concurrency N] [--flood-token TOKEN] "
               "[--flood-nice N]\n"
               "The token may also come from LETHE_BENCH_TOKEN.\n");
}

bool ParseArgs(int argc, char** argv, Options* o) {
  if (const char* t = std::getenv("LETHE_BENCH_TOKEN")) o->token = t;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) return false;
    const std::string value = argv[++i];
    if (flag == "--target") {
      o->target = value;
    } else if (flag == "--token") {
      o->token = value;
    } else if (flag == "--concurrency") {
      o->concurrency = std::atoi(value.c_str());
    } else if (flag == "--warmup") {
      o->warmup_s = std::atof(value.c_str());
    } else if (flag == "--duration") {
      o->duration_s = std::atof(value.c_str());
    } else if (flag == "--channels") {
      if (value != "shared" && value != "per-thread") return false;
      o->shared_channel = value == "shared";
    } else if (flag == "--client") {
      if (value != "sync" && value != "callback") return false;
      o->callback_client = value == "callback";
    } else if (flag == "--subjects") {
      o->subjects = std::atoi(value.c_str());
    } else if (flag == "--subject-format") {
      o->subject_format = value;
    } else if (flag == "--run-id") {
      o->run_id = value;
    } else if (flag == "--flood") {
      if (value != "none" && value != "bad-keys" && value != "watches") {
        return false;
      }
      o->flood = value;
    } else if (flag == "--flood-nice") {
      o->flood_nice = std::atoi(value.c_str());
    } else if (flag == "--flood-token") {
      o->flood_token = value;
    } else if (flag == "--flood-concurrency") {
      o->flood_concurrency = std::atoi(value.c_str());
    } else {
      return false;
    }
  }
  return !o->token.empty() &&
         (o->concurrency > 0 || (o->concurrency == 0 && o->flood != "none")) &&
         o->duration_s > 0 && o->subjects > 0;
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target,
                                           int index) {
  grpc::ChannelArguments args;
  // A distinct argument keeps gRPC from sharing one subchannel (one TCP
  // connection) between the per-thread channels.
  args.SetInt("lethe.bench.channel_index", index);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(),
                                   args);
}

struct WorkerResult {
  std::vector<double> latencies_ms;
  int64_t errors = 0;
  int64_t replayed = 0;
  std::map<int, int64_t> error_codes;
  std::string first_error;
};

void Work(const Options& o, std::shared_ptr<grpc::Channel> channel, int index,
          Clock::time_point measure_from, Clock::time_point stop_at,
          WorkerResult* out) {
  auto stub = v1::ErasureService::NewStub(channel);
  std::mt19937_64 rng(std::random_device{}() ^ (uint64_t(index) << 32));
  std::uniform_int_distribution<int> subject(0, o.subjects - 1);
  std::vector<char> subject_buf(256);
  out->latencies_ms.reserve(1 << 16);
  const std::string bearer = "Bearer " + o.token;
  v1::SubmitErasureRequest req;
  req.set_legal_ground(v1::LEGAL_GROUND_GDPR_ART17_1B_CONSENT_WITHDRAWN);
  req.set_legal_reference("benchmark ticket");
  for (uint64_t seq = 0;; ++seq) {
    const auto start = Clock::now();
    if (start >= stop_at) break;
    std::snprintf(subject_buf.data(), subject_buf.size(),
                  o.subject_format.c_str(), subject(rng));
    req.set_subject_id(subject_buf.data());
    req.set_idempotency_key(o.run_id + "-" + std::to_string(index) + "-" +
                            std::to_string(seq));
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", bearer);
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(30));
    v1::SubmitErasureResponse resp;
    const grpc::Status st = stub->SubmitErasure(&ctx, req, &resp);
    const auto end = Clock::now();
    if (start < measure_from) continue;
    if (!st.ok()) {
      ++out->errors;
      ++out->error_codes[st.error_code()];
      if (out->first_error.empty()) out->first_error = st.error_message();
      continue;
    }
    if (resp.replayed()) ++out->replayed;
    out->latencies_ms.push_back(
        std::chrono::duration<double, std::milli>(end - start).count());
  }
}

// The same closed loop on gRPC's callback API: `concurrency` calls stay in
// flight, each completion records its latency and starts the next call
// from gRPC's own threads, so the client spends no thread switch per call.
class CallbackLoop {
 public:
  CallbackLoop(const Options& o, std::shared_ptr<grpc::Channel> channel,
               int index, Clock::time_point measure_from,
               Clock::time_point stop_at, WorkerResult* out)
      : o_(o),
        stub_(v1::ErasureService::NewStub(std::move(channel))),
        index_(index),
        measure_from_(measure_from),
        stop_at_(stop_at),
        out_(out),
        rng_(std::random_device{}() ^ (uint64_t(index) << 32)),
        subject_(0, o.subjects - 1),
        bearer_("Bearer " + o.token) {
    out_->latencies_ms.reserve(1 << 16);
  }

  void Start() { Next(); }

  void Wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return finished_; });
  }

 private:
  void Next() {
    start_ = Clock::now();
    if (start_ >= stop_at_) {
      std::lock_guard lock(mu_);
      finished_ = true;
      cv_.notify_all();
      return;
    }
    char subject[256];
    std::snprintf(subject, sizeof(subject), o_.subject_format.c_str(),
                  subject_(rng_));
    req_.Clear();
    req_.set_subject_id(subject);
    req_.set_legal_ground(v1::LEGAL_GROUND_GDPR_ART17_1B_CONSENT_WITHDRAWN);
    req_.set_legal_reference("benchmark ticket");
    req_.set_idempotency_key(o_.run_id + "-" + std::to_string(index_) + "-" +
                             std::to_string(seq_++));
    resp_.Clear();
    ctx_ = std::make_unique<grpc::ClientContext>();
    ctx_->AddMetadata("authorization", bearer_);
    ctx_->set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(30));
    stub_->async()->SubmitErasure(ctx_.get(), &req_, &resp_,
                                  [this](const grpc::Status& st) { Done(st); });
  }

  void Done(const grpc::Status& st) {
    const auto end = Clock::now();
    if (start_ >= measure_from_) {
      if (!st.ok()) {
        ++out_->errors;
        ++out_->error_codes[st.error_code()];
        if (out_->first_error.empty()) out_->first_error = st.error_message();
      } else {
        if (resp_.replayed()) ++out_->replayed;
        out_->latencies_ms.push_back(
            std::chrono::duration<double, std::milli>(end - start_).count());
      }
    }
    Next();
  }

  const Options& o_;
  std::unique_ptr<v1::ErasureService::Stub> stub_;
  const int index_;
  const Clock::time_point measure_from_, stop_at_;
  WorkerResult* out_;  // written only by the one call in flight
  std::mt19937_64 rng_;
  std::uniform_int_distribution<int> subject_;
  const std::string bearer_;
  uint64_t seq_ = 0;
  Clock::time_point start_;
  std::unique_ptr<grpc::ClientContext> ctx_;
  v1::SubmitErasureRequest req_;
  v1::SubmitErasureResponse resp_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool finished_ = false;  // guarded by mu_
};

// The attack of --flood, until `stop`: what each of its calls ended with.
struct FloodResult {
  std::mutex mu;
  std::map<int, int64_t> codes;  // guarded by mu
  int64_t calls = 0;             // guarded by mu
};

std::string RandomHex(std::mt19937_64& rng, int bytes) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < bytes; ++i) {
    const auto b = static_cast<unsigned>(rng() & 0xff);
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

void Flood(const Options& o, std::shared_ptr<grpc::Channel> channel,
           const std::string& erasure_id, int index,
           const std::atomic<bool>& stop, FloodResult* out) {
  auto stub = v1::ErasureService::NewStub(std::move(channel));
  std::mt19937_64 rng(std::random_device{}() ^ (uint64_t(index) << 40));
  // On one machine the attacker's CPU is the server's too; a nice value
  // (Linux: per thread) lets the flood use only what the server and the
  // measured load leave, as an attacker on another machine would.
  if (o.flood_nice != 0) {
    (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), o.flood_nice);
  }
  while (!stop.load()) {
    grpc::ClientContext ctx;
    grpc::Status st;
    if (o.flood == "bad-keys") {
      ctx.AddMetadata("authorization", "Bearer lethe_" + RandomHex(rng, 8) +
                                           "_" + RandomHex(rng, 32));
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
      v1::GetErasureRequest req;
      req.set_id(erasure_id);
      v1::Erasure resp;
      st = stub->GetErasure(&ctx, req, &resp);
    } else {
      ctx.AddMetadata("authorization", "Bearer " + o.flood_token);
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(200));
      v1::WatchErasureRequest req;
      req.set_id(erasure_id);
      auto reader = stub->WatchErasure(&ctx, req);
      v1::ErasureEvent event;
      while (reader->Read(&event)) {
      }
      st = reader->Finish();
    }
    std::lock_guard lock(out->mu);
    ++out->calls;
    ++out->codes[st.error_code()];
  }
}

// A request of the load's key to aim the flood at (GetErasure, watches).
std::string FloodTarget(const Options& o,
                        const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = v1::ErasureService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + o.flood_token);
  char subject[256];
  std::snprintf(subject, sizeof(subject), o.subject_format.c_str(), 0);
  v1::SubmitErasureRequest req;
  req.set_subject_id(subject);
  req.set_legal_ground(v1::LEGAL_GROUND_GDPR_ART17_1B_CONSENT_WITHDRAWN);
  req.set_idempotency_key(o.run_id + "-flood-target");
  v1::SubmitErasureResponse resp;
  const grpc::Status st = stub->SubmitErasure(&ctx, req, &resp);
  if (!st.ok()) {
    std::fprintf(stderr, "intake_load: flood target: %s\n",
                 st.error_message().c_str());
  }
  return resp.erasure().id();
}

double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const size_t rank =
      static_cast<size_t>(std::llround(q * (sorted.size() - 1)));
  return sorted[std::min(rank, sorted.size() - 1)];
}

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    out.push_back(c);
  }
  return out;
}

int Main(int argc, char** argv) {
  Options o;
  if (!ParseArgs(argc, argv, &o)) {
    Usage();
    return 2;
  }
  if (o.flood_token.empty()) o.flood_token = o.token;
  if (o.run_id.empty()) {
    o.run_id = "bench-" + std::to_string(std::random_device{}()) + "-" +
               std::to_string(Clock::now().time_since_epoch().count());
  }
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < (o.shared_channel ? 1 : o.concurrency); ++i) {
    channels.push_back(MakeChannel(o.target, i));
    if (!channels.back()->WaitForConnected(std::chrono::system_clock::now() +
                                           std::chrono::seconds(10))) {
      std::fprintf(stderr, "intake_load: cannot connect to %s\n",
                   o.target.c_str());
      return 1;
    }
  }
  const auto t0 = Clock::now();
  const auto measure_from = t0 + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(o.warmup_s));
  const auto stop_at =
      measure_from + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(o.duration_s));
  std::vector<WorkerResult> results(o.concurrency);
  std::atomic<bool> stop_flood{false};
  FloodResult flood;
  std::vector<std::thread> flooders;
  if (o.flood != "none") {
    auto flood_channel = MakeChannel(o.target, -1);
    const std::string target = FloodTarget(o, flood_channel);
    for (int i = 0; i < o.flood_concurrency; ++i) {
      flooders.emplace_back(Flood, std::cref(o), flood_channel, target, i,
                            std::cref(stop_flood), &flood);
    }
  }
  if (o.concurrency == 0) {  // the flood alone, in a process of its own
    std::this_thread::sleep_until(stop_at);
  } else if (o.callback_client) {
    std::vector<std::unique_ptr<CallbackLoop>> loops;
    loops.reserve(o.concurrency);
    for (int i = 0; i < o.concurrency; ++i) {
      loops.push_back(std::make_unique<CallbackLoop>(
          o, channels[o.shared_channel ? 0 : i], i, measure_from, stop_at,
          &results[i]));
    }
    for (auto& l : loops) l->Start();
    for (auto& l : loops) l->Wait();
  } else {
    std::vector<std::thread> threads;
    threads.reserve(o.concurrency);
    for (int i = 0; i < o.concurrency; ++i) {
      threads.emplace_back(Work, std::cref(o),
                           channels[o.shared_channel ? 0 : i], i, measure_from,
                           stop_at, &results[i]);
    }
    for (auto& t : threads) t.join();
  }
  // Calls in flight at stop_at finish after it; they count, and so does
  // the time they took.
  const double seconds =
      std::chrono::duration<double>(Clock::now() - measure_from).count();
  stop_flood = true;
  for (auto& t : flooders) t.join();
  std::string flood_json;
  for (const auto& [code, n] : flood.codes) {
    if (!flood_json.empty()) flood_json += ",";
    flood_json += "\"" + std::to_string(code) + "\":" + std::to_string(n);
  }

  std::vector<double> all;
  int64_t errors = 0, replayed = 0;
  std::map<int, int64_t> codes;
  std::string first_error;
  for (const auto& r : results) {
    all.insert(all.end(), r.latencies_ms.begin(), r.latencies_ms.end());
    errors += r.errors;
    replayed += r.replayed;
    for (const auto& [code, n] : r.error_codes) codes[code] += n;
    if (first_error.empty()) first_error = r.first_error;
  }
  std::sort(all.begin(), all.end());
  std::string code_json;
  for (const auto& [code, n] : codes) {
    if (!code_json.empty()) code_json += ",";
    code_json += "\"" + std::to_string(code) + "\":" + std::to_string(n);
  }
  std::printf(
      "{\"tool\":\"lethe\",\"concurrency\":%d,\"channels\":\"%s\","
      "\"client\":\"%s\","
      "\"seconds\":%.2f,\"requests\":%zu,\"errors\":%" PRId64
      ",\"rps\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
      "\"replayed\":%" PRId64
      ",\"error_codes\":{%s},\"first_error\":\"%s\",\"flood\":\"%s\","
      "\"flood_calls\":%" PRId64 ",\"flood_codes\":{%s}}\n",
      o.concurrency, o.shared_channel ? "shared" : "per-thread",
      o.callback_client ? "callback" : "sync", seconds, all.size(), errors,
      all.size() / seconds, Percentile(all, 0.50), Percentile(all, 0.99),
      all.empty() ? 0.0 : all.back(), replayed, code_json.c_str(),
      JsonEscape(first_error).c_str(), o.flood.c_str(), flood.calls,
      flood_json.c_str());
  return errors == 0 ? 0 : 1;
}

}  // namespace
}  // namespace lethe::bench

int main(int argc, char** argv) { return lethe::bench::Main(argc, argv); }
