#include "server/dataset_service.h"

#include <array>

#include "absl/strings/str_cat.h"
#include "server/convert.h"
#include "server/subject.h"
#include "storage/spool.h"
#include "upload/upload_parser.h"
#include "validate/validate.h"

namespace lethe::server {
namespace {

using storage::Role;

upload::FeatureSpec SpecOf(const storage::DatasetRow& d) {
  upload::FeatureSpec spec;
  spec.shape = d.feature_shape;
  spec.type = d.feature_type == "uint8" ? upload::FeatureType::kUint8
                                        : upload::FeatureType::kFloat32;
  spec.num_classes = d.num_classes;
  return spec;
}

// Records as the store takes them: parsed from `reader` one at a time,
// subject ids keyed, in batches of at most kRecords records or about
// kBytes bytes. What a large upload costs in memory is one batch.
class UploadBatches : public storage::RecordBatches {
 public:
  UploadBatches(upload::RecordReader* reader, const std::string* secret)
      : reader_(reader), secret_(secret) {}

  absl::StatusOr<bool> Next(std::vector<storage::RecordRow>* batch) override {
    batch->clear();
    size_t bytes = 0;
    while (batch->size() < kRecords && bytes < kBytes) {
      absl::StatusOr<bool> more = reader_->Next(&record_);
      if (!more.ok()) return more.status();
      if (!*more) break;
      bytes += record_.features.size() + kRowOverhead;
      batch->push_back(storage::RecordRow{
          SubjectKey(*secret_, record_.subject_id), record_.label, record_.test,
          std::move(record_.features)});
    }
    return !batch->empty();
  }

 private:
  static constexpr size_t kRecords = 4096;
  static constexpr size_t kBytes = size_t{8} << 20;
  static constexpr size_t kRowOverhead = 96;  // the row's own fields

  upload::RecordReader* reader_;
  const std::string* secret_;
  upload::ParsedRecord record_;
};

// A spooled part read back as an upload source.
class SpoolSource final : public upload::ByteSource {
 public:
  explicit SpoolSource(storage::SpoolFile* file) : file_(file) {}
  absl::StatusOr<size_t> Read(char* out, size_t n) override {
    return file_->Read(out, n);
  }

 private:
  storage::SpoolFile* file_;
};

// Spools an upload stream's parts to disk as sent (compressed or not),
// then decompresses, parses and stores it record by record into one
// transaction: the call holds a message and a batch in memory, whatever
// the upload's size.
class UploadReactor final
    : public grpc::ServerReadReactor<v1::UploadRecordsRequest> {
 public:
  UploadReactor(const Deps* deps, grpc::CallbackServerContext* ctx,
                v1::UploadRecordsResponse* resp)
      : deps_(deps), ctx_(ctx), resp_(resp) {
    // Authenticate before reading a byte of the upload.
    deps_->executor->Submit([this, md = AuthMetadata::From(*ctx)] {
      auto principal = deps_->auth->Authorize(md, {Role::kOperator});
      if (!principal.ok()) return Finish(ToGrpc(principal.status()));
      actor_ = principal->key_id;
      StartRead(&msg_);
    });
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client half-closed: the upload is complete
      deps_->executor->Submit([this] { Done(ToGrpc(Store(), deps_->logger)); });
      return;
    }
    if (absl::Status st = Accept(); !st.ok()) return Done(ToGrpc(st));
    StartRead(&msg_);
  }

  void OnDone() override { delete this; }

 private:
  // Finishes the call with what it held freed and given back first, so
  // that a client's next upload finds the room.
  void Done(const grpc::Status& status) {
    for (auto& part : parts_) part.reset();
    hold_.Release();
    Finish(status);
  }

