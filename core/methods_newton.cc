#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numbers>
#include <sstream>

#include "guard.h"
#include "lethe/core/model.h"
#include "lethe/core/newton.h"

namespace lethe::core {
namespace {

using at::Tensor;
using internal::Guarded;

constexpr double kGamma = 0.25;  // Lipschitz constant Guo et al. use

struct Linear {
  Tensor weight, bias;  // the module's own parameters (float32)
  bool embedded =
      false;  // forward(x) = linear(embed(x)), else linear(flatten(x))
};

// What the head sees: embed(x) for a head on frozen features, else flatten(x).
Tensor HeadInput(torch::jit::Module& m, bool embedded, const Tensor& x) {
  if (!embedded) return x.flatten(1);
  return m.get_method("embed")({x}).toTensor().flatten(1);
}

Result<Linear> FindLinearUnguarded(const torch::jit::Module& model,
                                   const DeviceData& data) {
  torch::jit::Module probe = model;
  at::NoGradGuard no_grad;
  const bool embedded = probe.find_method("embed").has_value();
  Tensor x = data.First(std::min<int64_t>(4, data.features.size(0)));
  Tensor in = HeadInput(probe, embedded, x);
  std::vector<Tensor> p;
  for (const Tensor& t : model.parameters()) p.push_back(t);
  if (p.size() != 2 || p[0].dim() != 2 || p[1].dim() != 1 ||
      p[0].size(0) != p[1].size(0) || p[0].size(1) != in.size(1)) {
    return InvalidArgumentError(
        "newton needs a linear model (one weight [K, d], one bias [K], d the "
        "number of features: use architecture logreg) or a linear head on "
        "frozen features (an `embed` method whose tensors are buffers, and "
        "those two parameters with d = embed's width: rf_logreg)");
  }
  // The parameters alone do not say the forward pass is linear: check it.
  Tensor got = probe.forward({x}).toTensor();
  Tensor want = at::addmm(p[1], in, p[0].t());
  if (!got.sizes().equals(want.sizes()) ||
      !at::allclose(got, want, 1e-4, 1e-4)) {
    return InvalidArgumentError(
        embedded ? "newton needs a model whose forward is linear(embed(x)); "
                   "this model's outputs differ from that"
                 : "newton needs a model whose forward is linear(flatten(x)); "
                   "this model's outputs differ from that");
  }
  return Linear{p[0], p[1], embedded};
}

Result<Linear> FindLinear(const torch::jit::Module& model,
                          const DeviceData& data) {
  return Guarded("checking the model is linear",
                 [&] { return FindLinearUnguarded(model, data); });
}

// [n, d + 1] float64 rows of the head's input with a trailing 1 for the bias,
// embedded in chunks so a large set never holds two float32 copies at once.
Tensor Design(torch::jit::Module& m, const Linear& lin, const DeviceData& d,
              const std::vector<int64_t>& rows) {
  at::NoGradGuard no_grad;
  std::vector<Tensor> parts;
  constexpr size_t kChunk = 8192;
  for (size_t b = 0; b < rows.size(); b += kChunk) {
    std::vector<int64_t> chunk(
        rows.begin() + static_cast<std::ptrdiff_t>(b),
        rows.begin() +
            static_cast<std::ptrdiff_t>(std::min(rows.size(), b + kChunk)));
    Tensor x = d.Rows(RowTensor(chunk, d.device));
    parts.push_back(HeadInput(m, lin.embedded, x).to(at::kDouble));
  }
  Tensor x = parts.size() == 1 ? parts[0] : at::cat(parts, 0);
  return at::cat({x, at::ones({x.size(0), 1}, x.options())}, 1);
}

Tensor OneHot(const DeviceData& d, const std::vector<int64_t>& rows,
              int64_t k) {
  Tensor y = d.labels.index_select(0, RowTensor(rows, d.device));
  return at::one_hot(y, k).to(at::kDouble);
}

// n bytes from the kernel's CSPRNG. getrandom(2) rather than
// std::random_device, whose source the standard leaves to the library (it may
// be a CPU instruction or, elsewhere, a plain PRNG); with no flags it reads
// the /dev/urandom pool and blocks only until that pool is first seeded.
bool SecureRandomBytes(void* out, size_t n) {
  auto* p = static_cast<unsigned char*>(out);
  while (n > 0) {
    ssize_t got = getrandom(p, n, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

// b ~ N(0, sigma^2 I) [k, d], float64 on the CPU: Box-Muller on 53-bit
// uniforms from the CSPRNG, so every entry carries fresh entropy (no seed
// to guess).
Result<Tensor> SecretNoise(int64_t k, int64_t d, double sigma) {
  const int64_t n = k * d;
  std::vector<uint64_t> bits(static_cast<size_t>(n + 1) / 2 * 2);
  if (!SecureRandomBytes(bits.data(), bits.size() * sizeof(uint64_t))) {
    return InternalError(std::string("certified training needs random bytes "
                                     "from the kernel (getrandom): ") +
                         std::strerror(errno));
  }
  Tensor b = at::empty({k, d}, at::kDouble);
  double* out = b.data_ptr<double>();
  for (int64_t i = 0; i < n; i += 2) {
    const double u1 =
        (static_cast<double>(bits[i] >> 11) + 1) * 0x1p-53;  // (0, 1]
    const double u2 =
        static_cast<double>(bits[i + 1] >> 11) * 0x1p-53;  // [0, 1)
    const double r = sigma * std::sqrt(-2 * std::log(u1));
    out[i] = r * std::cos(2 * std::numbers::pi * u2);
    if (i + 1 < n) out[i + 1] = r * std::sin(2 * std::numbers::pi * u2);
  }
  return b;
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

// [K, d + 1, d + 1]: X^T diag(s_k) X + reg I per class, s_k = p_k (1 - p_k)
// at the weights w.
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

// H^-1 g per class. The Hessians are symmetric positive definite (reg > 0):
// Cholesky, half the work of a general solve.
Tensor Solve(const Tensor& h, const Tensor& g) {
  Tensor l = at::linalg_cholesky(h);
  return at::cholesky_solve(g.unsqueeze(2), l).squeeze(2);
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

// sqrt(v_k^T G v_k) per row k of v: |X v_k| from the Gram matrix G = X^T X.
Tensor GramNorms(const Tensor& g, const Tensor& v) {
  return (v.mm(g) * v).sum(1).clamp_min(0).sqrt();
}

double SpectralNorm(const Tensor& gram) {
  return std::sqrt(
      std::max(0.0, at::linalg_eigvalsh(gram).max().item<double>()));
}

int64_t CacheBytes(int64_t k, int64_t d) {
  return (k + 1) * d * d * 8 + k * d * 8;
}

constexpr char kMagicV1[] = "lethe-newton-v1";
constexpr char kMagicV2[] = "lethe-newton-v2";  // v1 + the cache
constexpr char kMagicV3[] = "lethe-newton-v3";  // v2 - noise_seed + rows

}  // namespace

double NewtonBudget(const NewtonParams& p) {
  return p.sigma * p.epsilon / std::sqrt(2 * std::log(1.5 / p.delta));
}

std::string SerializeNewtonState(const NewtonState& s) {
  char buf[700];
  const bool cache = s.has_cache();
  const int64_t k = cache ? s.hessians.size(0) : 0;
  const int64_t d = cache ? s.hessians.size(1) : 0;
  std::snprintf(buf, sizeof(buf),
                "%s\nlambda=%.17g\nsigma=%.17g\nepsilon=%.17g\n"
                "delta=%.17g\nmax_iterations=%d\nmax_cache_bytes=%lld\n"
                "measure_residual=%d\n"
                "cumulative_bound=%.17g\nremovals=%lld\nrows=%lld\n"
                "max_row_norm=%.17g\ncache=%lld,%lld\n\n",
                kMagicV3, s.params.lambda, s.params.sigma, s.params.epsilon,
                s.params.delta, s.params.max_iterations,
                static_cast<long long>(s.params.max_cache_bytes),
                s.params.measure_residual ? 1 : 0, s.cumulative_bound,
                static_cast<long long>(s.removals),
                static_cast<long long>(s.rows), s.max_row_norm,
                static_cast<long long>(k), static_cast<long long>(d));
  std::string out = buf;
  if (cache) {
    for (const Tensor& t : {s.hessians, s.hessian_at, s.gram}) {
      Tensor c = t.to(at::kCPU, at::kDouble).contiguous();
      out.append(reinterpret_cast<const char*>(c.data_ptr<double>()),
                 static_cast<size_t>(c.numel()) * sizeof(double));
    }
  }
  return out;
}

Result<NewtonState> ParseNewtonState(std::string_view bytes) {
  // v3: text header, a blank line, then the cache as float64 (host order).
  // v2 (the same with noise_seed) and v1 (text only, no cache) are still
  // read; their b came from the public seed.
  size_t end = bytes.find("\n\n");
  std::string_view header = bytes.substr(0, end);
  std::string_view body = end == std::string_view::npos ? std::string_view()
                                                        : bytes.substr(end + 2);
  std::istringstream in{std::string(header)};
  std::string line;
  if (!std::getline(in, line) ||
      (line != kMagicV1 && line != kMagicV2 && line != kMagicV3)) {
    return InvalidArgumentError("not a lethe newton state (bad first line)");
  }
  const int version = line == kMagicV1 ? 1 : line == kMagicV2 ? 2 : 3;
  NewtonState s;
  s.public_noise = version < 3;
  int fields = 0;
  long long k = 0, d = 0;
  while (std::getline(in, line)) {
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = line.substr(0, eq);
    const char* v = line.c_str() + eq + 1;
    ++fields;
    if (key == "lambda")
      s.params.lambda = std::strtod(v, nullptr);
    else if (key == "sigma")
      s.params.sigma = std::strtod(v, nullptr);
    else if (key == "epsilon")
      s.params.epsilon = std::strtod(v, nullptr);
    else if (key == "delta")
      s.params.delta = std::strtod(v, nullptr);
    else if (key == "max_iterations")
      s.params.max_iterations = std::atoi(v);
    else if (key == "max_cache_bytes")
      s.params.max_cache_bytes = std::strtoll(v, nullptr, 10);
    else if (key == "measure_residual")
      s.params.measure_residual = std::atoi(v) != 0;
    else if (key == "noise_seed" && version < 3) {
    }  // public: not kept
    else if (key == "cumulative_bound")
      s.cumulative_bound = std::strtod(v, nullptr);
    else if (key == "removals")
      s.removals = std::strtoll(v, nullptr, 10);
    else if (key == "rows" && version == 3)
      s.rows = std::strtoll(v, nullptr, 10);
    else if (key == "max_row_norm")
      s.max_row_norm = std::strtod(v, nullptr);
    else if (key == "cache") {
      if (std::sscanf(v, "%lld,%lld", &k, &d) != 2 || k < 0 || d < 0 ||
          k > 65536 || d > 65536) {
        return InvalidArgumentError("newton state has a bad cache line");
      }
    } else {
      --fields;
    }
  }
  if (fields != (version == 1 ? 8 : 12)) {
    return InvalidArgumentError("newton state is incomplete");
  }
  const uint64_t want = k > 0 ? static_cast<uint64_t>(CacheBytes(k, d)) : 0;
  if (body.size() != want) {
    return InvalidArgumentError("newton state cache is " +
                                std::to_string(body.size()) + " bytes, not " +
                                std::to_string(want));
  }
  if (k > 0) {
    const double* p = reinterpret_cast<const double*>(body.data());
    auto take = [&](std::vector<int64_t> shape) {
      Tensor t = at::empty(shape, at::kDouble);
      std::memcpy(t.data_ptr<double>(), p, t.numel() * sizeof(double));
      p += t.numel();
      return t;
    };
    s.hessians = take({k, d, d});
    s.hessian_at = take({k, d});
    s.gram = take({d, d});
  }
  return s;
}

namespace {

// Certified training with b given (defined) or drawn secretly (undefined);
// a drawn b goes to *drawn when asked for.
Result<NewtonState> Train(torch::jit::Module& model, const DeviceData& data,
                          const std::vector<int64_t>& rows,
                          const NewtonParams& params, Tensor noise,
                          Tensor* drawn) {
  LETHE_CORE_ASSIGN_OR_RETURN(Linear lin, FindLinear(model, data));
  if (rows.empty()) return InvalidArgumentError("no rows to train on");
  const int64_t k = lin.weight.size(0), d = lin.weight.size(1) + 1;
  if (!noise.defined()) {
    LETHE_CORE_ASSIGN_OR_RETURN(noise, SecretNoise(k, d, params.sigma));
    if (drawn != nullptr) *drawn = noise;
  } else if (noise.dim() != 2 || noise.size(0) != k || noise.size(1) != d) {
    return InvalidArgumentError("newton noise must be [" + std::to_string(k) +
                                ", " + std::to_string(d) + "]");
  }
  return Guarded("newton training", [&]() -> Result<NewtonState> {
    at::NoGradGuard no_grad;
    NewtonState state;
    state.params = params;
    state.rows = static_cast<int64_t>(rows.size());
    Tensor x = Design(model, lin, data, rows);
    Tensor y = OneHot(data, rows, k);
    Tensor b = noise.to(x.device(), at::kDouble);
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
    // The model keeps its weights in float32: the published weights are not
    // quite the optimum. Their residual is where the bound starts.
    state.cumulative_bound = Gradient(Stacked(lin).to(x.device()), x, y, b, reg)
                                 .norm()
                                 .item<double>();
    state.max_row_norm = x.norm(2, {1}).max().item<double>();
    if (CacheBytes(w.size(0), x.size(1)) <= params.max_cache_bytes) {
      // At the optimum, for removals that need no pass over the data.
      state.hessians = Hessians(w, x, reg).cpu();
      state.hessian_at = w.cpu();
      state.gram = x.t().mm(x).cpu();
    }
    return state;
  });
}

}  // namespace

Result<NewtonState> TrainCertified(torch::jit::Module& model,
                                   const DeviceData& data,
                                   const std::vector<int64_t>& rows,
                                   const NewtonParams& params, Tensor* noise) {
  return Train(model, data, rows, params, Tensor(), noise);
}

Result<NewtonState> TrainCertifiedWithNoise(torch::jit::Module& model,
                                            const DeviceData& data,
                                            const std::vector<int64_t>& rows,
                                            const NewtonParams& params,
                                            const Tensor& noise) {
  if (!noise.defined()) return InvalidArgumentError("no newton noise given");
  return Train(model, data, rows, params, noise, nullptr);
}

namespace {

// Precondition of a removal the state can certify: the cache, when kept,
// fits the model, and the data still has the rows the model stands for.
Status CheckState(const NewtonState& state, const Linear& lin,
                  const Partition& partition) {
  if (state.has_cache() && (state.hessians.size(0) != lin.weight.size(0) ||
                            state.hessians.size(1) != lin.weight.size(1) + 1)) {
    return InvalidArgumentError("newton state's cache does not fit this model");
  }
  const int64_t now =
      static_cast<int64_t>(partition.forget.size() + partition.retain.size());
  if (now != state.rows) {
    return FailedPreconditionError(
        "retrain needed: the model stands for " + std::to_string(state.rows) +
        " training records but the data now has " + std::to_string(now) +
        " (records added since certified training are in no bound)");
  }
  return OkStatus();
}

// One removal (Guo et al., "Certified Data Removal from Machine Learning
// Models"): the Newton step on the kept data's objective, its gradient
// residual bound, and the state after it. Runs under NoGradGuard.
class Removal {
 public:
  Removal(torch::jit::Module& model, const Linear& lin, const DeviceData& data,
          const Partition& partition, const NewtonState& state)
      : model_(model),
        lin_(lin),
        data_(data),
        partition_(partition),
        state_(state),
        m_(static_cast<double>(partition.forget.size())),
        lambda_(state.params.lambda),
        kept_reg_(lambda_ * static_cast<double>(partition.retain.size())),
        row_norm_(state.max_row_norm) {}

  Result<NewtonRemoval> Run();

 private:
  void ForgetGradient();
  void KeptFromCache();
  void KeptFromPass();
  double StepBound(const Tensor& v, double x_norm) const;
  void Measure(const Tensor& w_new, NewtonRemoval& out, double& carried);

  torch::jit::Module& model_;
  const Linear& lin_;
  const DeviceData& data_;
  const Partition& partition_;
  const NewtonState& state_;
  const double m_;  // forget rows
  const double lambda_;
  const double kept_reg_;  // lambda |D \ F|
  Tensor w_;               // the current weights, [K, d + 1] float64
  Tensor xf_;              // the forget rows' design
  Tensor delta_;           // their loss and regulariser's gradient at w
  Tensor xr_;  // the kept rows, once a pass over them has been paid for
  Tensor hessians_, gram_, drift_;  // H' per class, X'^T X', w - w_H
  double row_norm_;                 // max_i |x_i|
};

// w, the forget rows' design and Delta, the gradient their terms (loss and
// lambda m |w|^2 / 2) contribute at w.
void Removal::ForgetGradient() {
  const int64_t k = lin_.weight.size(0);
  w_ = Stacked(lin_).to(data_.device);
  xf_ = Design(model_, lin_, data_, partition_.forget);
  Tensor yf = OneHot(data_, partition_.forget, k);
  delta_ = (at::sigmoid(xf_.mm(w_.t())) - yf).t().mm(xf_) + lambda_ * m_ * w_;
}

// H' = H(w_H; D) - sum_F s_i x_i x_i^T - lambda m I, exactly the Hessians of
// L(.; D \ F) at w_H: O(K m d^2), no pass over D \ F.
void Removal::KeptFromCache() {
  const int64_t k = lin_.weight.size(0);
  Tensor eye = at::eye(xf_.size(1), xf_.options());
  Tensor wh = state_.hessian_at.to(data_.device);
  Tensor pf = at::sigmoid(xf_.mm(wh.t()));
  Tensor sf = pf * (1 - pf);
  std::vector<Tensor> h;
  for (int64_t c = 0; c < k; ++c) {
    h.push_back(state_.hessians[c].to(data_.device) -
                (xf_ * sf.select(1, c).unsqueeze(1)).t().mm(xf_) -
                eye * (lambda_ * m_));
  }
  hessians_ = at::stack(h);
  gram_ = state_.gram.to(data_.device) - xf_.t().mm(xf_);
  drift_ = w_ - wh;
}

// The same at w, from one pass over the kept rows.
void Removal::KeptFromPass() {
  xr_ = Design(model_, lin_, data_, partition_.retain);
  hessians_ = Hessians(w_, xr_, kept_reg_);
  gram_ = xr_.t().mm(xr_);
  drift_ = at::zeros_like(w_);
  row_norm_ = xr_.norm(2, {1}).max().item<double>();
}

// Residual bound of the step v (Guo et al., Corollary 1, with the factor
// max_i |x_i| their unit-norm rows make 1, and the Hessian taken at w_H):
//   |grad L(w + v; D')| <= gamma R |X'| sum-of-squares over k of
//                          |v_k| (|X' v_k| + |X' (w_k - w_H,k)|)
// since |H(a) - H(b)| <= gamma R |X'| |X' (a - b)|. x_norm is |X'|.
double Removal::StepBound(const Tensor& v, double x_norm) const {
  Tensor per_class =
      v.norm(2, {1}) * (GramNorms(gram_, v) + GramNorms(gram_, drift_));
  return kGamma * row_norm_ * x_norm * per_class.norm().item<double>();
}

// What Theorem 3 needs is a bound on |grad L(w-; D')|; the step's bound
// stands in for the change from |grad L(w; D)| where measuring it would cost
// a pass over the kept data. When the summed bound would exceed the budget,
// or the pass is already paid for (no cache), measure the change itself:
// grad L(w-; D') - grad L(w; D) = G(w-; D') - G(w; D') - Delta, G the
// gradient over the kept rows without b (b cancels: it is never needed, so
// never kept). Lowers `carried` to the measured bound when that is smaller.
void Removal::Measure(const Tensor& w_new, NewtonRemoval& out,
                      double& carried) {
  if (!(state_.params.measure_residual || xr_.defined())) return;
  if (!xr_.defined()) xr_ = Design(model_, lin_, data_, partition_.retain);
  Tensor change = (at::sigmoid(xr_.mm(w_new.t())) - at::sigmoid(xr_.mm(w_.t())))
                      .t()
                      .mm(xr_) +
                  kept_reg_ * (w_new - w_) - delta_;
  out.measured_bound = state_.cumulative_bound + change.norm().item<double>();
  out.measured = true;
  if (std::isfinite(out.measured_bound) && out.measured_bound < carried) {
    carried = out.measured_bound;
  }
}

Result<NewtonRemoval> Removal::Run() {
  ForgetGradient();
  if (state_.has_cache()) {
    KeptFromCache();
  } else {
    KeptFromPass();
  }
  Tensor v = Solve(hessians_, delta_);
  const double x_norm = SpectralNorm(gram_);
  NewtonRemoval out;
  out.bound = StepBound(v, x_norm);
  out.budget = NewtonBudget(state_.params);
  out.state = state_;
  Tensor w_step = w_ + v;
  if (!at::isfinite(w_step).all().item<bool>()) {
    return AbortedError("newton step is not finite");
  }
  // The weights as the model stores them (float32): rounding moves the
  // gradient by at most |H'(u)| |rounding| <= (|X'|^2 / 4 + reg) |rounding|.
  Tensor w_new = w_step.to(lin_.weight.scalar_type()).to(at::kDouble);
  out.bound += (x_norm * x_norm / 4 + kept_reg_) *
               (w_new - w_step).norm().item<double>();
  double carried = state_.cumulative_bound + out.bound;
  if (!std::isfinite(out.bound) || carried > out.budget || xr_.defined()) {
    Measure(w_new, out, carried);
  }
  if (!std::isfinite(carried) || carried > out.budget) {
    out.retrain_needed = true;
    return out;
  }
  Store(lin_, w_new.to(lin_.weight.device()));
  out.model = model_;
  out.state.cumulative_bound = carried;
  out.state.removals += static_cast<int64_t>(m_);
  out.state.rows -= static_cast<int64_t>(m_);
  if (state_.has_cache()) {
    out.state.hessians = hessians_.cpu();
    out.state.gram = gram_.cpu();
  }
  return out;
}

}  // namespace

Result<NewtonRemoval> NewtonRemove(const torch::jit::Module& original,
                                   const DeviceData& data,
                                   const Partition& partition,
                                   const NewtonState& state) {
  if (state.public_noise) {
    return FailedPreconditionError(
        "retrain needed: this model's certified-removal noise was drawn from "
        "its recipe seed, which is public (a state written before "
        "lethe-newton-v3), so it is not certified; certified retraining "
        "draws a secret one");
  }
  LETHE_CORE_ASSIGN_OR_RETURN(torch::jit::Module model, CloneModel(original));
  LETHE_CORE_ASSIGN_OR_RETURN(Linear lin, FindLinear(model, data));
  LETHE_CORE_RETURN_IF_ERROR(CheckState(state, lin, partition));
  return Guarded("newton removal", [&]() -> Result<NewtonRemoval> {
    at::NoGradGuard no_grad;
    return Removal(model, lin, data, partition, state).Run();
  });
}

Result<double> GradientResidual(const torch::jit::Module& model,
                                const DeviceData& data,
                                const std::vector<int64_t>& rows, double lambda,
                                const Tensor& noise) {
  LETHE_CORE_ASSIGN_OR_RETURN(torch::jit::Module m, CloneModel(model));
  LETHE_CORE_ASSIGN_OR_RETURN(Linear lin, FindLinear(m, data));
  return Guarded("gradient residual", [&]() -> Result<double> {
    at::NoGradGuard no_grad;
    Tensor x = Design(m, lin, data, rows);
    Tensor y = OneHot(data, rows, lin.weight.size(0));
    Tensor b = noise.to(x.device(), at::kDouble);
    Tensor w = Stacked(lin).to(data.device);
    double reg = lambda * static_cast<double>(rows.size());
    return Gradient(w, x, y, b, reg).norm().item<double>();
  });
}

}  // namespace lethe::core
