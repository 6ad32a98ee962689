#include "lethe/core/train.h"

#include <cmath>
#include <random>

#include "guard.h"

namespace lethe::core {
namespace {

using internal::Guarded;

// torch.optim.SGD (dampening 0, no Nesterov) and torch.optim.Adam update
// rules, with L2 weight decay added to the gradient as both do.
class Optimiser {
 public:
  Optimiser(std::vector<at::Tensor> params, const Recipe& r)
      : params_(std::move(params)), r_(r) {
    for (const at::Tensor& p : params_) {
      state1_.push_back(at::zeros_like(p));
      if (r_.optimizer == Optimizer::kAdam)
        state2_.push_back(at::zeros_like(p));
    }
  }

  void Step(double lr, const std::vector<at::Tensor>* mask) {
    at::NoGradGuard no_grad;
    ++t_;
    // The gradients, masked once (SalUn); undefined for untouched parameters.
    std::vector<at::Tensor> grads(params_.size());
    for (size_t i = 0; i < params_.size(); ++i) {
      const at::Tensor& g = params_[i].grad();
      if (g.defined()) grads[i] = mask ? g * (*mask)[i] : g;
    }
    const double clip = ClipFactor(grads);
    for (size_t i = 0; i < params_.size(); ++i) {
      at::Tensor& p = params_[i];
      if (!grads[i].defined()) continue;
      at::Tensor g = grads[i];
      if (clip < 1) g = g * clip;
      if (r_.weight_decay > 0) g = g + r_.weight_decay * p;
      if (r_.optimizer == Optimizer::kSgdMomentum) {
        state1_[i].mul_(r_.momentum).add_(g);
        p.add_(state1_[i], -lr);
      } else {
        constexpr double b1 = 0.9, b2 = 0.999, eps = 1e-8;
        state1_[i].mul_(b1).add_(g, 1 - b1);
        state2_[i].mul_(b2).addcmul_(g, g, 1 - b2);
        double c1 = 1 - std::pow(b1, t_), c2 = 1 - std::pow(b2, t_);
        at::Tensor denom = (state2_[i].sqrt() / std::sqrt(c2)).add_(eps);
        p.addcdiv_(state1_[i], denom, -lr / c1);
      }
    }
  }

  // Recipe::max_grad_norm: the factor that scales `grads` down to that norm
  // (all of them together), or 1.
  double ClipFactor(const std::vector<at::Tensor>& grads) const {
    if (r_.max_grad_norm <= 0) return 1;
    std::vector<at::Tensor> norms;
    for (const at::Tensor& g : grads) {
      if (g.defined()) norms.push_back(g.norm());
    }
    if (norms.empty()) return 1;
    const double norm = at::stack(norms).norm().item<double>();
    return norm > r_.max_grad_norm ? r_.max_grad_norm / (norm + 1e-6) : 1;
  }

  void ZeroGrad() {
    for (at::Tensor& p : params_) {
      if (p.grad().defined()) p.mutable_grad() = at::Tensor();
    }
  }

