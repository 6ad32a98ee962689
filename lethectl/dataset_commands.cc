// dataset create, upload, get, list: DatasetService.
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/file.h"
#include "lethe/v1/dataset.grpc.pb.h"
#include "lethectl/commands.h"

namespace lethe::cli {
namespace {

using ::lethe::v1::Dataset;
using ::lethe::v1::DatasetService;
using ::lethe::v1::UploadPart;

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

std::unique_ptr<DatasetService::Stub> Stub(const Invocation& inv) {
  return DatasetService::NewStub(inv.connection.channel());
}

std::string Shape(const Dataset& d) {
  return absl::StrJoin(d.feature_shape(), "x");
}

std::string DatasetText(const Dataset& d) {
  return absl::StrCat(
      Field("id", d.id()), Field("name", d.name()),
      d.description().empty() ? "" : Field("description", d.description()),
      Field("shape", Shape(d)), Field("type", ShortName(d.feature_type())),
      Field("classes", absl::StrCat(d.num_classes())),
      Field("records", absl::StrCat(d.train_records(), " train, ",
                                    d.test_records(), " test")),
      Field("subjects", absl::StrCat(d.subjects())),
      Field("created", FormatTime(d.create_time())));
}

Outcome Create(const Invocation& inv) {
  FlagReader reader(inv.flags);
  v1::CreateDatasetRequest request;
  request.set_name(reader.Required("name"));
  request.set_description(inv.flags.Get("description"));
  if (!inv.flags.Has("shape")) reader.Fail("--shape is required, e.g. 1,28,28");
  if (auto shape =
          reader.IntList("shape", 1, std::numeric_limits<int64_t>::max())) {
    for (int64_t dim : *shape) request.add_feature_shape(dim);
  }
  if (!inv.flags.Has("type")) reader.Fail("--type is required: uint8|float32");
  if (auto type = ReadEnum<v1::FeatureType>(reader, "type")) {
    request.set_feature_type(*type);
  }
  if (!inv.flags.Has("classes")) reader.Fail("--classes is required");
  if (auto classes = reader.Int("classes", 1, kInt32Max)) {
    request.set_num_classes(static_cast<int32_t>(*classes));
  }
  if (!reader.ok()) return Outcome::FromStatus(reader.status());
  Dataset response;
  auto context = inv.connection.NewContext(/*streaming=*/false);
  grpc::Status status =
      Stub(inv)->CreateDataset(context.get(), request, &response);
  if (!status.ok()) return Outcome::Rpc(status);
  inv.printer.Print(response, DatasetText(response));
  return Outcome::Ok();
}

// The header and the files to send, from --csv or the IDX flags.
absl::Status PlanUpload(
    const ParsedFlags& flags, v1::UploadHeader* header,
    std::vector<std::pair<UploadPart, std::string>>* parts) {
  const bool idx = flags.Has("idx-images") || flags.Has("idx-labels") ||
                   flags.Has("subjects");
  if (flags.Has("csv") == idx) {
    return absl::InvalidArgumentError(
        "give either --csv FILE or --idx-images, --idx-labels, --subjects "
        "and --split");
  }
  header->set_dataset_id(flags.positionals()[0]);
  if (!idx) {
    if (flags.Has("split")) {
      return absl::InvalidArgumentError(
          "--split is for IDX uploads; a CSV names the split on each row");
    }
    header->set_format(v1::UPLOAD_FORMAT_CSV);
    parts->emplace_back(v1::UPLOAD_PART_CSV, flags.Get("csv"));
    return absl::OkStatus();
  }
  FlagReader reader(flags);
  header->set_format(v1::UPLOAD_FORMAT_IDX);
  parts->emplace_back(v1::UPLOAD_PART_IDX_IMAGES,
                      reader.Required("idx-images"));
  parts->emplace_back(v1::UPLOAD_PART_IDX_LABELS,
                      reader.Required("idx-labels"));
  parts->emplace_back(v1::UPLOAD_PART_SUBJECTS, reader.Required("subjects"));
  if (!flags.Has("split")) reader.Fail("--split is required: train|test");
  if (auto split = ReadEnum<v1::Split>(reader, "split"))
    header->set_idx_split(*split);
  return reader.status();
}

Outcome Upload(const Invocation& inv) {
  v1::UploadRecordsRequest first;
  std::vector<std::pair<UploadPart, std::string>> parts;
  if (absl::Status s = PlanUpload(inv.flags, first.mutable_header(), &parts);
      !s.ok()) {
    return Outcome::FromStatus(s);
  }
  for (const auto& [part, path] : parts) {
    if (absl::Status s = base::CheckReadable(path); !s.ok()) {
      return Outcome::FromStatus(s);
    }
  }
  v1::UploadRecordsResponse response;
  auto context = inv.connection.NewContext(/*streaming=*/true);
  auto writer = Stub(inv)->UploadRecords(context.get(), &response);
  bool open = writer->Write(first);
  v1::UploadRecordsRequest message;
  for (const auto& [part, path] : parts) {
    if (!open) break;  // Finish says why
    message.mutable_chunk()->set_part(part);
    absl::Status read = base::ForEachChunk(
        path, kUploadChunkBytes, [&](absl::string_view chunk) {
          message.mutable_chunk()->set_data(std::string(chunk));
          return open = open && writer->Write(message);
        });
    if (!read.ok()) {
      context->TryCancel();  // the server then adds nothing
      (void)writer->Finish();
      return Outcome::FromStatus(read);
    }
  }
  if (open) writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!status.ok()) return Outcome::Rpc(status);
  const Dataset& d = response.dataset();
  inv.printer.Print(
      response,
      absl::StrCat("added ", response.records_added(), " records (",
                   response.new_subjects(), " new subjects) to ", d.id(),
                   "; now ", d.train_records(), " train, ", d.test_records(),
                   " test, ", d.subjects(), " subjects"));
  return Outcome::Ok();
}

Outcome Get(const Invocation& inv) {
  v1::GetDatasetRequest request;
  request.set_id(inv.flags.positionals()[0]);
  Dataset response;
  auto context = inv.connection.NewContext(/*streaming=*/false);
  grpc::Status status =
      Stub(inv)->GetDataset(context.get(), request, &response);
  if (!status.ok()) return Outcome::Rpc(status);
  inv.printer.Print(response, DatasetText(response));
  return Outcome::Ok();
}

Outcome List(const Invocation& inv) {
  auto stub = Stub(inv);
  return RunList<v1::ListDatasetsRequest, v1::ListDatasetsResponse>(
      inv, v1::ListDatasetsRequest(),
      [&](grpc::ClientContext* c, const auto& req, auto* resp) {
        return stub->ListDatasets(c, req, resp);
      },
      [](const v1::ListDatasetsResponse& response) {
        std::string rows;
        for (const Dataset& d : response.datasets()) {
          absl::StrAppendFormat(&rows,
                                "%-36s  %-24s  %-10s  %-7s  %d classes  %d "
                                "train  %d test  %d subjects\n",
                                d.id(), d.name(), Shape(d),
                                ShortName(d.feature_type()), d.num_classes(),
                                d.train_records(), d.test_records(),
                                d.subjects());
        }
        return rows;
      });
}

}  // namespace

