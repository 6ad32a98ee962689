// Retrain and the approximate methods. Sources in policy.h.
#include <random>

#include "guard.h"
#include "lethe/core/methods.h"
#include "lethe/core/model.h"

namespace lethe::core {
namespace {

using internal::Guarded;

Result<torch::jit::Module> Student(const torch::jit::Module& original) {
  LETHE_CORE_ASSIGN_OR_RETURN(torch::jit::Module m, CloneModel(original));
  return m;
}

Recipe With(const Recipe& base, int epochs, double lr, LrSchedule schedule,
            uint64_t seed) {
  Recipe r = base;
  r.epochs = epochs;
  r.lr = lr;
  r.lr_schedule = schedule;
  r.warmup_fraction = 0.0;
  r.seed = seed;
  return r;
}

at::Tensor CrossEntropy(torch::jit::Module& m, const DeviceData& d,
                        const at::Tensor& rows, const at::Tensor& labels) {
  return at::cross_entropy_loss(Forward(m, d.Rows(rows)),
                                labels.index_select(0, rows));
}

// The stored labels with every forget row given a uniformly drawn wrong class.
at::Tensor RandomWrongLabels(const DeviceData& d, const Partition& p,
                             int64_t num_classes, uint64_t seed) {
  at::Tensor labels = d.labels.cpu().clone();
  int64_t* y = labels.data_ptr<int64_t>();
  std::mt19937_64 rng(seed);
  for (int64_t row : p.forget) {
    int64_t shift = 1 + static_cast<int64_t>(rng() % (num_classes - 1));
    y[row] = (y[row] + shift) % num_classes;
  }
  return labels.to(d.device);
}

Result<int64_t> NumClasses(torch::jit::Module& m, const DeviceData& d) {
  return Guarded("probing model", [&]() -> Result<int64_t> {
    at::NoGradGuard no_grad;
    m.eval();
    return Forward(m, d.First(1)).size(1);
  });
}

std::vector<int64_t> Concat(const std::vector<int64_t>& a,
                            const std::vector<int64_t>& b) {
  std::vector<int64_t> out = a;
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

// Forget batches drawn cyclically from a seeded shuffle of the forget set.
class ForgetStream {
 public:
  ForgetStream(const std::vector<int64_t>& rows, int64_t batch, uint64_t seed,
               at::Device device)
      : rows_(rows), batch_(batch), rng_(seed), device_(device) {}

  at::Tensor Next() {
    std::vector<int64_t> out;
    while (static_cast<int64_t>(out.size()) < batch_) {
      if (pos_ == 0) {
        for (size_t i = rows_.size(); i > 1; --i) {
          std::swap(rows_[i - 1], rows_[static_cast<size_t>(rng_() % i)]);
        }
      }
      out.push_back(rows_[pos_]);
      pos_ = (pos_ + 1) % rows_.size();
      if (pos_ == 0 && static_cast<int64_t>(rows_.size()) < batch_) break;
    }
    return RowTensor(out, device_);
  }

 private:
  std::vector<int64_t> rows_;
  int64_t batch_;
  std::mt19937_64 rng_;
  at::Device device_;
  size_t pos_ = 0;
};

at::Tensor Kl(const at::Tensor& teacher_logits,
              const at::Tensor& student_logits, double t) {
  at::Tensor lt = at::log_softmax(teacher_logits / t, 1);
  at::Tensor ls = at::log_softmax(student_logits / t, 1);
  return (lt.exp() * (lt - ls)).sum(1).mean() * (t * t);
}

Result<torch::jit::Module> TrainOnLabels(const torch::jit::Module& original,
                                         const MethodContext& ctx, int epochs,
                                         double lr, const at::Tensor& labels,
                                         const std::vector<at::Tensor>* mask) {
  LETHE_CORE_ASSIGN_OR_RETURN(torch::jit::Module m, Student(original));
  Recipe r = With(ctx.recipe, epochs, lr, LrSchedule::kConstant, ctx.seed);
  TrainControl control = ctx.control;
  control.grad_mask = mask;
  LETHE_CORE_RETURN_IF_ERROR(
      RunTrainingLoop(m, Concat(ctx.partition.forget, ctx.partition.retain), r,
                      control, [&](const at::Tensor& rows) {
                        return CrossEntropy(m, ctx.data, rows, labels);
                      }));
  return m;
}

}  // namespace

Result<torch::jit::Module> Retrain(const torch::jit::Module& original,
                                   const MethodContext& ctx) {
  LETHE_CORE_ASSIGN_OR_RETURN(torch::jit::Module m, Student(original));
  LETHE_CORE_RETURN_IF_ERROR(ReinitializeModel(m, ctx.recipe.seed));
  LETHE_CORE_RETURN_IF_ERROR(Guarded("moving model", [&]() -> Status {
    m.to(ctx.data.device);
    return OkStatus();
  }));
  LETHE_CORE_RETURN_IF_ERROR(
      TrainModel(m, ctx.data, ctx.partition.retain, ctx.recipe, ctx.control));
  return m;
}

namespace {

// The head re-fit (policy.h, HeadRefitParams): the trunk's outputs on the
// retain set, computed once, then head training on them; trunk parameters get
// no gradient, so the optimiser leaves them as they are.
Status RefitHead(torch::jit::Module& m, const MethodContext& ctx) {
  const HeadRefitParams& p = ctx.params.head_refit;
  Recipe r = With(ctx.recipe, p.epochs, p.lr, LrSchedule::kLinearDecay,
                  ctx.seed + 101);  // a batch order of its own
  if (p.batch > 0) r.batch_size = p.batch;
  const std::vector<int64_t>& retain = ctx.partition.retain;
  at::Tensor trunk_out, labels;
  LETHE_CORE_RETURN_IF_ERROR(
      Guarded("computing the trunk's outputs", [&]() -> Status {
        at::NoGradGuard no_grad;
        m.eval();
        torch::jit::Method trunk = m.get_method("trunk");
        std::vector<at::Tensor> parts;
        const int64_t n = static_cast<int64_t>(retain.size()), chunk = 4096;
        for (int64_t b = 0; b < n; b += chunk) {
          at::Tensor rows = RowTensor(
              std::vector<int64_t>(retain.begin() + b,
                                   retain.begin() + std::min(n, b + chunk)),
              ctx.data.device);
          parts.push_back(trunk({ctx.data.Rows(rows)}).toTensor());
        }
        trunk_out = at::cat(parts);
        labels =
            ctx.data.labels.index_select(0, RowTensor(retain, ctx.data.device));
        return OkStatus();
      }));
  std::vector<int64_t> positions(retain.size());
  for (size_t i = 0; i < positions.size(); ++i)
    positions[i] = static_cast<int64_t>(i);
  torch::jit::Method head = m.get_method("head");
  return RunTrainingLoop(
      m, positions, r, ctx.control, [&](const at::Tensor& pos) {
        return at::cross_entropy_loss(
            head({trunk_out.index_select(0, pos)}).toTensor(),
            labels.index_select(0, pos));
      });
}

Result<torch::jit::Module> FinetuneOnly(const torch::jit::Module& original,
                                        const MethodContext& ctx) {
  const FinetuneParams& p = ctx.params.finetune;
  LETHE_CORE_ASSIGN_OR_RETURN(torch::jit::Module m, Student(original));
  Recipe r =
      With(ctx.recipe, p.epochs, p.lr, LrSchedule::kLinearDecay, ctx.seed);
  r.warmup_fraction = p.warmup;
  r.max_grad_norm = p.max_grad_norm;
  LETHE_CORE_RETURN_IF_ERROR(
      TrainModel(m, ctx.data, ctx.partition.retain, r, ctx.control));
  return m;
}

Result<torch::jit::Module> NegGradPlusOnly(const torch::jit::Module& original,
                                           const MethodContext& ctx) {
  const NegGradPlusParams& p = ctx.params.neggrad_plus;
  LETHE_CORE_ASSIGN_OR_RETURN(torch::jit::Module m, Student(original));
  Recipe r = With(ctx.recipe, p.epochs, p.lr, LrSchedule::kConstant, ctx.seed);
  ForgetStream forget(ctx.partition.forget, r.batch_size, ctx.seed + 1,
                      ctx.data.device);
  LETHE_CORE_RETURN_IF_ERROR(RunTrainingLoop(
      m, ctx.partition.retain, r, ctx.control, [&](const at::Tensor& rows) {
        at::Tensor keep = CrossEntropy(m, ctx.data, rows, ctx.data.labels);
        at::Tensor drop =
            CrossEntropy(m, ctx.data, forget.Next(), ctx.data.labels);
        return p.beta * keep - (1 - p.beta) * drop;
      }));
  return m;
}

Result<torch::jit::Module> ScrubOnly(const torch::jit::Module& original,
                                     const MethodContext& ctx) {
  const ScrubParams& p = ctx.params.scrub;
  LETHE_CORE_ASSIGN_OR_RETURN(torch::jit::Module teacher, Student(original));
  LETHE_CORE_ASSIGN_OR_RETURN(torch::jit::Module m, Student(original));
  auto teacher_logits = [&](const at::Tensor& x) {
    at::NoGradGuard no_grad;
    teacher.eval();
    return Forward(teacher, x);
  };
  for (int e = 0; e < p.epochs; ++e) {
    Recipe r = With(ctx.recipe, 1, p.lr, LrSchedule::kConstant,
                    ctx.seed + 2 * static_cast<uint64_t>(e));
    if (e < p.max_epochs) {
      LETHE_CORE_RETURN_IF_ERROR(RunTrainingLoop(
          m, ctx.partition.forget, r, ctx.control, [&](const at::Tensor& rows) {
            at::Tensor x = ctx.data.Rows(rows);
            return -Kl(teacher_logits(x), Forward(m, x), p.temperature);
          }));
    }
    r.seed += 1;
    LETHE_CORE_RETURN_IF_ERROR(RunTrainingLoop(
        m, ctx.partition.retain, r, ctx.control, [&](const at::Tensor& rows) {
          at::Tensor x = ctx.data.Rows(rows);
          at::Tensor logits = Forward(m, x);
          return p.alpha * Kl(teacher_logits(x), logits, p.temperature) +
                 p.gamma * at::cross_entropy_loss(
                               logits, ctx.data.labels.index_select(0, rows));
        }));
  }
  return m;
}

Result<torch::jit::Module> RandomLabelOnly(const torch::jit::Module& original,
                                           const MethodContext& ctx) {
  const RandomLabelParams& p = ctx.params.random_label;
  LETHE_CORE_ASSIGN_OR_RETURN(torch::jit::Module probe, Student(original));
  LETHE_CORE_ASSIGN_OR_RETURN(int64_t classes, NumClasses(probe, ctx.data));
  at::Tensor labels =
      RandomWrongLabels(ctx.data, ctx.partition, classes, ctx.seed + 7);
  return TrainOnLabels(original, ctx, p.epochs, p.lr, labels, nullptr);
}

Result<torch::jit::Module> SalunOnly(const torch::jit::Module& original,
                                     const MethodContext& ctx) {
  const SalunParams& p = ctx.params.salun;
  if (!(p.salient > 0 && p.salient <= 1)) {
    return InvalidArgumentError("salun: salient must be in (0, 1]");
  }
  LETHE_CORE_ASSIGN_OR_RETURN(torch::jit::Module probe, Student(original));
  LETHE_CORE_ASSIGN_OR_RETURN(int64_t classes, NumClasses(probe, ctx.data));
  std::vector<at::Tensor> mask;
  LETHE_CORE_RETURN_IF_ERROR(Guarded("salun saliency", [&]() -> Status {
    // Gradient of the forget loss (sum over the forget set) at the original.
    std::vector<at::Tensor> params = TrainableParameters(probe);
    probe.eval();
    const std::vector<int64_t>& f = ctx.partition.forget;
    for (size_t b = 0; b < f.size(); b += 256) {
      std::vector<int64_t> chunk(f.begin() + b,
                                 f.begin() + std::min(f.size(), b + 256));
      at::Tensor rows = RowTensor(chunk, ctx.data.device);
      at::Tensor loss = at::cross_entropy_loss(
          Forward(probe, ctx.data.Rows(rows)),
          ctx.data.labels.index_select(0, rows), {}, at::Reduction::Sum);
      loss.backward();
    }
    std::vector<at::Tensor> mags;
    for (at::Tensor& q : params) {
      mags.push_back(q.grad().defined() ? q.grad().abs().flatten()
                                        : at::zeros({q.numel()}, q.options()));
    }
    at::Tensor all = at::cat(mags);
    int64_t k = std::max<int64_t>(
        1, static_cast<int64_t>(static_cast<double>(all.numel()) * p.salient));
    // The k-th largest magnitude is the threshold.
    double threshold =
        std::get<0>(all.kthvalue(all.numel() - k + 1)).item<double>();
    for (at::Tensor& m : mags) {
      mask.push_back(m.ge(threshold).to(at::kFloat));
    }
    for (size_t i = 0; i < params.size(); ++i) {
      mask[i] = mask[i].view(params[i].sizes());
    }
    return OkStatus();
  }));
  at::Tensor labels =
      RandomWrongLabels(ctx.data, ctx.partition, classes, ctx.seed + 7);
  return TrainOnLabels(original, ctx, p.epochs, p.lr, labels, &mask);
}

using MethodFn = Result<torch::jit::Module> (*)(const torch::jit::Module&,
                                                const MethodContext&);

// The method, then the head re-fit when asked for (HeadRefitParams).
Result<torch::jit::Module> ThenRefitHead(MethodFn method,
                                         const torch::jit::Module& original,
                                         const MethodContext& ctx) {
  if (ctx.params.head_refit.epochs <= 0) return method(original, ctx);
  if (!original.find_method("trunk").has_value() ||
      !original.find_method("head").has_value()) {
    return FailedPreconditionError(
        "the head re-fit needs a model with trunk(x) and head(h) methods and "
        "forward(x) = head(trunk(x)) (built-in mlp and cnn have them)");
  }
  LETHE_CORE_ASSIGN_OR_RETURN(torch::jit::Module m, method(original, ctx));
  LETHE_CORE_RETURN_IF_ERROR(RefitHead(m, ctx));
  return m;
}

}  // namespace

Result<torch::jit::Module> Finetune(const torch::jit::Module& original,
                                    const MethodContext& ctx) {
  return ThenRefitHead(&FinetuneOnly, original, ctx);
}

Result<torch::jit::Module> NegGradPlus(const torch::jit::Module& original,
                                       const MethodContext& ctx) {
  return ThenRefitHead(&NegGradPlusOnly, original, ctx);
}

Result<torch::jit::Module> Scrub(const torch::jit::Module& original,
                                 const MethodContext& ctx) {
  return ThenRefitHead(&ScrubOnly, original, ctx);
}

Result<torch::jit::Module> RandomLabel(const torch::jit::Module& original,
                                       const MethodContext& ctx) {
  return ThenRefitHead(&RandomLabelOnly, original, ctx);
}

Result<torch::jit::Module> Salun(const torch::jit::Module& original,
                                 const MethodContext& ctx) {
  return ThenRefitHead(&SalunOnly, original, ctx);
}

}  // namespace lethe::core
