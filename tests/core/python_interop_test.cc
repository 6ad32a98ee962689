// Models cross the PyTorch boundary both ways: a model scripted by Debian's
// python3-torch is trained, unlearned and saved by lethe, then loaded back
// in Python, which must measure the accuracy lethe reported. The SISA
// ensemble lethe exports must load in Python too.
#include <ATen/ATen.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "lethe/core/engine.h"
#include "lethe/core/model.h"
#include "lethe/core/sisa.h"
#include "test_util.h"

namespace lethe::core {
namespace {

const char kExport[] = R"(
import sys, torch
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(784, 64)
        self.fc2 = torch.nn.Linear(64, 10)
    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))
torch.manual_seed(0)
torch.jit.script(Net()).save(sys.argv[1])
)";

const char kEvaluate[] = R"(
import sys, torch
m = torch.jit.load(sys.argv[1])
n = int(sys.argv[4])
x = torch.from_file(sys.argv[2], size=n * 784, dtype=torch.float32)
y = torch.from_file(sys.argv[3], size=n, dtype=torch.int64)
with torch.no_grad():
    out = m(x.view(n, 1, 28, 28))
print("%.10f" % (out.argmax(1) == y).double().mean().item())
)";

std::string RunPython(const std::string& script, const std::string& args) {
  std::string path = testing::TempDir() + "/script.py";
  std::ofstream(path) << script;
  // Appended, not `+`-chained: GCC 12 reports a false -Warray-bounds on
  // the chain of temporaries once LibTorch's headers are precompiled.
  std::string cmd = LETHE_TORCH_PYTHON;
  cmd.append(" ").append(path).append(" ").append(args).append(" 2>&1");
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return "popen failed";
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int rc = pclose(p);
  return rc == 0 ? out : "exit " + std::to_string(rc) + ": " + out;
}

void WriteFile(const std::string& path, const void* data, size_t n) {
  std::ofstream(path, std::ios::binary)
      .write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
}

// Test split written raw for Python; returns its size.
int64_t WriteTestSplit(const Dataset& d) {
  std::vector<int64_t> test = IndicesOfSplit(d, Split::kTest);
  at::Tensor rows = at::tensor(test, at::kLong);
  at::Tensor x = AsModelInput(d.features().index_select(0, rows)).contiguous();
  at::Tensor y = d.labels().index_select(0, rows).contiguous();
  WriteFile(testing::TempDir() + "/x.bin", x.data_ptr(), x.nbytes());
  WriteFile(testing::TempDir() + "/y.bin", y.data_ptr(), y.nbytes());
  return static_cast<int64_t>(test.size());
}

double PythonAccuracy(const std::string& model_path, int64_t n) {
  std::string dir = testing::TempDir();
  std::string out =
      RunPython(kEvaluate, model_path + " " + dir + "/x.bin " + dir +
                               "/y.bin " + std::to_string(n));
  EXPECT_EQ(out.find("exit"), std::string::npos) << out;
  return std::atof(out.c_str());
}

