// DatasetStore, ModelStore and ApiKeyStore in memory: the catalogue that
// the erasure queue works on (storage/postgres/{dataset,model,api_key}_
// store.cc).
#include <algorithm>
#include <iterator>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "storage/hash.h"
#include "storage/memory/core.h"

namespace lethe::storage::memory {
namespace {

// Rows newest first by (created_us, id), strictly after `page.after`, at
// most page.size of them, and the cursor of the next page.
template <typename Row>
std::pair<std::vector<Row>, std::optional<PageCursor>> Paginate(
    std::vector<Row> rows, const Page& page) {
  std::erase_if(rows, [&](const Row& r) {
    return page.after && std::tie(r.created_us, r.id) >=
                             std::tie(page.after->created_us, page.after->id);
  });
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return std::tie(a.created_us, a.id) > std::tie(b.created_us, b.id);
  });
  std::optional<PageCursor> next;
  if (static_cast<int>(rows.size()) > page.size) {
    rows.resize(std::max(0, page.size));
    if (!rows.empty())
      next = PageCursor{rows.back().created_us, rows.back().id};
  }
  return {std::move(rows), next};
}

class MemoryDatasetStore final : public DatasetStore {
 public:
  explicit MemoryDatasetStore(Core* core) : core_(core) {}

  absl::StatusOr<DatasetRow> Create(const DatasetRow& row,
                                    const std::string&) override {
    const int64_t now = core_->Now();
    return core_->Run([&](State& s) -> absl::StatusOr<DatasetRow> {
      for (const auto& [id, d] : s.datasets) {
        if (d.name == row.name) {
          return absl::AlreadyExistsError(
              absl::StrCat("a dataset named '", row.name, "' already exists"));
        }
      }
      DatasetRow d = row;
      d.id = NewUuid();
      d.created_us = now;
      s.datasets[d.id] = d;
      return DatasetRowOf(s, d);
    });
  }

  absl::StatusOr<DatasetRow> Get(const std::string& id) override {
    return core_->Run([&](State& s) -> absl::StatusOr<DatasetRow> {
      auto it = s.datasets.find(id);
      if (it == s.datasets.end()) {
        return absl::NotFoundError(absl::StrCat("no dataset ", id));
      }
      return DatasetRowOf(s, it->second);
    });
  }

  absl::StatusOr<DatasetPage> List(const Page& page) override {
    return core_->Run([&](State& s) -> absl::StatusOr<DatasetPage> {
      std::vector<DatasetRow> all;
      for (const auto& [id, d] : s.datasets) all.push_back(d);
      auto [rows, next] = Paginate(std::move(all), page);
      for (auto& d : rows) d = DatasetRowOf(s, d);
      return DatasetPage{std::move(rows), next};
    });
  }

  absl::StatusOr<AddRecordsResult> AddRecordBatches(
      const std::string& dataset_id, RecordBatches& records,
      const std::string&) override {
    // Read outside the lock (the source may be slow); stored all at once.
    std::vector<RecordRow> all, batch;
    while (true) {
      absl::StatusOr<bool> more = records.Next(&batch);
      if (!more.ok()) return more.status();
      if (!*more) break;
      std::move(batch.begin(), batch.end(), std::back_inserter(all));
    }
    return core_->Run([&](State& s) -> absl::StatusOr<AddRecordsResult> {
      auto it = s.datasets.find(dataset_id);
      if (it == s.datasets.end()) {
        return absl::NotFoundError(absl::StrCat("no dataset ", dataset_id));
      }
      if (all.empty()) {
        return absl::InvalidArgumentError("the upload holds no records");
      }
      const int64_t before = DatasetRowOf(s, it->second).subjects;
      for (RecordRow& r : all) {
        s.records.emplace(s.next_record_id++, Record{dataset_id, std::move(r)});
      }
      const int64_t after = DatasetRowOf(s, it->second).subjects;
      return AddRecordsResult{static_cast<int64_t>(all.size()), after - before};
    });
  }

 private:
  Core* core_;
};

