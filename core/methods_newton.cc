#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <cstdio>
#include <sstream>

#include "guard.h"
#include "lethe/core/model.h"
#include "lethe/core/newton.h"

namespace lethe::core {
namespace {

using internal::Guarded;
using at::Tensor;

constexpr double kGamma = 0.25;  // Lipschitz constant Guo et al. use

struct Linear {
  Tensor weight, bias;  // the module's own parameters (float32)
};

Result<Linear> FindLinearUnguarded(const torch::jit::Module& model,
                                   const DeviceData& data) {
  std::vector<Tensor> p;
  for (const Tensor& t : model.parameters()) p.push_back(t);
  if (p.size() != 2 || p[0].dim() != 2 || p[1].dim() != 1 ||
      p[0].size(0) != p[1].size(0) ||
      p[0].size(1) != data.features[0].numel()) {
    return InvalidArgumentError(
        "newton needs a linear model (one weight [K, d], one bias [K], d the "
        "number of features): use architecture logreg");
  }
  // The parameters alone do not say the forward pass is linear: check it.
  torch::jit::Module probe = model;
  at::NoGradGuard no_grad;
  Tensor x = data.features.narrow(0, 0, std::min<int64_t>(4, data.features.size(0)));
  Tensor got = probe.forward({x}).toTensor();
  Tensor want = at::addmm(p[1], x.flatten(1), p[0].t());
  if (!got.sizes().equals(want.sizes()) ||
      !at::allclose(got, want, 1e-4, 1e-4)) {
    return InvalidArgumentError(
        "newton needs a model whose forward is linear(flatten(x)); this "
        "model's outputs differ from that");
  }
  return Linear{p[0], p[1]};
}

Result<Linear> FindLinear(const torch::jit::Module& model,
                          const DeviceData& data) {
  return Guarded("checking the model is linear",
                 [&] { return FindLinearUnguarded(model, data); });
}

// [n, d + 1] float64 rows with a trailing 1 for the bias.
Tensor Design(const DeviceData& d, const std::vector<int64_t>& rows) {
  Tensor x = d.features.index_select(0, RowTensor(rows, d.device))
                 .flatten(1)
                 .to(at::kDouble);
  return at::cat({x, at::ones({x.size(0), 1}, x.options())}, 1);
}

Tensor OneHot(const DeviceData& d, const std::vector<int64_t>& rows,
              int64_t k) {
  Tensor y = d.labels.index_select(0, RowTensor(rows, d.device));
  return at::one_hot(y, k).to(at::kDouble);
}

Tensor Noise(const NewtonState& s, int64_t k, int64_t d, at::Device device) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(s.noise_seed);
  return (at::randn({k, d}, g, at::TensorOptions(at::kDouble)) *
          s.params.sigma).to(device);
}

// Per-class loss sums and gradient [K, d + 1] of the perturbed objective.
double Objective(const Tensor& w, const Tensor& x, const Tensor& y,
                 const Tensor& b, double reg) {
  Tensor z = x.mm(w.t());
  return (at::softplus(z) - y * z).sum().item<double>() +
         reg / 2 * w.pow(2).sum().item<double>() + (b * w).sum().item<double>();
}

Tensor Gradient(const Tensor& w, const Tensor& x, const Tensor& y,
                const Tensor& b, double reg) {
  return (at::sigmoid(x.mm(w.t())) - y).t().mm(x) + reg * w + b;
}

// [K, d + 1, d + 1]: X^T diag(s_k) X + reg I per class.
Tensor Hessians(const Tensor& w, const Tensor& x, double reg) {
  Tensor p = at::sigmoid(x.mm(w.t()));
  Tensor s = p * (1 - p);
  std::vector<Tensor> h;
  Tensor eye = at::eye(x.size(1), x.options()) * reg;
  for (int64_t k = 0; k < w.size(0); ++k) {
    h.push_back((x * s.select(1, k).unsqueeze(1)).t().mm(x) + eye);
  }
  return at::stack(h);
}

Tensor Solve(const Tensor& h, const Tensor& g) {
  return at::linalg_solve(h, g.unsqueeze(2)).squeeze(2);
}

Tensor Stacked(const Linear& lin) {
  return at::cat({lin.weight.detach(), lin.bias.detach().unsqueeze(1)}, 1)
      .to(at::kDouble);
}

void Store(const Linear& lin, const Tensor& w) {
  at::NoGradGuard no_grad;
  int64_t d = w.size(1) - 1;
  lin.weight.copy_(w.narrow(1, 0, d));
  lin.bias.copy_(w.select(1, d));
}

}  // namespace

double NewtonBudget(const NewtonParams& p) {
  return p.sigma * p.epsilon / std::sqrt(2 * std::log(1.5 / p.delta));
}

std::string SerializeNewtonState(const NewtonState& s) {
  char buf[512];
  std::snprintf(buf, sizeof(buf),
                "lethe-newton-v1\nlambda=%.17g\nsigma=%.17g\nepsilon=%.17g\n"
                "delta=%.17g\nmax_iterations=%d\nnoise_seed=%llu\n"
                "cumulative_bound=%.17g\nremovals=%lld\n",
                s.params.lambda, s.params.sigma, s.params.epsilon,
                s.params.delta, s.params.max_iterations,
                static_cast<unsigned long long>(s.noise_seed),
                s.cumulative_bound, static_cast<long long>(s.removals));
  return buf;
}

