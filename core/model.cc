#include "lethe/core/model.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/serialization/import.h>

#include <cmath>
#include <set>
#include <sstream>

#include <caffe2/serialize/in_memory_adapter.h>
#include <caffe2/serialize/inline_container.h>

#include "guard.h"

namespace lethe::core {
namespace internal {

std::string ShortError(const std::exception& e) {
  const auto* c10e = dynamic_cast<const c10::Error*>(&e);
  std::string s = c10e ? c10e->what_without_backtrace() : e.what();
  // TorchScript errors carry a source excerpt after the first lines.
  size_t cut = s.find("\nException raised from");
  if (cut != std::string::npos) s.resize(cut);
  if (s.size() > 400) s = s.substr(0, 400) + "...";
  return s;
}

}  // namespace internal

namespace {

using internal::Guarded;

at::Tensor Uniform(std::vector<int64_t> shape, double bound, at::Generator& g) {
  return at::empty(shape, at::kFloat).uniform_(-bound, bound, g);
}

void AddLinear(torch::jit::Module& m, const std::string& name, int64_t in,
               int64_t out, at::Generator& g) {
  double bound = 1.0 / std::sqrt(static_cast<double>(in));
  m.register_parameter(name + "_weight",
                       Uniform({out, in}, bound, g).requires_grad_(), false);
  m.register_parameter(name + "_bias",
                       Uniform({out}, bound, g).requires_grad_(), false);
}

void AddConv(torch::jit::Module& m, const std::string& name, int64_t in,
             int64_t out, at::Generator& g) {
  double bound = 1.0 / std::sqrt(static_cast<double>(in * 9));
  m.register_parameter(name + "_weight",
                       Uniform({out, in, 3, 3}, bound, g).requires_grad_(),
                       false);
  m.register_parameter(name + "_bias",
                       Uniform({out}, bound, g).requires_grad_(), false);
}

std::string LinearCall(const std::string& in, const std::string& name) {
  return "torch.linear(" + in + ", self." + name + "_weight, self." + name +
         "_bias)";
}

int64_t Product(const std::vector<int64_t>& v) {
  int64_t n = 1;
  for (int64_t d : v) n *= d;
  return n;
}

torch::jit::Module MakeMlp(const Architecture& a, at::Generator& g,
                           const std::vector<int64_t>& hidden,
                           const char* type_name) {
  torch::jit::Module m(type_name);
  int64_t in = Product(a.input_shape);
  std::vector<std::string> layers;
  for (size_t i = 0; i < hidden.size(); ++i) {
    layers.push_back("fc" + std::to_string(i));
    AddLinear(m, layers.back(), in, hidden[i], g);
    in = hidden[i];
  }
  AddLinear(m, "out", in, a.num_classes, g);
  if (layers.empty()) {
    m.define("def forward(self, x):\n    return " +
             LinearCall("torch.flatten(x, 1)", "out") + "\n");
    return m;
  }
  // The split at the first hidden layer (model.h: trunk and head): the input
  // layer holds most of the weights and the work.
  std::string src = "def trunk(self, x):\n    return torch.relu(" +
                    LinearCall("torch.flatten(x, 1)", layers[0]) + ")\n\n" +
                    "def head(self, h):\n";
  for (size_t i = 1; i < layers.size(); ++i) {
    src += "    h = torch.relu(" + LinearCall("h", layers[i]) + ")\n";
  }
  src += "    return " + LinearCall("h", "out") + "\n\n" +
         "def forward(self, x):\n    return self.head(self.trunk(x))\n";
  m.define(src);
  return m;
}

torch::jit::Module MakeCnn(const Architecture& a, at::Generator& g) {
  torch::jit::Module m("__torch__.lethe.SmallCnn");
  const int64_t c = a.input_shape[0], h = a.input_shape[1],
                w = a.input_shape[2];
  AddConv(m, "conv1", c, 16, g);
  AddConv(m, "conv2", 16, 32, g);
  AddLinear(m, "out", 32 * (h / 4) * (w / 4), a.num_classes, g);
  m.define(R"(
def trunk(self, x):
    h = torch.relu(torch.conv2d(x, self.conv1_weight, self.conv1_bias, [1, 1], [1, 1]))
    h = torch.max_pool2d(h, [2, 2])
    h = torch.relu(torch.conv2d(h, self.conv2_weight, self.conv2_bias, [1, 1], [1, 1]))
    return torch.flatten(torch.max_pool2d(h, [2, 2]), 1)

def head(self, h):
    return torch.linear(h, self.out_weight, self.out_bias)

def forward(self, x):
    return self.head(self.trunk(x))
)");
  return m;
}

// Random Fourier features (Rahimi & Recht): u = cos(P x + c), P ~ N(0, 16 /
// in) (a Gaussian kernel of bandwidth sqrt(in) / 4, suited to features in
// [0, 1]), c ~ U[0, 2 pi); rows scaled to unit norm, which keeps certified
// removal's bound small (newton.h). At comparable bounds these fitted
// Fashion-MNIST 12-27 points better than unit-norm ReLU features
// (docs/engine.md).
torch::jit::Module MakeRfLogReg(const Architecture& a, at::Generator& g) {
  torch::jit::Module m("__torch__.lethe.RfLogReg");
  const int64_t in = Product(a.input_shape), f = a.hidden[0];
  const double scale = 4.0 / std::sqrt(static_cast<double>(in));
  m.register_buffer("rf_proj",
                    at::empty({f, in}, at::kFloat).normal_(0, scale, g));
  m.register_buffer("rf_offset",
                    at::empty({f}, at::kFloat).uniform_(0, 2 * M_PI, g));
  // Drawn from the seed, never trained: declared free of training data.
  m.register_attribute(kDataFreeBuffersAttr, c10::ListType::ofStrings(),
                       c10::List<std::string>({"rf_proj", "rf_offset"}));
  AddLinear(m, "out", f, a.num_classes, g);
  m.define(R"(
def embed(self, x):
    u = torch.cos(torch.linear(torch.flatten(x, 1), self.rf_proj, self.rf_offset))
    return u / torch.sqrt(torch.sum(u * u, 1, True) + 1e-12)

def forward(self, x):
    return torch.linear(self.embed(x), self.out_weight, self.out_bias)
)");
  return m;
}

}  // namespace

Result<torch::jit::Module> BuildModel(const Architecture& arch, uint64_t seed) {
  LETHE_CORE_RETURN_IF_ERROR(arch.Validate());
  return Guarded("building model", [&]() -> Result<torch::jit::Module> {
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed);
    switch (arch.kind) {
      case ArchKind::kLogReg:
        return MakeMlp(arch, g, {}, "__torch__.lethe.LogReg");
      case ArchKind::kMlp:
        return MakeMlp(arch, g, arch.hidden, "__torch__.lethe.Mlp");
      case ArchKind::kCnn:
        return MakeCnn(arch, g);
      case ArchKind::kRfLogReg:
        return MakeRfLogReg(arch, g);
    }
    return InvalidArgumentError("unknown architecture");
  });
}

