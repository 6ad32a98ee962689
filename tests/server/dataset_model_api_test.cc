// DatasetService and ModelRegistry against a real server and PostgreSQL,
// with real Fashion-MNIST files.
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "storage/hash.h"
#include "tests/server/test_server.h"

namespace lethe::testing {
namespace {

using storage::Role;

constexpr char kFashion[] = "/usr/share/datasets/fashion-mnist/";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

class DatasetModelApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ts_ = TestServer::Start();
    ASSERT_NE(ts_, nullptr);
  }

  // Streams parts (part, bytes) after a header; chunked at 1 MiB.
  grpc::Status Upload(
      const v1::UploadHeader& header,
      const std::vector<std::pair<v1::UploadPart, std::string>>& parts,
      v1::UploadRecordsResponse* resp) {
    auto ctx = ts_->Ctx(Role::kOperator);
    auto writer = ts_->datasets().UploadRecords(ctx.get(), resp);
    v1::UploadRecordsRequest msg;
    *msg.mutable_header() = header;
    writer->Write(msg);
    for (const auto& [part, bytes] : parts) {
      for (size_t off = 0; off < bytes.size(); off += 1 << 20) {
        msg.Clear();
        msg.mutable_chunk()->set_part(part);
        msg.mutable_chunk()->set_data(bytes.substr(off, 1 << 20));
        if (!writer->Write(msg)) break;
      }
    }
    writer->WritesDone();
    return writer->Finish();
  }

  std::string Records() {
    return QueryScalar(ts_->database_url(), "SELECT count(*) FROM records");
  }

  std::unique_ptr<TestServer> ts_;
};

TEST_F(DatasetModelApiTest, CsvUploadStoresRecordsKeyedBySubject) {
  const std::string id = CreateDatasetWithRows(
      *ts_, "csv",
      "s1,0,train,1,2,3,4\ns2,1,train,5,6,7,8\ns1,2,test,0,0,0,0\n");
  v1::GetDatasetRequest get;
  get.set_id(id);
  v1::Dataset d;
  ASSERT_TRUE(
      ts_->datasets().GetDataset(ts_->Ctx(Role::kAuditor).get(), get, &d).ok());
  EXPECT_EQ(d.train_records(), 2);
  EXPECT_EQ(d.test_records(), 1);
  EXPECT_EQ(d.subjects(), 2);
  // Features are stored as float32 little-endian.
  EXPECT_EQ(QueryScalar(ts_->database_url(),
                        "SELECT length(features) FROM records LIMIT 1"),
            "16");
}

TEST_F(DatasetModelApiTest, MalformedCsvIsRejectedWholeAndNamesTheLine) {
  const std::string id = CreateDatasetWithRows(*ts_, "bad", "");
  v1::UploadHeader header;
  header.set_dataset_id(id);
  header.set_format(v1::UPLOAD_FORMAT_CSV);
  v1::UploadRecordsResponse resp;
  auto st = Upload(header,
                   {{v1::UPLOAD_PART_CSV,
                     "subject_id,label,split,f0,f1,f2,f3\n"
                     "s1,0,train,1,2,3,4\n"
                     "s2,7,train,1,2,3,4\n"}},
                   &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("line 3"), std::string::npos)
      << st.error_message();
  EXPECT_EQ(Records(), "0");
}

