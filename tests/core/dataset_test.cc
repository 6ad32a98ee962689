#include "lethe/core/dataset.h"

#include <ATen/ATen.h>

#include <zlib.h>

#include <fstream>

#include <gtest/gtest.h>

#include "lethe/core/dataset_io.h"
#include "test_util.h"

namespace lethe::core {
namespace {

FeatureSpec Spec(std::vector<int64_t> shape, FeatureType type, int64_t k) {
  FeatureSpec s;
  s.shape = std::move(shape);
  s.type = type;
  s.num_classes = k;
  return s;
}

const char kCsv[] =
    "subject_id,label,split,f0,f1,f2\n"
    "alice,0,train,0,128,255\n"
    "bob,2,train,10,20,30\n"
    "alice,1,test,255,255,255\n";

TEST(CsvTest, ParsesRowsAndScalesUint8) {
  Result<Dataset> d = ParseCsvDataset(kCsv, Spec({3}, FeatureType::kUint8, 3));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->size(), 3);
  EXPECT_EQ(d->subjects().size(), 2u);
  EXPECT_EQ(d->subject_index()[2], d->subject_index()[0]);
  EXPECT_EQ(d->splits()[2], Split::kTest);
  // Stored as one byte a feature; the model reads v / 255.
  EXPECT_EQ(d->features().scalar_type(), at::kByte);
  EXPECT_EQ(d->features()[0][1].item<int64_t>(), 128);
  EXPECT_FLOAT_EQ(AsModelInput(d->features())[0][1].item<float>(),
                  128.0f / 255);
  EXPECT_EQ(d->labels()[1].item<int64_t>(), 2);
}

TEST(CsvTest, MalformedInputNamesTheLine) {
  FeatureSpec spec = Spec({3}, FeatureType::kUint8, 3);
  struct Case {
    std::string text, expect;
  } cases[] = {
      {"subject,label,split,f0,f1,f2\n", "line 1: header"},
      {"subject_id,label,split,f0,f1\n", "line 1: header"},
      {"subject_id,label,split,f0,f1,f2\na,0,train,1,2\n", "line 2: 5 columns"},
      {"subject_id,label,split,f0,f1,f2\na,x,train,1,2,3\n", "line 2: label"},
      {"subject_id,label,split,f0,f1,f2\na,3,train,1,2,3\n",
       "label 3 outside [0, 3)"},
      {"subject_id,label,split,f0,f1,f2\na,0,valid,1,2,3\n", "split 'valid'"},
      {"subject_id,label,split,f0,f1,f2\na,0,train,1,z,3\n", "feature f1"},
      {"subject_id,label,split,f0,f1,f2\na,0,train,1,2,300\n", "out of range"},
      {"subject_id,label,split,f0,f1,f2\n,0,train,1,2,3\n", "empty subject"},
      {"", "empty file"},
  };
  for (const Case& c : cases) {
    Result<Dataset> d = ParseCsvDataset(c.text, spec);
    ASSERT_FALSE(d.ok()) << c.text;
    EXPECT_EQ(d.status().code(), Code::kInvalidArgument);
    EXPECT_NE(d.status().message().find(c.expect), std::string::npos)
        << d.status().message();
  }
}

std::string Idx(uint8_t ndims, std::vector<uint32_t> dims, size_t payload) {
  std::string s = {0, 0, 8, static_cast<char>(ndims)};
  for (uint32_t d : dims) {
    for (int i = 3; i >= 0; --i) s.push_back(static_cast<char>(d >> (8 * i)));
  }
  for (size_t i = 0; i < payload; ++i) s.push_back(static_cast<char>(i % 7));
  return s;
}

TEST(IdxTest, ParsesAndRejectsMalformed) {
  Result<IdxArray> ok = ParseIdx(Idx(3, {2, 2, 3}, 12));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->dims, (std::vector<int64_t>{2, 2, 3}));
  EXPECT_EQ(ok->data[8], 1);
  EXPECT_NE(ParseIdx(Idx(3, {2, 2, 3}, 11)).status().message().find("payload"),
            std::string::npos);
  EXPECT_NE(ParseIdx("\x01\x02\x03\x04").status().message().find("magic"),
            std::string::npos);
  std::string float_idx = Idx(1, {1}, 4);
  float_idx[2] = 0x0d;
  EXPECT_NE(ParseIdx(float_idx).status().message().find("not supported"),
            std::string::npos);
  EXPECT_FALSE(ParseIdx(Idx(3, {2}, 0)).ok());  // header truncated
}