namespace {

// Ops that reach the file system: aten::from_file maps a file into a tensor,
// aten::save writes one. Nothing else LibTorch 1.13 registers for TorchScript
// takes a path, a socket or a command (its operator schemas, listed from
// libtorch_cpu.so: the ops with str arguments are string methods, formatting,
// interpolation modes and these two). A sandbox (issue 17) is the real
// boundary; this check refuses such models before any of their code runs.
constexpr const char* kBannedOps[] = {"aten::from_file", "aten::save"};

// Code in the archive calls no banned op: loading runs a module's
// __setstate__, so the source is checked before torch::jit::load.
Status CheckArchiveCode(std::string_view bytes) {
  caffe2::serialize::PyTorchStreamReader reader(
      std::make_shared<caffe2::serialize::MemoryReadAdapter>(
          bytes.data(), static_cast<off_t>(bytes.size())));
  for (const std::string& name : reader.getAllRecords()) {
    if (name.find("/code/") == std::string::npos || name.size() < 3 ||
        name.compare(name.size() - 3, 3, ".py") != 0) {
      continue;
    }
    auto [data, size] = reader.getRecord(name);
    const std::string_view code(static_cast<const char*>(data.get()), size);
    // Serialised TorchScript calls an aten op as torch.NAME(...) or
    // ops.aten.NAME(...).
    for (const char* op : kBannedOps) {
      const std::string fn(std::string_view(op).substr(6));  // "aten::"
      for (const std::string prefix : {"torch.", "aten."}) {
        if (code.find(prefix + fn + "(") != std::string_view::npos) {
          return InvalidArgumentError(std::string("model code calls ") + op +
                                      " (in " + name +
                                      "): models may not read or write files");
        }
      }
    }
  }
  return OkStatus();
}

void FindBannedNodes(const torch::jit::Block* block,
                     std::set<std::string>& out) {
  for (const torch::jit::Node* n : block->nodes()) {
    for (const char* op : kBannedOps) {
      if (n->kind().toQualString() == std::string_view(op)) out.insert(op);
    }
    for (const torch::jit::Block* b : n->blocks()) FindBannedNodes(b, out);
  }
}

// Every method and function of the loaded module, submodules' included.
Status CheckGraphs(const torch::jit::Module& m) {
  std::set<std::string> found;
  for (torch::jit::Function* fn :
       m._ivalue()->compilation_unit()->get_functions()) {
    if (!fn->isGraphFunction()) continue;
    FindBannedNodes(torch::jit::toGraphFunction(*fn).graph()->block(), found);
  }
  if (found.empty()) return OkStatus();
  std::string ops;
  for (const std::string& op : found) ops += (ops.empty() ? "" : ", ") + op;
  return InvalidArgumentError("model code calls " + ops +
                              ": models may not read or write files");
}

}  // namespace