Result<NewtonState> ParseNewtonState(std::string_view text) {
  std::istringstream in{std::string(text)};
  std::string line;
  if (!std::getline(in, line) || line != "lethe-newton-v1") {
    return InvalidArgumentError("not a lethe newton state (bad first line)");
  }
  NewtonState s;
  int fields = 0;
  while (std::getline(in, line)) {
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = line.substr(0, eq);
    const char* v = line.c_str() + eq + 1;
    ++fields;
    if (key == "lambda") s.params.lambda = std::strtod(v, nullptr);
    else if (key == "sigma") s.params.sigma = std::strtod(v, nullptr);
    else if (key == "epsilon") s.params.epsilon = std::strtod(v, nullptr);
    else if (key == "delta") s.params.delta = std::strtod(v, nullptr);
    else if (key == "max_iterations") s.params.max_iterations = std::atoi(v);
    else if (key == "noise_seed") s.noise_seed = std::strtoull(v, nullptr, 10);
    else if (key == "cumulative_bound") s.cumulative_bound = std::strtod(v, nullptr);
    else if (key == "removals") s.removals = std::strtoll(v, nullptr, 10);
    else --fields;
  }
  if (fields != 8) return InvalidArgumentError("newton state is incomplete");
  return s;
}

Result<NewtonState> TrainCertified(torch::jit::Module& model,
                                   const DeviceData& data,
                                   const std::vector<int64_t>& rows,
                                   const NewtonParams& params,
                                   uint64_t noise_seed) {
  LETHE_ASSIGN_OR_RETURN(Linear lin, FindLinear(model, data));
  if (rows.empty()) return InvalidArgumentError("no rows to train on");
  return Guarded("newton training", [&]() -> Result<NewtonState> {
    at::NoGradGuard no_grad;
    NewtonState state;
    state.params = params;
    state.noise_seed = noise_seed;
    Tensor x = Design(data, rows);
    Tensor y = OneHot(data, rows, lin.weight.size(0));
    Tensor b = Noise(state, y.size(1), x.size(1), x.device());
    double reg = params.lambda * static_cast<double>(rows.size());
    Tensor w = at::zeros({y.size(1), x.size(1)}, x.options());
    double f = Objective(w, x, y, b, reg);
    for (int it = 0; it < params.max_iterations; ++it) {
      Tensor g = Gradient(w, x, y, b, reg);
      if (g.norm().item<double>() < 1e-10 * static_cast<double>(rows.size())) {
        break;
      }
      Tensor step = Solve(Hessians(w, x, reg), g);
      double decrease = (g * step).sum().item<double>(), t = 1;
      // Backtracking (Armijo) keeps the damped Newton method monotone.
      while (t > 1e-6) {
        double f_new = Objective(w - t * step, x, y, b, reg);
        if (f_new <= f - 1e-4 * t * decrease) {
          f = f_new;
          break;
        }
        t /= 2;
      }
      w = w - t * step;
    }
    if (!at::isfinite(w).all().item<bool>()) {
      return AbortedError("newton training diverged");
    }
    Store(lin, w);
    return state;
  });
}

Result<NewtonRemoval> NewtonRemove(const torch::jit::Module& original,
                                   const DeviceData& data,
                                   const Partition& partition,
                                   const NewtonState& state) {
  LETHE_ASSIGN_OR_RETURN(torch::jit::Module model, CloneModel(original));
  LETHE_ASSIGN_OR_RETURN(Linear lin, FindLinear(model, data));
  return Guarded("newton removal", [&]() -> Result<NewtonRemoval> {
    at::NoGradGuard no_grad;
    const int64_t k = lin.weight.size(0);
    const double m = static_cast<double>(partition.forget.size());
    const double n_kept = static_cast<double>(partition.retain.size());
    Tensor w = Stacked(lin).to(data.device);
    Tensor xf = Design(data, partition.forget);
    Tensor xr = Design(data, partition.retain);
    Tensor delta = (at::sigmoid(xf.mm(w.t())) - OneHot(data, partition.forget, k))
                       .t().mm(xf) + state.params.lambda * m * w;
    Tensor v = Solve(Hessians(w, xr, state.params.lambda * n_kept), delta);
    double x_norm = at::linalg_eigvalsh(xr.t().mm(xr)).max().sqrt().item<double>();
    Tensor per_class = v.norm(2, {1}) * xr.mm(v.t()).norm(2, {0});
    NewtonRemoval out;
    out.bound = kGamma * x_norm * per_class.norm().item<double>();
    out.budget = NewtonBudget(state.params);
    out.state = state;
    if (!std::isfinite(out.bound) ||
        state.cumulative_bound + out.bound > out.budget) {
      out.retrain_needed = true;
      return out;
    }
    Tensor w_new = w + v;
    if (!at::isfinite(w_new).all().item<bool>()) {
      return AbortedError("newton step is not finite");
    }
    Store(lin, w_new.to(lin.weight.device()));
    out.model = model;
    out.state.cumulative_bound += out.bound;
    out.state.removals += static_cast<int64_t>(m);
    return out;
  });
}

Result<double> GradientResidual(const torch::jit::Module& model,
                                const DeviceData& data,
                                const std::vector<int64_t>& rows,
                                const NewtonState& state) {
  LETHE_ASSIGN_OR_RETURN(Linear lin, FindLinear(model, data));
  return Guarded("gradient residual", [&]() -> Result<double> {
    at::NoGradGuard no_grad;
    Tensor x = Design(data, rows);
    Tensor y = OneHot(data, rows, lin.weight.size(0));
    Tensor b = Noise(state, y.size(1), x.size(1), x.device());
    Tensor w = Stacked(lin).to(data.device);
    double reg = state.params.lambda * static_cast<double>(rows.size());
    return Gradient(w, x, y, b, reg).norm().item<double>();
  });
}

}  // namespace lethe::core
