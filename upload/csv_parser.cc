// ParseCsv: one pass over the text, no copies but the parsed values.
#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "upload/internal.h"
#include "upload/upload_parser.h"
#include "validate/validate.h"

namespace lethe::upload {
namespace {

using internal::Absl;
using internal::Excerpt;

constexpr int kFixedColumns = 3;  // subject_id, label, split

absl::Status LineError(int64_t line, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("line ", line, ": ", Absl(what)));
}

std::string ExpectedHeader(const FeatureSpec& spec, int64_t elements) {
  return absl::StrCat("subject_id,label,split,f0..f", elements - 1,
                      " (feature shape [", absl::StrJoin(spec.shape, ","),
                      "] has ", elements, " elements)");
}

// Splits one line at commas, field by field.
class Fields {
 public:
  explicit Fields(std::string_view line) : line_(line) {}
  // False when the line has no more fields.
  bool Next(std::string_view* field) {
    if (done_) return false;
    const char* start = line_.data() + pos_;
    const void* comma = std::memchr(start, ',', line_.size() - pos_);
    if (comma == nullptr) {
      *field = line_.substr(pos_);
      done_ = true;
    } else {
      size_t len = static_cast<const char*>(comma) - start;
      *field = std::string_view(start, len);
      pos_ += len + 1;
    }
    return true;
  }
  bool done() const { return done_; }

 private:
  std::string_view line_;
  size_t pos_ = 0;
  bool done_ = false;
};

int64_t CountFields(std::string_view line) {
  int64_t n = 1;
  for (char c : line) n += c == ',';
  return n;
}

absl::Status CheckHeader(std::string_view line, const FeatureSpec& spec,
                         int64_t elements) {
  int64_t columns = CountFields(line);
  if (columns != kFixedColumns + elements) {
    return LineError(
        1, absl::StrCat("the header has ", columns, " columns; expected ",
                        kFixedColumns + elements, ": ",
                        ExpectedHeader(spec, elements)));
  }
  Fields fields(line);
  std::string_view name;
  for (int64_t i = 0; fields.Next(&name); ++i) {
    std::string expected = i == 0   ? "subject_id"
                           : i == 1 ? "label"
                           : i == 2 ? "split"
                                    : absl::StrCat("f", i - kFixedColumns);
    if (name != expected) {
      return LineError(
          1, absl::StrCat("header column ", i + 1, " is '", Excerpt(name),
                          "', expected '", expected, "'; the header must be ",
                          ExpectedHeader(spec, elements)));
    }
  }
  return absl::OkStatus();
}

// "" or what is wrong with `field` as the value of feature `index`.
std::string ParseUint8(std::string_view field, char* out) {
  unsigned value = 0;
  bool ok = !field.empty() && field.size() <= 3;
  for (char c : field) {
    ok = ok && c >= '0' && c <= '9';
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (!ok || value > 255) return "an integer 0..255";
  *out = static_cast<char>(value);
  return "";
}

std::string ParseFloat32(std::string_view field, char* out) {
  double value = 0;
  auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(),
                                   value, std::chars_format::general);
  if (field.empty() || ec != std::errc() ||
      end != field.data() + field.size() || !std::isfinite(value) ||
      std::fabs(value) > FLT_MAX) {
    return "a finite decimal number within float32 range (e.g. 0.5, -1e-3)";
  }
  internal::StoreFloat32Le(static_cast<float>(value), out);
  return "";
}

absl::Status ParseRow(std::string_view line, int64_t line_number,
                      const FeatureSpec& spec, int64_t elements,
                      ParsedRecord* record) {
  auto wrong_count = [&] {
    return LineError(line_number,
                     absl::StrCat(CountFields(line), " fields; expected ",
                                  kFixedColumns + elements,
                                  " (subject_id, label, split and ", elements,
                                  " features)"));
  };
  Fields fields(line);
  std::string_view subject, label, split;
  if (!fields.Next(&subject) || !fields.Next(&label) || !fields.Next(&split)) {
    return wrong_count();
  }
  if (absl::Status st = server::CheckSubjectId(subject); !st.ok()) {
    return LineError(line_number, std::string(st.message()));
  }
  int64_t label_value = -1;
  auto [end, ec] =
      std::from_chars(label.data(), label.data() + label.size(), label_value);
  if (label.empty() || ec != std::errc() ||
      end != label.data() + label.size()) {
    return LineError(line_number,
                     absl::StrCat("label '", Excerpt(label),
                                  "' is not an integer; expected 0..",
                                  spec.num_classes - 1));
  }
  if (label_value < 0 || label_value >= spec.num_classes) {
    return LineError(line_number,
                     absl::StrCat("label ", label_value,
                                  " is out of range; the "
                                  "dataset has ",
                                  spec.num_classes, " classes, labels 0..",
                                  spec.num_classes - 1));
  }
  if (split != "train" && split != "test") {
    return LineError(line_number, absl::StrCat("split '", Excerpt(split),
                                               "' must be 'train' or 'test'"));
  }
  const bool float32 = spec.type == FeatureType::kFloat32;
  const size_t width = float32 ? 4 : 1;
  record->features.resize(static_cast<size_t>(elements) * width);
  char* out = record->features.data();
  std::string_view field;
  for (int64_t i = 0; i < elements; ++i, out += width) {
    if (!fields.Next(&field)) return wrong_count();
    std::string expected =
        float32 ? ParseFloat32(field, out) : ParseUint8(field, out);
    if (!expected.empty()) {
      return LineError(line_number,
                       absl::StrCat("f", i, " is '", Excerpt(field),
                                    "'; expected ", expected));
    }
  }
  if (!fields.done()) return wrong_count();
  record->subject_id.assign(subject);
  record->label = static_cast<int32_t>(label_value);
  record->test = split == "test";
  return absl::OkStatus();
}

// The longest line a record of `elements` features can take: the fixed
// columns plus each feature as the longest float from_chars accepts in
// reasonable writing ("-1.2345678901234567e-38," is 24 bytes).
size_t MaxLineBytes(int64_t elements) {
  return 1024 + static_cast<size_t>(elements) * 48;
}

class CsvReader : public internal::StickyReader {
 public:
  CsvReader(std::unique_ptr<ByteSource> csv, const FeatureSpec& spec,
            int64_t max_records)
      : in_(std::move(csv)), spec_(spec), max_records_(max_records) {}