Result<torch::jit::Module> LoadModel(std::string_view bytes) {
  if (bytes.empty()) return InvalidArgumentError("model bytes are empty");
  try {
    LETHE_CORE_RETURN_IF_ERROR(CheckArchiveCode(bytes));
    std::istringstream in{std::string(bytes)};
    torch::jit::Module m = torch::jit::load(in, at::Device(at::kCPU));
    LETHE_CORE_RETURN_IF_ERROR(CheckGraphs(m));
    m.eval();
    return m;
  } catch (const std::exception& e) {
    return InvalidArgumentError(
        "model bytes are not a loadable TorchScript archive (export with "
        "torch.jit.save of a scripted or traced module): " +
        internal::ShortError(e));
  }
}

Result<std::string> SaveModel(const torch::jit::Module& module) {
  return Guarded("saving model", [&]() -> Result<std::string> {
    std::ostringstream out;
    module.save(out);
    return out.str();
  });
}

Result<torch::jit::Module> CloneModel(const torch::jit::Module& module) {
  return Guarded("cloning model", [&]() -> Result<torch::jit::Module> {
    // Without the guard the copies of parameters requiring grad would be
    // non-leaf tensors (outputs of clone) and never receive gradients.
    at::NoGradGuard no_grad;
    return module.deepcopy();
  });
}

Status ReinitializeModel(torch::jit::Module& module, uint64_t seed) {
  return Guarded("reinitialising model", [&]() -> Status {
    at::NoGradGuard no_grad;
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed);
    double last_bound = 0;
    for (const auto& p : module.named_parameters(/*recurse=*/true)) {
      at::Tensor t = p.value;
      auto ends = [&](const char* s) {
        std::string n = p.name, suffix = s;
        return n.size() >= suffix.size() &&
               n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0;
      };
      if (t.dim() >= 2) {
        last_bound =
            1.0 / std::sqrt(static_cast<double>(t.numel() / t.size(0)));
        t.copy_(Uniform(t.sizes().vec(), last_bound, g));
      } else if (ends("bias") && last_bound > 0) {
        t.copy_(Uniform(t.sizes().vec(), last_bound, g));
      } else if (ends("weight")) {
        t.fill_(1.0);
      } else {
        t.zero_();
      }
    }
    // Statistics that training accumulates (batch norm's) start afresh;
    // other buffers are constants of the architecture (rf_logreg's frozen
    // projection, masks, encodings) and stay.
    for (const auto& b : module.named_buffers(/*recurse=*/true)) {
      const std::string& n = b.name;
      if (n.find("running_var") != std::string::npos) {
        b.value.fill_(1.0);
      } else if (n.find("running_mean") != std::string::npos ||
                 n.find("num_batches_tracked") != std::string::npos) {
        b.value.zero_();
      }
    }
    return OkStatus();
  });
}

std::vector<std::string> UndeclaredBuffers(const torch::jit::Module& module) {
  std::set<std::string> declared;
  if (module.hasattr(kDataFreeBuffersAttr)) {
    c10::IValue v = module.attr(kDataFreeBuffersAttr);
    if (v.isList()) {
      for (const c10::IValue& e : v.toListRef()) {
        if (e.isString()) declared.insert(e.toStringRef());
      }
    }
  }
  std::vector<std::string> out;
  for (const auto& b : module.named_buffers(/*recurse=*/true)) {
    const std::string& n = b.name;
    if (declared.count(n) || n.find("running_mean") != std::string::npos ||
        n.find("running_var") != std::string::npos ||
        n.find("num_batches_tracked") != std::string::npos) {
      continue;
    }
    out.push_back(n);
  }
  return out;
}

Status CheckModelFits(torch::jit::Module& module, const FeatureSpec& spec) {
  LETHE_CORE_RETURN_IF_ERROR(spec.Validate());
  std::vector<int64_t> shape{2};
  shape.insert(shape.end(), spec.shape.begin(), spec.shape.end());
  std::string input = "float32[2";
  for (int64_t d : spec.shape) input += "," + std::to_string(d);
  input += "]";
  try {
    at::NoGradGuard no_grad;
    bool was_training = module.is_training();
    module.eval();
    c10::IValue out = module.forward({at::zeros(shape, at::kFloat)});
    module.train(was_training);
    if (!out.isTensor()) {
      return InvalidArgumentError("model forward returns " + out.tagKind() +
                                  ", not a tensor of logits");
    }
    at::Tensor t = out.toTensor();
    if (t.dim() != 2 || t.size(0) != 2 || t.size(1) != spec.num_classes) {
      std::ostringstream got;
      got << t.sizes();
      return InvalidArgumentError("model maps " + input + " to " + got.str() +
                                  ", data needs [2, " +
                                  std::to_string(spec.num_classes) +
                                  "] logits (" + spec.ToString() + ")");
    }
    if (t.scalar_type() != at::kFloat) {
      return InvalidArgumentError("model outputs " +
                                  std::string(c10::toString(t.scalar_type())) +
                                  "; lethe trains float32 models");
    }
  } catch (const std::exception& e) {
    return InvalidArgumentError("model does not accept the data's features " +
                                input + " (" + spec.ToString() +
                                "): " + internal::ShortError(e));
  }
  return OkStatus();
}

}  // namespace lethe::core