std::vector<Command> DatasetCommands() {
  return {
      {"dataset create",
       "--name N --shape D,... --type T --classes K [--description D]",
       "create an empty dataset",
       0,
       {{"name", "NAME", "unique name, [A-Za-z0-9._-]"},
        {"shape", "D,...", "shape of one record's features, e.g. 1,28,28"},
        {"type", "TYPE", "feature type: uint8|float32"},
        {"classes", "K", "number of classes (labels are 0..K-1)"},
        {"description", "TEXT", "free text"}},
       Create},
      {"dataset upload",
       "ID (--csv FILE | --idx-images FILE --idx-labels FILE --subjects FILE "
       "--split S)",
       "add records from a CSV file or IDX files (gzip or not), all or none",
       1,
       {{"csv", "FILE", "CSV with header subject_id,label,split,f0,...,fN"},
        {"idx-images", "FILE",
         "IDX images file (e.g. train-images-idx3-ubyte.gz)"},
        {"idx-labels", "FILE", "IDX labels file"},
        {"subjects", "FILE", "one subject id per line, in record order"},
        {"split", "SPLIT", "split of every IDX record: train|test"}},
       Upload},
      {"dataset get", "ID", "show a dataset", 1, {}, Get},
      {"dataset list", "[flags]", "list datasets", 0, PageFlags(), List},
  };
}

}  // namespace lethe::cli