TEST(IdxTest, ReadsGzipAndRejectsTruncatedGzip) {
  std::string raw = Idx(1, {5}, 5);
  uLongf cap = compressBound(raw.size()) + 32;
  std::string gz(cap, '\0');
  z_stream zs{};
  deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  zs.next_in = reinterpret_cast<Bytef*>(raw.data());
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = reinterpret_cast<Bytef*>(gz.data());
  zs.avail_out = static_cast<uInt>(cap);
  ASSERT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  gz.resize(zs.total_out);
  deflateEnd(&zs);
  std::string path = testing::TempDir() + "/labels.gz";
  std::ofstream(path, std::ios::binary) << gz;
  Result<IdxArray> r = ReadIdx(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->dims[0], 5);
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      << gz.substr(0, gz.size() / 2);
  EXPECT_NE(ReadIdx(path).status().message().find("gzip"), std::string::npos);
  EXPECT_EQ(ReadIdx(path + ".missing").status().code(), Code::kNotFound);
}

TEST(IdxTest, LoadsFashionMnistWithBlockSubjects) {
  std::string dir = testing::FashionDir();
  Result<Dataset> d =
      LoadIdxDataset({{dir + "/train-images-idx3-ubyte.gz",
                       dir + "/train-labels-idx1-ubyte.gz", Split::kTrain, 100},
                      {dir + "/t10k-images-idx3-ubyte.gz",
                       dir + "/t10k-labels-idx1-ubyte.gz", Split::kTest, 30}},
                     10, SubjectAssignment{25, {}});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->size(), 130);
  EXPECT_EQ(d->features().sizes(), (at::IntArrayRef{130, 1, 28, 28}));
  EXPECT_EQ(d->subjects().size(), 4u + 2u);      // 100/25 train, 30/25 test
  EXPECT_EQ(d->labels()[0].item<int64_t>(), 9);  // first image: ankle boot
  const at::Tensor x = AsModelInput(d->features());
  EXPECT_EQ(x.scalar_type(), at::kFloat);
  EXPECT_LE(x.max().item<float>(), 1.0f);
  EXPECT_GT(x.max().item<float>(), 0.9f);
  // A provided key vector must cover every record.
  Result<Dataset> bad =
      LoadIdxDataset({{dir + "/t10k-images-idx3-ubyte.gz",
                       dir + "/t10k-labels-idx1-ubyte.gz", Split::kTest, 10}},
                     10, SubjectAssignment{1, {"a", "b"}});
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  // Images and labels of different files do not pair up.
  Result<Dataset> mixed =
      LoadIdxDataset({{dir + "/train-images-idx3-ubyte.gz",
                       dir + "/t10k-labels-idx1-ubyte.gz", Split::kTrain, 10}},
                     10, SubjectAssignment{});
  EXPECT_EQ(mixed.status().code(), Code::kInvalidArgument);
}