 private:
  absl::Status Start() {
    if (absl::Status s = ValidateFeatureSpec(spec_); !s.ok()) return s;
    elements_ = ElementCount(spec_);
    std::string_view line;
    absl::StatusOr<bool> more = in_.NextLine(&line, MaxLineBytes(elements_));
    if (!more.ok()) return more.status();
    if (!*more || line.empty()) {
      return LineError(1, absl::StrCat("no header; the CSV must start with ",
                                       ExpectedHeader(spec_, elements_)));
    }
    if (line.find('"') != std::string_view::npos) {
      return LineError(
          1, "quoted fields are not supported; remove the double quotes");
    }
    return CheckHeader(line, spec_, elements_);
  }

  absl::StatusOr<bool> Read(ParsedRecord* record) override {
    if (!started_) {
      if (absl::Status s = Start(); !s.ok()) return s;
      started_ = true;
    }
    std::string_view line;
    absl::StatusOr<bool> more = in_.NextLine(&line, MaxLineBytes(elements_));
    if (!more.ok()) return more.status();
    if (!*more) {
      if (count_ == 0) {
        return LineError(
            1, "the CSV has a header but no records; add at least one");
      }
      return false;
    }
    const int64_t n = in_.line_number();
    if (line.empty()) {
      return LineError(n,
                       "blank line; remove it (only the last line may end "
                       "with a newline)");
    }
    if (line.find('"') != std::string_view::npos) {
      return LineError(n,
                       "quoted fields are not supported; remove the double "
                       "quotes (subject ids may not contain commas or quotes)");
    }
    if (count_ == max_records_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "line ", n, ": more than ", max_records_,
          " records, the limit of one upload; split the file into several "
          "uploads"));
    }
    if (absl::Status s = ParseRow(line, n, spec_, elements_, record); !s.ok()) {
      return s;
    }
    ++count_;
    return true;
  }

  internal::BufferedReader in_;
  const FeatureSpec spec_;
  const int64_t max_records_;
  int64_t elements_ = 0;
  bool started_ = false;
  int64_t count_ = 0;
};

}  // namespace

std::unique_ptr<RecordReader> ReadCsv(std::unique_ptr<ByteSource> csv,
                                      const FeatureSpec& spec,
                                      int64_t max_records) {
  return std::make_unique<CsvReader>(std::move(csv), spec, max_records);
}

absl::StatusOr<std::vector<ParsedRecord>> ParseCsv(std::string_view csv,
                                                   const FeatureSpec& spec) {
  return internal::ReadAll(ReadCsv(internal::PlainSource(csv), spec).get());
}

}  // namespace lethe::upload
