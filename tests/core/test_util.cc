#include "test_util.h"

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "lethe/core/dataset_io.h"

namespace lethe::core::testing {

std::string FashionDir() { return LETHE_FASHION_MNIST_DIR; }

namespace {

IdxArray MustRead(const std::string& name) {
  Result<IdxArray> r = ReadIdx(FashionDir() + "/" + name);
  if (!r.ok()) {
    std::cerr << "Fashion-MNIST missing: " << r.status().ToString() << "\n";
    std::abort();
  }
  return std::move(r).value();
}

void AddSplit(DatasetBuilder& b, const SubsetOptions& o, const char* prefix,
              int64_t count, Split split, int64_t& next_id) {
  bool train = split == Split::kTrain;
  IdxArray images = MustRead(train ? "train-images-idx3-ubyte.gz"
                                   : "t10k-images-idx3-ubyte.gz");
  IdxArray labels = MustRead(train ? "train-labels-idx1-ubyte.gz"
                                   : "t10k-labels-idx1-ubyte.gz");
  std::vector<float> values(o.pool2 ? 196 : 784);
  for (int64_t i = 0; i < count; ++i) {
    std::string key = prefix + std::to_string(i / o.block);
    int64_t id = next_id++;
    if (train && o.excluded.count(key)) continue;
    const uint8_t* px = images.data.data() + i * 784;
    if (o.pool2) {
      for (int r = 0; r < 14; ++r) {
        for (int c = 0; c < 14; ++c) {
          int s = px[2 * r * 28 + 2 * c] + px[2 * r * 28 + 2 * c + 1] +
                  px[(2 * r + 1) * 28 + 2 * c] +
                  px[(2 * r + 1) * 28 + 2 * c + 1];
          values[r * 14 + c] = static_cast<float>(s) / (4 * 255.0f);
        }
      }
    } else {
      for (int j = 0; j < 784; ++j) values[j] = px[j];
    }
    int64_t label = labels.data[i];
    if (train && o.poisoned.count(key)) label = (label + 1) % 10;
    Status st = b.AddValues(id, key, label, split, values);
    if (!st.ok()) {
      std::cerr << st.ToString() << "\n";
      std::abort();
    }
  }
}

}  // namespace

Dataset FashionSubset(const SubsetOptions& o) {
  FeatureSpec spec;
  spec.num_classes = 10;
  if (o.pool2) {
    spec.shape = {196};
    spec.type = FeatureType::kFloat32;
  } else {
    spec.shape = {1, 28, 28};
    spec.type = FeatureType::kUint8;
  }
  DatasetBuilder b(spec);
  int64_t next_id = 0;
  AddSplit(b, o, "train-", o.train, Split::kTrain, next_id);
  next_id = 1000000;
  AddSplit(b, o, "test-", o.test, Split::kTest, next_id);
  Result<Dataset> d = std::move(b).Build();
  if (!d.ok()) std::abort();
  return *d;
}

std::vector<std::string> TrainSubjects(int first, int count) {
  std::vector<std::string> out;
  for (int i = first; i < first + count; ++i) {
    out.push_back("train-" + std::to_string(i));
  }
  return out;
}

Architecture SmallMlp(std::vector<int64_t> input_shape,
                      std::vector<int64_t> hidden) {
  Architecture a;
  a.kind = ArchKind::kMlp;
  a.input_shape = std::move(input_shape);
  a.num_classes = 10;
  a.hidden = std::move(hidden);
  return a;
}

Recipe QuickRecipe(int epochs, uint64_t seed) {
  Recipe r;
  r.epochs = epochs;
  r.batch_size = 64;
  r.lr = 0.05;
  r.seed = seed;
  return r;
}

std::string TempDir() {
  static const std::string dir = [] {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "lethe-core-test-XXXXXX")
            .string();
    std::string made = mkdtemp(tmpl.data());
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(TempDir(), ec);
    });
    return made;
  }();
  return dir;
}

}  // namespace lethe::core::testing