TEST_F(DatasetModelApiTest, UploadProtocolErrors) {
  const std::string id = CreateDatasetWithRows(*ts_, "proto", "");
  v1::UploadRecordsResponse resp;
  v1::UploadHeader header;
  header.set_dataset_id(id);
  header.set_format(v1::UPLOAD_FORMAT_CSV);
  // An IDX part in a CSV upload.
  EXPECT_EQ(
      Upload(header, {{v1::UPLOAD_PART_IDX_IMAGES, "x"}}, &resp).error_code(),
      grpc::StatusCode::INVALID_ARGUMENT);
  // IDX without a split.
  header.set_format(v1::UPLOAD_FORMAT_IDX);
  EXPECT_EQ(Upload(header, {}, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // Unknown dataset.
  header.set_dataset_id("00000000-0000-4000-8000-000000000000");
  header.set_format(v1::UPLOAD_FORMAT_CSV);
  EXPECT_EQ(Upload(header,
                   {{v1::UPLOAD_PART_CSV,
                     "subject_id,label,split,f0,f1,f2,f3\n"
                     "a,0,train,1,1,1,1\n"}},
                   &resp)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
  // A chunk over 4 MiB.
  header.set_dataset_id(id);
  auto ctx = ts_->Ctx(Role::kOperator);
  auto writer = ts_->datasets().UploadRecords(ctx.get(), &resp);
  v1::UploadRecordsRequest msg;
  *msg.mutable_header() = header;
  writer->Write(msg);
  msg.Clear();
  msg.mutable_chunk()->set_part(v1::UPLOAD_PART_CSV);
  msg.mutable_chunk()->set_data(std::string((4 << 20) + 1, 'a'));
  writer->Write(msg);
  writer->WritesDone();
  EXPECT_EQ(writer->Finish().error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(Records(), "0");
}

TEST_F(DatasetModelApiTest, CreateDatasetValidation) {
  v1::Dataset d;
  auto create = [&](auto mutate) {
    v1::CreateDatasetRequest req;
    req.set_name("ok");
    req.add_feature_shape(784);
    req.set_feature_type(v1::FEATURE_TYPE_UINT8);
    req.set_num_classes(10);
    mutate(req);
    return ts_->datasets()
        .CreateDataset(ts_->Ctx(Role::kOperator).get(), req, &d)
        .error_code();
  };
  using R = v1::CreateDatasetRequest;
  EXPECT_EQ(create([](R& r) { r.set_name("has space"); }),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(create([](R& r) { r.clear_feature_shape(); }),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(create([](R& r) { r.set_feature_shape(0, 0); }),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(create([](R& r) { r.set_num_classes(1); }),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(
      create([](R& r) { r.set_feature_type(v1::FEATURE_TYPE_UNSPECIFIED); }),
      grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(QueryScalar(ts_->database_url(), "SELECT count(*) FROM datasets"),
            "0");
  EXPECT_EQ(create([](R&) {}), grpc::StatusCode::OK);
  EXPECT_EQ(create([](R&) {}), grpc::StatusCode::ALREADY_EXISTS);
}

TEST_F(DatasetModelApiTest, FashionMnistIdxUploadWithSubjects) {
  v1::CreateDatasetRequest req;
  req.set_name("fashion-mnist");
  req.add_feature_shape(1);
  req.add_feature_shape(28);
  req.add_feature_shape(28);
  req.set_feature_type(v1::FEATURE_TYPE_UINT8);
  req.set_num_classes(10);
  v1::Dataset d;
  ASSERT_TRUE(ts_->datasets()
                  .CreateDataset(ts_->Ctx(Role::kOperator).get(), req, &d)
                  .ok());
  // The 10,000 test images (gzip, as Debian ships them), 100 subjects of
  // 100 records each.
  std::string subjects;
  for (int i = 0; i < 10000; ++i)
    absl::StrAppend(&subjects, "person-", i / 100, "\n");
  v1::UploadHeader header;
  header.set_dataset_id(d.id());
  header.set_format(v1::UPLOAD_FORMAT_IDX);
  header.set_idx_split(v1::SPLIT_TEST);
  v1::UploadRecordsResponse resp;
  auto st =
      Upload(header,
             {{v1::UPLOAD_PART_IDX_IMAGES,
               ReadAll(absl::StrCat(kFashion, "t10k-images-idx3-ubyte.gz"))},
              {v1::UPLOAD_PART_IDX_LABELS,
               ReadAll(absl::StrCat(kFashion, "t10k-labels-idx1-ubyte.gz"))},
              {v1::UPLOAD_PART_SUBJECTS, subjects}},
             &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.records_added(), 10000);
  EXPECT_EQ(resp.new_subjects(), 100);
  EXPECT_EQ(resp.dataset().test_records(), 10000);
  EXPECT_EQ(QueryScalar(ts_->database_url(),
                        "SELECT length(features) FROM records LIMIT 1"),
            "784");
  // The first test image of Fashion-MNIST is an ankle boot (label 9).
  EXPECT_EQ(QueryScalar(ts_->database_url(),
                        "SELECT label FROM records ORDER BY id LIMIT 1"),
            "9");

  // A subjects file one line short is rejected whole.
  subjects.resize(subjects.rfind("person", subjects.size() - 2));
  st = Upload(header,
              {{v1::UPLOAD_PART_IDX_IMAGES,
                ReadAll(absl::StrCat(kFashion, "t10k-images-idx3-ubyte.gz"))},
               {v1::UPLOAD_PART_IDX_LABELS,
                ReadAll(absl::StrCat(kFashion, "t10k-labels-idx1-ubyte.gz"))},
               {v1::UPLOAD_PART_SUBJECTS, subjects}},
              &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Records(), "10000");
}

TEST_F(DatasetModelApiTest, RegisterDownloadRoundTripAndChecksum) {
  const std::string dataset =
      CreateDatasetWithRows(*ts_, "m", "a,0,train,1,1,1,1\n");
  std::string artifact(3 << 20, '\0');
  for (size_t i = 0; i < artifact.size(); ++i)
    artifact[i] = static_cast<char>(i * 31);
  auto reg = [&](const std::string& name, const std::string& sha,
                 v1::Model* model) {
    auto ctx = ts_->Ctx(Role::kOperator);
    auto writer = ts_->models().RegisterModel(ctx.get(), model);
    v1::RegisterModelRequest msg;
    *msg.mutable_metadata() = TorchScriptMetadata(name, dataset, sha);
    writer->Write(msg);
    for (size_t off = 0; off < artifact.size(); off += 1 << 20) {
      msg.Clear();
      msg.set_artifact_chunk(artifact.substr(off, 1 << 20));
      writer->Write(msg);
    }
    writer->WritesDone();
    return writer->Finish();
  };
  v1::Model model;
  EXPECT_EQ(reg("wrong-sha", std::string(64, 'a'), &model).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(QueryScalar(ts_->database_url(), "SELECT count(*) FROM models"),
            "0");
  const std::string sha = storage::ToHex(storage::Sha256(artifact));
  ASSERT_TRUE(reg("good", sha, &model).ok());
  EXPECT_EQ(model.state(), v1::MODEL_STATE_PENDING_VALIDATION);
  EXPECT_EQ(model.latest_version(), 1);
  EXPECT_EQ(reg("good", sha, &model).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);

  v1::DownloadModelVersionRequest dl;
  dl.set_model_id(model.id());
  auto ctx = ts_->Ctx(Role::kAuditor);
  auto reader = ts_->models().DownloadModelVersion(ctx.get(), dl);
  v1::DownloadModelVersionResponse msg;
  ASSERT_TRUE(reader->Read(&msg));
  ASSERT_TRUE(msg.has_version());
  EXPECT_EQ(msg.version().artifact_sha256(), sha);
  EXPECT_EQ(msg.version().produced_by(), "registered");
  std::string got;
  while (reader->Read(&msg)) got += msg.chunk();
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(got, artifact);

  dl.set_version(2);
  auto ctx2 = ts_->Ctx(Role::kAuditor);
  auto missing = ts_->models().DownloadModelVersion(ctx2.get(), dl);
  EXPECT_FALSE(missing->Read(&msg));
  EXPECT_EQ(missing->Finish().error_code(), grpc::StatusCode::NOT_FOUND);

  v1::ListModelVersionsRequest lv;
  lv.set_model_id(model.id());
  v1::ListModelVersionsResponse versions;
  ASSERT_TRUE(
      ts_->models()
          .ListModelVersions(ts_->Ctx(Role::kOperator).get(), lv, &versions)
          .ok());
  ASSERT_EQ(versions.versions_size(), 1);
  EXPECT_EQ(versions.versions(0).size_bytes(),
            static_cast<int64_t>(artifact.size()));
}

TEST_F(DatasetModelApiTest, RegisterValidationErrors) {
  const std::string dataset = CreateDatasetWithRows(*ts_, "v", "");
  auto reg = [&](auto mutate, bool with_artifact) {
    auto ctx = ts_->Ctx(Role::kOperator);
    v1::Model model;
    auto writer = ts_->models().RegisterModel(ctx.get(), &model);
    v1::RegisterModelRequest msg;
    auto* md = msg.mutable_metadata();
    md->set_name("m");
    md->set_dataset_id(dataset);
    md->mutable_architecture()->set_kind(v1::Architecture::KIND_MLP);
    md->mutable_architecture()->add_hidden_units(16);
    md->mutable_recipe()->set_optimizer(v1::OPTIMIZER_SGD_MOMENTUM);
    md->mutable_recipe()->set_learning_rate(0.05);
    md->mutable_recipe()->set_epochs(3);
    md->mutable_recipe()->set_batch_size(64);
    mutate(*md);
    writer->Write(msg);
    if (with_artifact) {
      msg.Clear();
      msg.set_artifact_chunk("bytes");
      writer->Write(msg);
    }
    writer->WritesDone();
    return writer->Finish().error_code();
  };
  using M = v1::ModelMetadata;
  const auto kInvalid = grpc::StatusCode::INVALID_ARGUMENT;
  EXPECT_EQ(reg([](M& m) { m.clear_recipe(); }, false), kInvalid);
  EXPECT_EQ(reg([](M& m) { m.mutable_recipe()->set_learning_rate(0); }, false),
            kInvalid);
  EXPECT_EQ(reg([](M& m) { m.mutable_recipe()->set_epochs(0); }, false),
            kInvalid);
  EXPECT_EQ(
      reg([](M& m) { m.mutable_architecture()->clear_hidden_units(); }, false),
      kInvalid);
  EXPECT_EQ(reg(
                [](M& m) {
                  m.mutable_architecture()->set_kind(
                      v1::Architecture::KIND_TORCHSCRIPT);
                },
                false),
            kInvalid);
  EXPECT_EQ(reg(
                [](M& m) {
                  m.mutable_policy()->add_methods(v1::UNLEARNING_METHOD_SISA);
                },
                false),
            kInvalid);
  EXPECT_EQ(reg([](M& m) { m.mutable_policy()->mutable_sisa()->set_shards(8); },
                false),
            kInvalid);  // slices missing
  EXPECT_EQ(reg(
                [](M& m) {
                  m.mutable_policy()->mutable_sisa()->set_shards(8);
                  m.mutable_policy()->mutable_sisa()->set_slices(4);
                },
                true),
            kInvalid);  // SISA with an artifact
  EXPECT_EQ(reg([](M& m) { m.mutable_policy()->set_max_mia_auc(0.2); }, false),
            kInvalid);
  EXPECT_EQ(
      reg([](M& m) { m.mutable_policy()->set_max_cost_fraction(-1); }, false),
      kInvalid);
  // The calibrated gate and every approximate method's settings (issue 16).
  EXPECT_EQ(
      reg([](M& m) { m.mutable_policy()->set_gate_significance(0.6); }, false),
      kInvalid);
  EXPECT_EQ(
      reg([](M& m) { m.mutable_policy()->set_adaptive_budget_fraction(11); },
          false),
      kInvalid);
  EXPECT_EQ(
      reg([](M& m) { m.mutable_policy()->set_gate_neighbours(1001); }, false),
      kInvalid);
  EXPECT_EQ(
      reg([](M& m) { m.mutable_policy()->set_gate_neighbours(1); }, false),
      kInvalid);
  EXPECT_EQ(
      reg([](M& m) { m.mutable_policy()->mutable_neggrad_plus()->set_beta(1); },
          false),
      kInvalid);
  EXPECT_EQ(
      reg([](M& m) { m.mutable_policy()->mutable_scrub()->set_epochs(-1); },
          false),
      kInvalid);
  EXPECT_EQ(
      reg(
          [](M& m) {
            m.mutable_policy()->mutable_random_label()->set_learning_rate(11);
          },
          false),
      kInvalid);
  EXPECT_EQ(
      reg(
          [](M& m) {
            m.mutable_policy()->mutable_salun()->set_salient_fraction(1.5);
          },
          false),
      kInvalid);
  EXPECT_EQ(reg(
                [](M& m) {
                  m.mutable_architecture()->set_kind(
                      v1::Architecture::KIND_RF_LOGISTIC_REGRESSION);
                  m.mutable_architecture()->add_hidden_units(8);  // two entries
                },
                false),
            kInvalid);
  EXPECT_EQ(reg(
                [](M& m) {
                  m.mutable_policy()->mutable_newton()->set_epsilon(1);
                  m.mutable_policy()->mutable_newton()->set_delta(1e-4);
                  m.mutable_policy()->mutable_newton()->set_l2(1e-3);
                  m.mutable_policy()->mutable_newton()->set_sigma(-1);
                },
                false),
            kInvalid);
  EXPECT_EQ(reg(
                [](M& m) {
                  m.mutable_policy()->set_device(
                      static_cast<v1::DeviceRequirement>(7));
                },
                false),
            kInvalid);  // no worker would ever claim it
  EXPECT_EQ(
      reg(
          [](M& m) {
            m.mutable_policy()->mutable_finetune()->set_warmup_fraction(1);
          },
          false),
      kInvalid);
  EXPECT_EQ(reg(
                [](M& m) {
                  m.mutable_policy()->mutable_finetune()->set_max_grad_norm(-1);
                },
                false),
            kInvalid);
  EXPECT_EQ(
      reg([](M& m) { m.mutable_policy()->mutable_finetune()->set_epochs(-1); },
          false),
      kInvalid);
  EXPECT_EQ(reg(
                [](M& m) {
                  m.mutable_policy()->mutable_head_refit()->set_batch_size(-1);
                },
                false),
            kInvalid);
  EXPECT_EQ(
      reg(
          [](M& m) {
            m.mutable_policy()->mutable_head_refit()->set_learning_rate(11);
          },
          false),
      kInvalid);
  EXPECT_EQ(reg([](M& m) { m.set_dataset_id("x"); }, false), kInvalid);
  EXPECT_EQ(reg(
                [](M& m) {
                  m.set_dataset_id("00000000-0000-4000-8000-000000000000");
                },
                false),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(QueryScalar(ts_->database_url(), "SELECT count(*) FROM models"),
            "0");
  EXPECT_EQ(
      reg(
          [](M& m) {
            v1::FinetuneConfig* f = m.mutable_policy()->mutable_finetune();
            f->set_epochs(5);
            f->set_learning_rate(0.4);
            f->set_max_grad_norm(1);
            v1::HeadRefitConfig* h = m.mutable_policy()->mutable_head_refit();
            h->set_epochs(10);
            h->set_learning_rate(0.8);
            h->set_batch_size(256);
          },
          false),
      grpc::StatusCode::OK);
  v1::ListModelsRequest list;
  list.set_dataset_id(dataset);
  v1::ListModelsResponse models;
  ASSERT_TRUE(ts_->models()
                  .ListModels(ts_->Ctx(Role::kOperator).get(), list, &models)
                  .ok());
  ASSERT_EQ(models.models_size(), 1);
  // The method settings are stored with the model and read back.
  EXPECT_EQ(models.models(0).policy().finetune().max_grad_norm(), 1);
  EXPECT_EQ(models.models(0).policy().head_refit().batch_size(), 256);
  EXPECT_EQ(models.models(0).state(), v1::MODEL_STATE_TRAINING);
  EXPECT_EQ(models.models(0).recipe().epochs(), 3);
}

}  // namespace
}  // namespace lethe::testing