TEST(PythonInteropTest, PythonModelIsUnlearnedAndLoadsBackInPython) {
  std::string exported = testing::TempDir() + "/user.pt";
  std::string out = RunPython(kExport, exported);
  ASSERT_TRUE(out.empty()) << out;
  std::ifstream in(exported, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});

  testing::SubsetOptions o;
  o.train = 1000;
  o.test = 500;
  Dataset d = testing::FashionSubset(o);
  // The owner's training, as a registered model would have had it.
  Result<torch::jit::Module> m = LoadModel(bytes);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  DeviceData dev = *ToDevice(d, Device{});
  Recipe recipe = testing::QuickRecipe(5);
  ASSERT_TRUE(
      TrainModel(*m, dev, IndicesOfSplit(d, Split::kTrain), recipe).ok());
  std::string trained = *SaveModel(*m);

  UnlearnRequest req;
  req.model_bytes = trained;
  req.dataset = &d;
  req.forget_subjects = testing::TrainSubjects(0, 5);
  req.recipe = recipe;
  req.policy.chain = {Method::kFinetune, Method::kRetrain};
  req.policy.gate_alpha =
      0;  // the interoperability is under test, not the gate
  req.policy.adaptive_budget = 0;
  req.policy.max_test_acc_drop = 5;
  req.policy.max_cost_fraction = 100;  // finetune's 5 epochs = this recipe's
  Result<UnlearnOutcome> r = Engine(EngineOptions{}).Unlearn(req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->report.ok) << ReportToJson(r->report);
  EXPECT_EQ(r->report.method, "finetune");
  EXPECT_GT(r->report.after.ta, 0.7);

  std::string unlearned = testing::TempDir() + "/unlearned.pt";
  WriteFile(unlearned, r->model_bytes.data(), r->model_bytes.size());
  int64_t n = WriteTestSplit(d);
  // Python scores the whole test split; the report divides it into its test
  // side (ta) and its validation side (va).
  const Report& rep = r->report;
  const double whole =
      (rep.after.ta * static_cast<double>(rep.test_records) +
       rep.after.va * static_cast<double>(rep.validation_records)) /
      static_cast<double>(rep.test_records + rep.validation_records);
  EXPECT_EQ(rep.test_records + rep.validation_records, n);
  EXPECT_NEAR(PythonAccuracy(unlearned, n), whole, 0.003);
}

TEST(PythonInteropTest, SisaEnsembleLoadsInPython) {
  testing::SubsetOptions o;
  o.train = 600;
  o.test = 300;
  Dataset d = testing::FashionSubset(o);
  SisaParams sisa;
  sisa.shards = 3;
  sisa.slices = 2;
  Result<TrainedModel> t = Engine(EngineOptions{})
                               .TrainSisa(testing::SmallMlp({1, 28, 28}, {16}),
                                          testing::QuickRecipe(8), sisa, d);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  std::string path = testing::TempDir() + "/sisa.pt";
  WriteFile(path, t->model_bytes.data(), t->model_bytes.size());
  int64_t n = WriteTestSplit(d);
  EXPECT_NEAR(PythonAccuracy(path, n), t->test_accuracy, 0.004);
  EXPECT_GT(t->test_accuracy, 0.5);
}

const char kCompare[] = R"(
import sys, torch
n = int(sys.argv[1])
x = torch.from_file(sys.argv[2], size=n * 784, dtype=torch.float32).view(n, 1, 28, 28)
for name in sys.argv[3:]:
    m = torch.jit.load(name + ".pt")
    want = torch.from_file(name + ".out", size=n * 10, dtype=torch.float32).view(n, 10)
    with torch.no_grad():
        print("%.3g" % (m(x) - want).abs().max().item())
)";

TEST(PythonInteropTest, BuiltInArchitecturesLoadInPython) {
  const int64_t n = 4;
  at::Tensor x = at::rand({n, 1, 28, 28});
  std::string dir = testing::TempDir();
  WriteFile(dir + "/in.bin", x.data_ptr(), x.nbytes());
  std::string names;
  for (ArchKind kind : {ArchKind::kLogReg, ArchKind::kMlp, ArchKind::kCnn}) {
    Architecture a = testing::SmallMlp();
    a.kind = kind;
    torch::jit::Module m = *BuildModel(a, 1);
    std::string base = dir + "/" + ArchKindName(kind);
    std::string bytes = *SaveModel(m);
    WriteFile(base + ".pt", bytes.data(), bytes.size());
    at::Tensor out = Forward(m, x).contiguous();
    WriteFile(base + ".out", out.data_ptr(), out.nbytes());
    names += " " + base;
  }
  std::string out =
      RunPython(kCompare, std::to_string(n) + " " + dir + "/in.bin" + names);
  ASSERT_EQ(out.find("exit"), std::string::npos) << out;
  // One line per architecture: the largest |python - lethe| output.
  std::istringstream lines(out);
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    EXPECT_LT(std::atof(line.c_str()), 1e-5) << line;
    ++count;
  }
  EXPECT_EQ(count, 3) << out;
}

}  // namespace
}  // namespace lethe::core
