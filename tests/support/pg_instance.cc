#include "tests/support/pg_instance.h"

#include <pwd.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include <libpq-fe.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "storage/postgres/run_sql.h"
#include "storage/reachability.h"

namespace lethe::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::string MakeTempDir(const std::string& parent) {
  std::string base = parent;
  if (base.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    base = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  }
  std::string templ = base + "/lethe-pg.XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) return "";
  return templ;
}

// The last `lines` lines of a file, for error messages.
std::string Tail(const std::string& path, size_t lines) {
  std::string text = ReadFileOrEmpty(path);
  std::vector<absl::string_view> all = absl::StrSplit(text, '\n');
  size_t from = all.size() > lines ? all.size() - lines : 0;
  std::string out;
  for (size_t i = from; i < all.size(); ++i)
    absl::StrAppend(&out, all[i], "\n");
  return out;
}

}  // namespace

PgInstance::PgInstance(PgInstanceOptions options)
    : options_(std::move(options)),
      dir_(MakeTempDir(options_.temp_parent)),
      user_(geteuid() == 0 ? "postgres" : "") {}

PgInstance::~PgInstance() {
  if (server_ != nullptr) (void)Stop();
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

std::string PgInstance::Url() const {
  return absl::StrCat("postgresql://lethe@127.0.0.1:", port_, "/lethe");
}

absl::Status PgInstance::Run(std::vector<std::string> args,
                             const std::string& log) {
  SubprocessOptions options;
  options.program = std::move(args.front());
  options.args.assign(args.begin() + 1, args.end());
  options.user = user_;
  options.working_dir = dir_;
  options.stdout_path = log;
  options.stderr_path = log;
  options.parent_death_signal = SIGKILL;
  auto child = Subprocess::Start(std::move(options));
  if (!child.ok()) return child.status();
  std::optional<ExitStatus> exit = (*child)->Wait(seconds(120));
  if (!exit) {
    (*child)->Kill();
    return absl::DeadlineExceededError(
        absl::StrCat(args.front(), " ran over 120 s; log ", log));
  }
  if (!exit->Success()) {
    return absl::InternalError(absl::StrCat(args.front(), " ", exit->ToString(),
                                            "; ", log, ":\n", Tail(log, 20)));
  }
  return absl::OkStatus();
}

absl::Status PgInstance::Init() {
  if (dir_.empty()) {
    return absl::InternalError("PgInstance: could not create a temp folder");
  }
  if (!user_.empty()) {
    passwd* pw = getpwnam(user_.c_str());
    if (pw == nullptr) {
      return absl::FailedPreconditionError(
          "PgInstance: running as root needs the 'postgres' user "
          "(package postgresql)");
    }
    if (chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      return absl::InternalError(absl::StrCat("chown ", dir_, " failed"));
    }
  }
  std::string initdb = options_.bin_dir + "/initdb";
  if (access(initdb.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        initdb,
        " not found; run scripts/install-deps.sh (package postgresql)"));
  }
  absl::Status s =
      Run({initdb, "-D", dir_ + "/data", "-U", "lethe", "-A", "trust", "-E",
           "UTF8", "--locale=C", "--no-sync", "--no-instructions"},
          dir_ + "/initdb.log");
  if (s.ok()) initialized_ = true;
  return s;
}

absl::Status PgInstance::StartOnce() {
  SubprocessOptions options;
  options.program = options_.bin_dir + "/postgres";
  options.args = {
      "-D", dir_ + "/data",
      "-p", std::to_string(port_),
      "-k", dir_,
      "-c", "listen_addresses=127.0.0.1",
      "-c", absl::StrCat("max_connections=", options_.max_connections),
      "-c", "fsync=off",
      "-c", "full_page_writes=off"};
  options.user = user_;
  options.working_dir = dir_;
  options.stdout_path = LogPath();
  options.stderr_path = LogPath();
  options.append = true;
  options.parent_death_signal = SIGQUIT;
  auto child = Subprocess::Start(std::move(options));
  if (!child.ok()) return child.status();
  server_ = std::move(*child);

  std::string ping =
      absl::StrCat("host=127.0.0.1 port=", port_,
                   " user=lethe dbname=postgres connect_timeout=2");
  auto deadline = std::chrono::steady_clock::now() + seconds(60);
  while (PQping(ping.c_str()) != PQPING_OK) {
    if (!server_->Running()) {
      server_.reset();
      return absl::UnavailableError(
          absl::StrCat("PostgreSQL exited during start; ", LogPath(), ":\n",
                       Tail(LogPath(), 20)));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      server_->Kill();
      server_.reset();
      return absl::DeadlineExceededError(
          absl::StrCat("PostgreSQL not ready after 60 s; ", LogPath(), ":\n",
                       Tail(LogPath(), 20)));
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  return absl::OkStatus();
}

absl::Status PgInstance::CreateDatabase() {
  auto created = storage::RunSql(absl::StrCat("host=127.0.0.1 port=", port_,
                                              " user=lethe dbname=postgres"),
                                 "CREATE DATABASE lethe");
  if (!created.ok()) {
    return absl::InternalError(absl::StrCat(
        "CREATE DATABASE lethe: ", storage::ErrorDetail(created.status())));
  }
  database_created_ = true;
  return absl::OkStatus();
}

absl::Status PgInstance::Start() {
  if (server_ != nullptr) return absl::OkStatus();
  if (!initialized_) {
    if (absl::Status s = Init(); !s.ok()) return s;
  }
  absl::Status s;
  if (port_ != 0) {
    s = StartOnce();  // keep the port: URLs handed out must stay valid
  } else {
    // FreePort() races with other processes; retry on a lost race.
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = FreePort();
      s = StartOnce();
      if (s.ok() ||
          Tail(LogPath(), 20).find("could not bind") == std::string::npos) {
        break;
      }
    }
    if (!s.ok()) port_ = 0;
  }
  if (s.ok() && !database_created_) s = CreateDatabase();
  return s;
}

absl::Status PgInstance::Stop() {
  if (server_ == nullptr) return absl::OkStatus();
  server_->SendSignal(SIGINT);  // PostgreSQL's "fast" shutdown
  std::optional<ExitStatus> exit = server_->Wait(seconds(60));
  absl::Status s;
  if (!exit) {
    server_->Kill();
    s = absl::DeadlineExceededError(
        "PostgreSQL did not stop within 60 s; killed");
  }
  server_.reset();
  return s;
}

void PgInstance::Kill() {
  if (server_ == nullptr) return;
  server_->Kill();
  server_.reset();
}

absl::Status PgInstance::Restart() {
  if (absl::Status s = Stop(); !s.ok()) return s;
  return Start();
}

}  // namespace lethe::testing