  absl::Status Accept() {
    if (!have_header_) {
      if (!msg_.has_header()) {
        return absl::InvalidArgumentError(
            "the first UploadRecordsRequest must carry the header");
      }
      header_ = msg_.header();
      have_header_ = true;
      if (auto st = CheckUuid("header.dataset_id", header_.dataset_id());
          !st.ok()) {
        return st;
      }
      if (header_.format() != v1::UPLOAD_FORMAT_CSV &&
          header_.format() != v1::UPLOAD_FORMAT_IDX) {
        return absl::InvalidArgumentError(
            "header.format must be UPLOAD_FORMAT_CSV or UPLOAD_FORMAT_IDX");
      }
      if (header_.format() == v1::UPLOAD_FORMAT_IDX &&
          header_.idx_split() != v1::SPLIT_TRAIN &&
          header_.idx_split() != v1::SPLIT_TEST) {
        return absl::InvalidArgumentError(
            "header.idx_split must be SPLIT_TRAIN or SPLIT_TEST for IDX");
      }
      return absl::OkStatus();
    }
    if (!msg_.has_chunk()) {
      return absl::InvalidArgumentError(
          "only the first UploadRecordsRequest may carry a header");
    }
    const auto& chunk = msg_.chunk();
    const bool csv = header_.format() == v1::UPLOAD_FORMAT_CSV;
    const bool part_ok = csv ? chunk.part() == v1::UPLOAD_PART_CSV
                             : (chunk.part() == v1::UPLOAD_PART_IDX_IMAGES ||
                                chunk.part() == v1::UPLOAD_PART_IDX_LABELS ||
                                chunk.part() == v1::UPLOAD_PART_SUBJECTS);
    if (!part_ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "chunk part ", v1::UploadPart_Name(chunk.part()),
          " does not belong to a ", csv ? "CSV" : "IDX", " upload"));
    }
    if (static_cast<int64_t>(chunk.data().size()) >
        deps_->limits.max_chunk_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "a chunk holds at most ", deps_->limits.max_chunk_bytes, " bytes"));
    }
    total_ += static_cast<int64_t>(chunk.data().size());
    if (total_ > deps_->limits.max_upload_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "an upload holds at most ", deps_->limits.max_upload_bytes,
          " bytes; split it into several uploads"));
    }
    if (absl::Status st = hold_.Take(static_cast<int64_t>(chunk.data().size()));
        !st.ok()) {
      return st;
    }
    std::unique_ptr<storage::SpoolFile>& spool = parts_[chunk.part()];
    if (spool == nullptr) {
      auto created =
          storage::SpoolFile::Create(deps_->spool_dir, /*hashed=*/false);
      if (!created.ok()) return created.status();
      spool = std::move(created).value();
    }
    return spool->Append(chunk.data());
  }

  absl::Status Store() {
    // A cancelled stream also ends reads with ok=false: store nothing.
    if (ctx_->IsCancelled()) {
      return absl::CancelledError("upload cancelled by the client");
    }
    if (!have_header_) {
      return absl::InvalidArgumentError("empty upload: no header was sent");
    }
    auto dataset = deps_->datasets->Get(header_.dataset_id());
    if (!dataset.ok()) return dataset.status();
    const upload::FeatureSpec spec = SpecOf(*dataset);
    const upload::SourceLimits limits{
        static_cast<size_t>(deps_->limits.max_upload_bytes),
        deps_->limits.max_upload_expansion};
    for (const auto& spool : parts_) {
      if (spool == nullptr) continue;
      if (absl::Status st = spool->Rewind(); !st.ok()) return st;
    }
    auto part = [&](v1::UploadPart p) {
      storage::SpoolFile* spool = parts_[p].get();
      if (spool == nullptr) return upload::OpenPart(std::string_view(), limits);
      return upload::OpenPart(std::make_unique<SpoolSource>(spool), limits);
    };
    std::unique_ptr<upload::RecordReader> reader;
    if (header_.format() == v1::UPLOAD_FORMAT_CSV) {
      reader = upload::ReadCsv(part(v1::UPLOAD_PART_CSV), spec,
                               deps_->limits.max_upload_records);
    } else {
      reader = upload::ReadIdx(
          part(v1::UPLOAD_PART_IDX_IMAGES), part(v1::UPLOAD_PART_IDX_LABELS),
          part(v1::UPLOAD_PART_SUBJECTS), header_.idx_split() == v1::SPLIT_TEST,
          spec, deps_->limits.max_upload_records);
    }
    UploadBatches batches(reader.get(), &deps_->server_secret);
    auto added = deps_->datasets->AddRecordBatches(header_.dataset_id(),
                                                   batches, actor_);
    if (!added.ok()) return added.status();
    resp_->set_records_added(added->records_added);
    resp_->set_new_subjects(added->new_subjects);
    auto after = deps_->datasets->Get(header_.dataset_id());
    if (!after.ok()) return after.status();
    ToProto(*after, resp_->mutable_dataset());
    return absl::OkStatus();
  }

  const Deps* deps_;
  // Alive until OnDone, which comes after our Finish: Store() reads it
  // before finishing. Never read it after a Finish.
  grpc::CallbackServerContext* ctx_;
  v1::UploadRecordsResponse* resp_;
  std::string actor_;
  v1::UploadRecordsRequest msg_;
  v1::UploadHeader header_;
  bool have_header_ = false;
  int64_t total_ = 0;
  BudgetHold hold_{deps_->spooled};  // after deps_: initialised from it
  // Indexed by UploadPart; null until the part's first byte.
  std::array<std::unique_ptr<storage::SpoolFile>, 5> parts_;
};

}  // namespace