// The versions of a model with the requests each absorbed.
ModelVersionRow VersionRowOf(const State& s, const Version& v) {
  ModelVersionRow row = v.row;
  row.erasure_ids.clear();
  for (const auto& [id, t] : s.tasks) {
    if (t.model_id == v.row.model_id && t.state == "DONE" &&
        t.result_version == v.row.version) {
      row.erasure_ids.push_back(t.erasure_id);
    }
  }
  std::sort(row.erasure_ids.begin(), row.erasure_ids.end());
  return row;
}

// `artifact`: the bytes p.artifact held, read before the lock was taken.
absl::StatusOr<ModelRow> RegisterIn(State& s, const RegisterParams& p,
                                    const std::string& artifact, int64_t now) {
  if (!s.datasets.count(p.model.dataset_id)) {
    return absl::NotFoundError(absl::StrCat("no dataset ", p.model.dataset_id));
  }
  for (const auto& [id, m] : s.models) {
    if (m.row.name == p.model.name) {
      return absl::AlreadyExistsError(
          absl::StrCat("a model named '", p.model.name, "' already exists"));
    }
  }
  const bool has_artifact = p.artifact != nullptr;
  if (has_artifact && (p.artifact_sha256.size() != 32 ||
                       Sha256(artifact) != p.artifact_sha256)) {
    return absl::InvalidArgumentError(
        "artifact bytes do not match their SHA-256 digest");
  }
  Model m;
  m.row = p.model;
  m.row.id = NewUuid();
  m.row.state = has_artifact ? "PENDING_VALIDATION" : "TRAINING";
  m.row.state_reason = has_artifact
                           ? "waiting for a worker to validate the artifact"
                           : "waiting for a worker to train the model";
  m.row.created_us = m.row.updated_us = now;
  m.seq = s.next_model_seq++;
  m.job_not_before_us = now;
  if (has_artifact) {
    s.artifacts[p.artifact_sha256] = artifact;
    Version v;
    v.row.model_id = m.row.id;
    v.row.version = 1;
    v.row.artifact_sha256 = p.artifact_sha256;
    v.row.size_bytes = static_cast<int64_t>(artifact.size());
    v.row.produced_by = "registered";
    v.row.created_us = now;
    s.versions[{m.row.id, 1}] = std::move(v);
  }
  s.pending.push_back({kModelsChannel, ""});
  const std::string id = m.row.id;
  s.models.emplace(id, std::move(m));
  return ModelRowOf(s, s.models.at(id));
}

absl::StatusOr<ModelVersionRow> GetVersionIn(const State& s,
                                             const std::string& model_id,
                                             int64_t version) {
  if (!s.models.count(model_id)) {
    return absl::NotFoundError(absl::StrCat("no model ", model_id));
  }
  const int64_t wanted = version == 0 ? MaxVersion(s, model_id) : version;
  auto it = s.versions.find({model_id, wanted});
  if (it == s.versions.end()) {
    if (version == 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "model ", model_id, " has no version yet (still training)"));
    }
    return absl::NotFoundError(
        absl::StrCat("model ", model_id, " has no version ", version));
  }
  if (it->second.row.deleted_us != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("version ", wanted, " of model ", model_id,
                     " was deleted because it still held erased data"));
  }
  return VersionRowOf(s, it->second);
}

class MemoryModelStore final : public ModelStore {
 public:
  explicit MemoryModelStore(Core* core) : core_(core) {}

  absl::StatusOr<ModelRow> Register(const RegisterParams& p,
                                    const std::string&) override {
    std::string artifact;
    if (p.artifact != nullptr) {
      auto read = ReadWholeStream(*p.artifact);
      if (!read.ok()) return read.status();
      artifact = std::move(*read);
    }
    const int64_t now = core_->Now();
    return core_->Run(
        [&](State& s) { return RegisterIn(s, p, artifact, now); });
  }

  absl::StatusOr<ModelRow> Get(const std::string& id) override {
    return core_->Run([&](State& s) -> absl::StatusOr<ModelRow> {
      auto it = s.models.find(id);
      if (it == s.models.end()) {
        return absl::NotFoundError(absl::StrCat("no model ", id));
      }
      return ModelRowOf(s, it->second);
    });
  }