 private:
  std::vector<at::Tensor> params_;
  const Recipe& r_;
  std::vector<at::Tensor> state1_, state2_;
  int64_t t_ = 0;
};

void Shuffle(std::vector<int64_t>& v, std::mt19937_64& rng) {
  for (size_t i = v.size(); i > 1; --i) {
    size_t j = static_cast<size_t>(rng() % i);
    std::swap(v[i - 1], v[j]);
  }
}

bool AllFinite(const std::vector<at::Tensor>& params) {
  for (const at::Tensor& p : params) {
    if (!at::isfinite(p).all().item<bool>()) return false;
  }
  return true;
}

}  // namespace

double ScheduledLearningRate(const Recipe& r, int64_t step, int64_t total) {
  const double warm =
      std::floor(r.warmup_fraction * static_cast<double>(total));
  const double s = static_cast<double>(step);
  if (s < warm) return r.lr * (s + 1) / (warm + 1);
  if (r.lr_schedule == LrSchedule::kConstant) return r.lr;
  return r.lr * (1.0 - (s - warm) / (static_cast<double>(total) - warm));
}

at::Device ToTorchDevice(const Device& device) {
  return device.is_cuda()
             ? at::Device(at::kCUDA,
                          static_cast<c10::DeviceIndex>(device.index))
             : at::Device(at::kCPU);
}

Result<DeviceData> ToDevice(const Dataset& data, const Device& device) {
  return Guarded("moving data to " + device.ToString(),
                 [&]() -> Result<DeviceData> {
                   DeviceData d;
                   d.device = ToTorchDevice(device);
                   d.features = data.features().to(d.device);
                   d.labels = data.labels().to(d.device);
                   return d;
                 });
}

at::Tensor RowTensor(const std::vector<int64_t>& rows, at::Device device) {
  return at::tensor(rows, at::kLong).to(device);
}

at::Tensor Forward(torch::jit::Module& module, const at::Tensor& x) {
  return module.forward({x}).toTensor();
}

std::vector<at::Tensor> TrainableParameters(torch::jit::Module& module) {
  std::vector<at::Tensor> params;
  for (at::Tensor p : module.parameters()) {
    p.requires_grad_(true);
    params.push_back(p);
  }
  return params;
}

Status RunTrainingLoop(torch::jit::Module& module,
                       const std::vector<int64_t>& rows, const Recipe& recipe,
                       const TrainControl& control, const BatchLoss& loss,
                       const StepRange& steps) {
  LETHE_CORE_RETURN_IF_ERROR(recipe.Validate());
  if (rows.empty()) return InvalidArgumentError("no rows to train on");
  const int64_t n = static_cast<int64_t>(rows.size());
  const int64_t per_epoch = (n + recipe.batch_size - 1) / recipe.batch_size;
  const int64_t total =
      steps.count > 0 ? steps.count : per_epoch * recipe.epochs;
  const int64_t offset = steps.count > 0 ? steps.offset : 0;
  const int64_t schedule =
      steps.count > 0 && steps.total > 0 ? steps.total : total;
  return Guarded("training", [&]() -> Status {
    std::vector<at::Tensor> params = TrainableParameters(module);
    if (params.empty()) return InvalidArgumentError("model has no parameters");
    at::Device device = params[0].device();
    Optimiser opt(params, recipe);
    std::mt19937_64 rng(recipe.seed);
    std::vector<int64_t> order = rows;
    module.train(true);
    // Epochs over a fresh shuffle each; the last one ends early when `total`
    // is not a whole number of epochs.
    for (int64_t step = 0, epoch = 0; step < total; ++epoch) {
      if (Clock::now() > control.deadline) {
        return DeadlineExceededError("time budget ran out in epoch " +
                                     std::to_string(epoch));
      }
      Shuffle(order, rng);
      for (int64_t b = 0; b < n && step < total; b += recipe.batch_size) {
        int64_t e = std::min(n, b + recipe.batch_size);
        std::vector<int64_t> batch(order.begin() + b, order.begin() + e);
        at::Tensor l = loss(RowTensor(batch, device));
        double value = l.item<double>();
        if (!std::isfinite(value) || std::abs(value) > control.max_abs_loss) {
          return AbortedError("diverged: loss " + std::to_string(value) +
                              " at epoch " + std::to_string(epoch) + ", step " +
                              std::to_string(step));
        }
        opt.ZeroGrad();
        l.backward();
        double lr = ScheduledLearningRate(recipe, offset + step, schedule);
        opt.Step(lr, control.grad_mask);
        ++step;
      }
    }
    opt.ZeroGrad();
    module.eval();
    if (!AllFinite(params)) {
      return AbortedError("diverged: parameters are not finite after training");
    }
    return OkStatus();
  });
}

Status TrainModel(torch::jit::Module& module, const DeviceData& data,
                  const std::vector<int64_t>& rows, const Recipe& recipe,
                  const TrainControl& control, const StepRange& steps) {
  return RunTrainingLoop(
      module, rows, recipe, control,
      [&](const at::Tensor& r) {
        at::Tensor logits = Forward(module, data.Rows(r));
        return at::cross_entropy_loss(logits, data.labels.index_select(0, r));
      },
      steps);
}

Result<EvalResult> Evaluate(torch::jit::Module& module, const DeviceData& data,
                            const std::vector<int64_t>& rows,
                            int64_t batch_size) {
  return Guarded("evaluating", [&]() -> Result<EvalResult> {
    at::NoGradGuard no_grad;
    module.eval();
    EvalResult out;
    out.losses.reserve(rows.size());
    const int64_t n = static_cast<int64_t>(rows.size());
    for (int64_t b = 0; b < n; b += batch_size) {
      int64_t e = std::min(n, b + batch_size);
      at::Tensor r =
          RowTensor(std::vector<int64_t>(rows.begin() + b, rows.begin() + e),
                    data.device);
      at::Tensor y = data.labels.index_select(0, r);
      at::Tensor logits = Forward(module, data.Rows(r));
      at::Tensor losses =
          at::cross_entropy_loss(logits, y, {}, at::Reduction::None)
              .to(at::kFloat)
              .cpu()
              .contiguous();
      at::Tensor hit = logits.argmax(1).eq(y).to(at::kByte).cpu().contiguous();
      // LiRA's confidence, log(p_y / (1 - p_y)), from the logits: z_y minus
      // the log-sum-exp of the others. Exact where p_y rounds to 1 in
      // float32 and the loss to 0.
      at::Tensor z = logits.to(at::kFloat);
      at::Tensor label = y.unsqueeze(1);
      at::Tensor others =
          z.scatter(1, label, -std::numeric_limits<float>::infinity());
      at::Tensor phi =
          (z.gather(1, label).squeeze(1) - at::logsumexp(others, 1))
              .cpu()
              .contiguous();
      const float* f = phi.data_ptr<float>();
      out.confidences.insert(out.confidences.end(), f, f + phi.numel());
      out.correct += hit.sum().item<int64_t>();
      const float* p = losses.data_ptr<float>();
      out.losses.insert(out.losses.end(), p, p + losses.numel());
      const auto* h = hit.data_ptr<uint8_t>();
      out.hits.insert(out.hits.end(), h, h + hit.numel());
    }
    return out;
  });
}

}  // namespace lethe::core