TEST(DatasetBuilderTest, RejectsBadRowsAndKeepsGoodOnes) {
  DatasetBuilder b(Spec({2}, FeatureType::kFloat32, 2));
  float good[2] = {0.5f, -1.0f};
  std::string raw(reinterpret_cast<const char*>(good), sizeof(good));
  ASSERT_TRUE(b.Add(7, "s", 1, Split::kTrain, raw).ok());
  Status short_row = b.Add(8, "s", 1, Split::kTrain, raw.substr(0, 5));
  EXPECT_NE(short_row.message().find("5 feature bytes"), std::string::npos);
  EXPECT_NE(b.Add(9, "s", 2, Split::kTrain, raw).message().find("label 2"),
            std::string::npos);
  EXPECT_NE(b.Add(7, "t", 0, Split::kTrain, raw).message().find("duplicate"),
            std::string::npos);
  float nan[2] = {0.0f, std::numeric_limits<float>::quiet_NaN()};
  EXPECT_FALSE(b.Add(10, "s", 0, Split::kTrain,
                     std::string(reinterpret_cast<const char*>(nan), 8))
                   .ok());
  Result<Dataset> d = std::move(b).Build();
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->size(), 1);
  EXPECT_EQ(d->record_ids()[0], 7);
  EXPECT_FLOAT_EQ(d->features()[0][1].item<float>(), -1.0f);
  EXPECT_EQ(DatasetBuilder(Spec({2}, FeatureType::kFloat32, 2))
                .Build()
                .status()
                .code(),
            Code::kInvalidArgument);
}

TEST(PartitionTest, ForgetsTheUnionOfSubjectsTrainRecordsOnly) {
  Result<Dataset> d = ParseCsvDataset(
      "subject_id,label,split,f0\n"
      "a,0,train,1\nb,1,train,2\nc,0,train,3\na,1,test,4\nb,0,train,5\n",
      Spec({1}, FeatureType::kUint8, 2));
  ASSERT_TRUE(d.ok());
  Result<Partition> p = PartitionBySubjects(*d, {"a", "b", "nobody"});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->forget, (std::vector<int64_t>{0, 1, 4}));
  EXPECT_EQ(p->retain, (std::vector<int64_t>{2}));
  EXPECT_EQ(p->test, (std::vector<int64_t>{3}));
  EXPECT_EQ(PartitionBySubjects(*d, {"nobody"}).status().code(),
            Code::kNotFound);
}

// The sandbox's encoding: every field back, tensors equal, and nothing
// malformed decodes (issue 17).
TEST(DatasetWireTest, RoundTripsAndRejectsMalformedBytes) {
  testing::SubsetOptions o;
  o.train = 300;
  o.test = 100;
  for (bool pool : {false, true}) {  // uint8 [1,28,28], float32 [196]
    o.pool2 = pool;
    const Dataset d = testing::FashionSubset(o);
    const std::string bytes = EncodeDataset(d);
    Result<Dataset> back = DecodeDataset(bytes);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(back->spec().ToString(), d.spec().ToString());
    EXPECT_TRUE(at::equal(back->features(), d.features()));
    EXPECT_TRUE(at::equal(back->labels(), d.labels()));
    EXPECT_EQ(back->splits(), d.splits());
    EXPECT_EQ(back->record_ids(), d.record_ids());
    EXPECT_EQ(back->subject_index(), d.subject_index());
    EXPECT_EQ(back->subjects(), d.subjects());
    if (!pool) {  // one byte a feature
      EXPECT_LT(bytes.size(), static_cast<size_t>(400 * (784 + 40) + 4096));
      EXPECT_EQ(back->features().scalar_type(), at::kByte);
    }
    for (size_t cut : {size_t{0}, size_t{10}, size_t{40}, bytes.size() / 2,
                       bytes.size() - 1}) {
      EXPECT_EQ(DecodeDataset(bytes.substr(0, cut)).status().code(),
                Code::kInvalidArgument)
          << cut;
    }
    EXPECT_EQ(DecodeDataset(bytes + "x").status().code(),
              Code::kInvalidArgument);
  }
}