  absl::StatusOr<ModelPage> List(const std::string& dataset_id,
                                 const Page& page) override {
    return core_->Run([&](State& s) -> absl::StatusOr<ModelPage> {
      std::vector<ModelRow> all;
      for (const auto& [id, m] : s.models) {
        if (dataset_id.empty() || m.row.dataset_id == dataset_id) {
          all.push_back(ModelRowOf(s, m));
        }
      }
      auto [rows, next] = Paginate(std::move(all), page);
      return ModelPage{std::move(rows), next};
    });
  }

  absl::StatusOr<VersionPage> ListVersions(const std::string& model_id,
                                           int64_t before_version,
                                           int32_t page_size) override {
    return core_->Run([&](State& s) -> absl::StatusOr<VersionPage> {
      if (!s.models.count(model_id)) {
        return absl::NotFoundError(absl::StrCat("no model ", model_id));
      }
      VersionPage out;
      for (auto it = s.versions.rbegin(); it != s.versions.rend(); ++it) {
        const auto& [key, v] = *it;
        if (key.first != model_id) continue;
        if (before_version != 0 && key.second >= before_version) continue;
        if (static_cast<int>(out.rows.size()) == page_size) {
          out.next_before_version = out.rows.back().version;
          break;
        }
        out.rows.push_back(VersionRowOf(s, v));
      }
      return out;
    });
  }

  absl::StatusOr<ModelVersionRow> GetVersion(const std::string& model_id,
                                             int64_t version) override {
    return core_->Run(
        [&](State& s) { return GetVersionIn(s, model_id, version); });
  }

  absl::StatusOr<std::unique_ptr<ArtifactReader>> OpenArtifact(
      const std::string& sha256) override {
    auto bytes = core_->Run([&](State& s) -> absl::StatusOr<std::string> {
      auto it = s.artifacts.find(sha256);
      if (it == s.artifacts.end()) {
        return absl::NotFoundError(absl::StrCat("no artifact ", ToHex(sha256)));
      }
      return it->second;
    });
    if (!bytes.ok()) return bytes.status();
    return NewStringArtifactReader(std::move(*bytes), sha256);
  }

 private:
  Core* core_;
};

class MemoryApiKeyStore final : public ApiKeyStore {
 public:
  explicit MemoryApiKeyStore(Core* core) : core_(core) {}

  absl::StatusOr<NewApiKey> Create(const ApiKeySpec& spec,
                                   const std::string&) override {
    auto datasets = KeyDatasets(spec);
    if (!datasets.ok()) return datasets.status();
    NewApiKey key{ToHex(RandomBytes(8)), "", spec.role};
    const std::string secret = ToHex(RandomBytes(32));
    key.token = absl::StrCat("lethe_", key.key_id, "_", secret);
    return core_->Run([&](State& s) -> absl::StatusOr<NewApiKey> {
      for (const std::string& id : *datasets) {
        if (!s.datasets.count(id)) {
          return absl::NotFoundError(absl::StrCat("datasets: no dataset ", id));
        }
      }
      s.api_keys[key.key_id] =
          ApiKeyRow{key.key_id,       Sha256(secret), spec.role,
                    spec.description, false,          *datasets};
      return key;
    });
  }

  absl::StatusOr<ApiKeyRow> Lookup(const std::string& key_id) override {
    return core_->Run([&](State& s) -> absl::StatusOr<ApiKeyRow> {
      auto it = s.api_keys.find(key_id);
      if (it == s.api_keys.end()) {
        return absl::NotFoundError(absl::StrCat("no API key ", key_id));
      }
      return it->second;
    });
  }

  absl::Status Revoke(const std::string& key_id, const std::string&) override {
    return core_->Run([&](State& s) -> absl::Status {
      auto it = s.api_keys.find(key_id);
      if (it == s.api_keys.end()) {
        return absl::NotFoundError(absl::StrCat("no API key ", key_id));
      }
      it->second.revoked = true;
      return absl::OkStatus();
    });
  }

 private:
  Core* core_;
};

}  // namespace

std::unique_ptr<DatasetStore> NewDatasetStore(Core* core) {
  return std::make_unique<MemoryDatasetStore>(core);
}
std::unique_ptr<ModelStore> NewModelStore(Core* core) {
  return std::make_unique<MemoryModelStore>(core);
}
std::unique_ptr<ApiKeyStore> NewApiKeyStore(Core* core) {
  return std::make_unique<MemoryApiKeyStore>(core);
}

}  // namespace lethe::storage::memory