grpc::ServerUnaryReactor* DatasetServiceImpl::CreateDataset(
    grpc::CallbackServerContext* ctx, const v1::CreateDatasetRequest* req,
    v1::Dataset* resp) {
  return Offload(ctx, deps_, [this, req, resp](const auto& md) {
    auto principal = deps_->auth->Authorize(md, {Role::kOperator});
    if (!principal.ok()) return principal.status();
    if (auto st = CheckName("name", req->name()); !st.ok()) return st;
    if (auto st = CheckText("description", req->description(),
                            kMaxDescriptionBytes, false);
        !st.ok()) {
      return st;
    }
    if (req->feature_type() != v1::FEATURE_TYPE_UINT8 &&
        req->feature_type() != v1::FEATURE_TYPE_FLOAT32) {
      return absl::InvalidArgumentError(
          "feature_type must be FEATURE_TYPE_UINT8 or FEATURE_TYPE_FLOAT32");
    }
    upload::FeatureSpec spec;
    spec.shape.assign(req->feature_shape().begin(), req->feature_shape().end());
    spec.type = req->feature_type() == v1::FEATURE_TYPE_UINT8
                    ? upload::FeatureType::kUint8
                    : upload::FeatureType::kFloat32;
    spec.num_classes = req->num_classes();
    if (auto st = upload::ValidateFeatureSpec(spec); !st.ok()) return st;
    storage::DatasetRow row;
    row.name = req->name();
    row.description = req->description();
    row.feature_shape = spec.shape;
    row.feature_type =
        spec.type == upload::FeatureType::kUint8 ? "uint8" : "float32";
    row.num_classes = req->num_classes();
    auto created = deps_->datasets->Create(row, principal->key_id);
    if (!created.ok()) return created.status();
    ToProto(*created, resp);
    return absl::OkStatus();
  });
}

grpc::ServerReadReactor<v1::UploadRecordsRequest>*
DatasetServiceImpl::UploadRecords(grpc::CallbackServerContext* ctx,
                                  v1::UploadRecordsResponse* resp) {
  return new UploadReactor(deps_, ctx, resp);
}

grpc::ServerUnaryReactor* DatasetServiceImpl::GetDataset(
    grpc::CallbackServerContext* ctx, const v1::GetDatasetRequest* req,
    v1::Dataset* resp) {
  return Offload(ctx, deps_, [this, req, resp](const auto& md) {
    auto principal =
        deps_->auth->Authorize(md, {Role::kOperator, Role::kAuditor});
    if (!principal.ok()) return principal.status();
    if (auto st = CheckUuid("id", req->id()); !st.ok()) return st;
    auto row = deps_->datasets->Get(req->id());
    if (!row.ok()) return row.status();
    ToProto(*row, resp);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* DatasetServiceImpl::ListDatasets(
    grpc::CallbackServerContext* ctx, const v1::ListDatasetsRequest* req,
    v1::ListDatasetsResponse* resp) {
  return Offload(ctx, deps_, [this, req, resp](const auto& md) {
    auto principal =
        deps_->auth->Authorize(md, {Role::kOperator, Role::kAuditor});
    if (!principal.ok()) return principal.status();
    auto size = PageSize(req->page_size());
    if (!size.ok()) return size.status();
    auto cursor = DecodePageToken(req->page_token(), "datasets");
    if (!cursor.ok()) return cursor.status();
    auto page = deps_->datasets->List(storage::Page{*size, *cursor});
    if (!page.ok()) return page.status();
    for (const auto& row : page->rows) ToProto(row, resp->add_datasets());
    if (page->next) {
      resp->set_next_page_token(EncodePageToken(*page->next, "datasets"));
    }
    return absl::OkStatus();
  });
}

}  // namespace lethe::server