// The worker's path: records encoded one at a time as storage streams them,
// the header after, decoded from a stream a few bytes a read; the same
// dataset as EncodeDataset's (issue 19).
TEST(DatasetWireTest, StreamingEncoderAndDecoderAgreeWithTheWholeEncoding) {
  testing::SubsetOptions o;
  o.train = 200;
  o.test = 50;
  const Dataset d = testing::FashionSubset(o);
  DatasetEncoder enc(d.spec());
  std::string records;
  const at::Tensor x = d.features().contiguous();
  const auto* base = static_cast<const char*>(x.data_ptr());
  const size_t row = d.spec().RowBytes();
  for (int64_t i = 0; i < d.size(); ++i) {
    ASSERT_TRUE(enc.AddRecord(d.record_ids()[i],
                              d.subjects()[d.subject_index()[i]],
                              d.labels()[i].item<int64_t>(), d.splits()[i],
                              std::string_view(base + i * row, row), records)
                    .ok());
  }
  EXPECT_EQ(records.size(), static_cast<size_t>(d.size()) * enc.RecordBytes());
  const std::string whole = enc.Header() + records;
  EXPECT_EQ(whole, EncodeDataset(d));
  // Seven bytes a read: every boundary falls inside some field.
  size_t at = 0;
  Result<Dataset> back = DecodeDataset([&](char* buf, size_t max) {
    const size_t n = std::min({max, size_t{7}, whole.size() - at});
    std::memcpy(buf, whole.data() + at, n);
    at += n;
    return Result<size_t>(n);
  });
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(at::equal(back->features(), d.features()));
  EXPECT_EQ(back->record_ids(), d.record_ids());
  // A read error is the decode's error.
  Result<Dataset> failed = DecodeDataset([](char*, size_t) {
    return Result<size_t>(Status(Code::kInternal, "disk gone"));
  });
  EXPECT_EQ(failed.status().code(), Code::kInternal);
  EXPECT_EQ(failed.status().message(), "disk gone");
  // The encoder rejects what the builder would.
  std::string ignored;
  EXPECT_EQ(
      enc.AddRecord(1, "", 0, Split::kTrain, std::string(row, '\0'), ignored)
          .code(),
      Code::kInvalidArgument);
  EXPECT_EQ(
      enc.AddRecord(1, "s", 10, Split::kTrain, std::string(row, '\0'), ignored)
          .code(),
      Code::kInvalidArgument);
  EXPECT_TRUE(ignored.empty());
}

// A header that claims more records than its input holds allocates
// nothing and fails.
TEST(DatasetWireTest, AFalseRecordCountIsRejectedBeforeAllocating) {
  DatasetEncoder enc(Spec({4}, FeatureType::kUint8, 2));
  std::string records;
  ASSERT_TRUE(enc.AddRecord(1, "s", 0, Split::kTrain, "abcd", records).ok());
  std::string header = enc.Header();
  // The count is the header's last 8 bytes.
  header[header.size() - 1] = 0x10;
  Result<Dataset> d = DecodeDataset(header + records);
  EXPECT_EQ(d.status().code(), Code::kInvalidArgument);
  EXPECT_NE(d.status().message().find("larger than the input"),
            std::string::npos);
}

// Ids need not be ascending; duplicates are still found when they are not.
TEST(DatasetBuilderTest, FindsDuplicateIdsInAnyOrder) {
  DatasetBuilder b(Spec({1}, FeatureType::kUint8, 2));
  for (int64_t id : {5, 9, 2, 7}) {
    ASSERT_TRUE(b.Add(id, "s", 0, Split::kTrain, "x").ok()) << id;
  }
  EXPECT_EQ(b.Add(9, "s", 0, Split::kTrain, "x").code(),
            Code::kInvalidArgument);
  EXPECT_EQ(b.Add(2, "s", 0, Split::kTrain, "x").code(),
            Code::kInvalidArgument);
  ASSERT_TRUE(b.Reserve(100).ok());
  ASSERT_TRUE(b.Add(11, "s", 0, Split::kTrain, "x").ok());
  // Uint8 values must be whole bytes.
  const float half[1] = {12.5f};
  EXPECT_EQ(b.AddValues(12, "s", 0, Split::kTrain, half).code(),
            Code::kInvalidArgument);
  EXPECT_EQ(b.size(), 5);
}

}  // namespace
}  // namespace lethe::core
