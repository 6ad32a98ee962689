#include <algorithm>
#include <limits>
#include <random>

#include "guard.h"
#include "lethe/core/methods.h"

namespace lethe::core {

std::vector<int64_t> RetainSample(const Partition& p, int64_t n,
                                  uint64_t seed) {
  std::vector<int64_t> rows = p.retain;
  std::mt19937_64 rng(seed ^ 0x5eed5a3b1e5ULL);
  for (size_t i = rows.size(); i > 1; --i) {
    std::swap(rows[i - 1], rows[static_cast<size_t>(rng() % i)]);
  }
  if (static_cast<int64_t>(rows.size()) > n)
    rows.resize(static_cast<size_t>(n));
  std::sort(rows.begin(), rows.end());
  return rows;
}

Result<Measurement> Measure(torch::jit::Module& model, const DeviceData& data,
                            const Partition& p,
                            const std::vector<int64_t>& retain_sample) {
  LETHE_CORE_ASSIGN_OR_RETURN(EvalResult forget,
                              Evaluate(model, data, p.forget));
  LETHE_CORE_ASSIGN_OR_RETURN(EvalResult retain,
                              Evaluate(model, data, retain_sample));
  LETHE_CORE_ASSIGN_OR_RETURN(EvalResult test, Evaluate(model, data, p.test));
  LETHE_CORE_ASSIGN_OR_RETURN(EvalResult validation,
                              Evaluate(model, data, p.validation));
  Measurement out;
  Metrics& m = out.metrics;
  m.ua = 1.0 - forget.accuracy();
  m.ra = retain.accuracy();
  m.ta = test.accuracy();
  m.mia_auc = LossThresholdAuc(forget.losses, test.losses);
  m.va = validation.accuracy();
  out.forget = RecordScores{std::move(forget.losses), std::move(forget.hits),
                            std::move(forget.confidences)};
  out.validation =
      RecordScores{std::move(validation.losses), std::move(validation.hits),
                   std::move(validation.confidences)};
  return out;
}

Result<Metrics> ComputeMetrics(torch::jit::Module& model,
                               const DeviceData& data, const Partition& p,
                               const std::vector<int64_t>& retain_sample) {
  LETHE_CORE_ASSIGN_OR_RETURN(Measurement m,
                              Measure(model, data, p, retain_sample));
  return m.metrics;
}

namespace {

// MatchNeighbours without its guard: validation rows in chunks, each
// against every forget row in chunks; each forget row keeps its best k so
// far (distance, position), of its own label and of any. Memory stays at a
// chunk of each side (at most 32 MiB of float32 features each, fewer rows
// for wide records) whatever the split's size.
NeighbourMatches Match(const DeviceData& data,
                       const std::vector<int64_t>& forget,
                       const std::vector<int64_t>& validation, int64_t k,
                       const std::vector<int64_t>& forget_subject,
                       const std::vector<int64_t>& validation_subject) {
  const bool by_subject = !forget_subject.empty() &&
                          forget_subject.size() == forget.size() &&
                          validation_subject.size() == validation.size();
  const at::Tensor f_subject =
      by_subject ? at::tensor(forget_subject, at::kLong) : at::Tensor();
  const at::Tensor v_subject =
      by_subject ? at::tensor(validation_subject, at::kLong) : at::Tensor();
  at::NoGradGuard no_grad;
  const int64_t row_floats = std::max<int64_t>(
      1, data.features.numel() / std::max<int64_t>(1, data.features.size(0)));
  const int64_t chunk_rows =
      std::max<int64_t>(1, (int64_t{32} << 20) / (4 * row_floats));
  const int64_t validation_chunk = std::min<int64_t>(8192, chunk_rows);
  const int64_t forget_chunk = std::min<int64_t>(1024, chunk_rows);
  const auto n_forget = static_cast<int64_t>(forget.size());
  const auto n_validation = static_cast<int64_t>(validation.size());
  const at::Tensor forget_rows = RowTensor(forget, data.device);
  const at::Tensor validation_rows = RowTensor(validation, data.device);
  const at::Tensor forget_labels =
      data.labels.index_select(0, forget_rows).to(at::kLong);
  const at::Tensor validation_labels =
      data.labels.index_select(0, validation_rows).to(at::kLong);
  const double inf = std::numeric_limits<double>::infinity();
  // Distance infinity and position -1: no neighbour (yet).
  at::Tensor best_same = at::full({n_forget, k}, inf, at::kFloat);
  at::Tensor best_same_at = at::full({n_forget, k}, -1, at::kLong);
  at::Tensor best_any = best_same.clone();
  at::Tensor best_any_at = best_same_at.clone();
  auto keep = [k](at::Tensor& best, at::Tensor& best_at, int64_t f0, int64_t fn,
                  const at::Tensor& d, const at::Tensor& at) {
    const at::Tensor all = at::cat({best.narrow(0, f0, fn), d}, 1);
    const at::Tensor all_at = at::cat({best_at.narrow(0, f0, fn), at}, 1);
    auto [v, i] = all.topk(k, 1, /*largest=*/false, /*sorted=*/true);
    best.narrow(0, f0, fn).copy_(v);
    best_at.narrow(0, f0, fn).copy_(all_at.gather(1, i));
  };
  for (int64_t v0 = 0; v0 < n_validation; v0 += validation_chunk) {
    const int64_t vn = std::min(validation_chunk, n_validation - v0);
    const at::Tensor vx =
        data.Rows(validation_rows.narrow(0, v0, vn)).flatten(1).to(at::kFloat);
    const at::Tensor vsq = (vx * vx).sum(1);
    const at::Tensor vlab = validation_labels.narrow(0, v0, vn);
    for (int64_t f0 = 0; f0 < n_forget; f0 += forget_chunk) {
      const int64_t fn = std::min(forget_chunk, n_forget - f0);
      const at::Tensor fx =
          data.Rows(forget_rows.narrow(0, f0, fn)).flatten(1).to(at::kFloat);
      // |f - v|^2 = |f|^2 - 2 f.v + |v|^2, clamped at 0 against rounding.
      const at::Tensor d =
          ((fx * fx).sum(1, true) - 2 * fx.mm(vx.t()) + vsq.unsqueeze(0))
              .clamp_min(0)
              .cpu();
      at::Tensor same =
          (forget_labels.narrow(0, f0, fn).unsqueeze(1) == vlab.unsqueeze(0))
              .cpu();
      at::Tensor d_any = d;
      if (by_subject) {
        const at::Tensor own = f_subject.narrow(0, f0, fn).unsqueeze(1) ==
                               v_subject.narrow(0, v0, vn).unsqueeze(0);
        same = same.logical_and(own.logical_not());
        d_any = d.masked_fill(own, inf);
      }
      const at::Tensor at =
          at::arange(v0, v0 + vn, at::kLong).unsqueeze(0).expand({fn, vn});
      keep(best_same, best_same_at, f0, fn,
           d.masked_fill(same.logical_not(), inf), at);
      keep(best_any, best_any_at, f0, fn, d_any, at);
    }
  }
  // Same label first; a label with no validation record: any label.
  NeighbourMatches m;
  m.k = k;
  m.index.assign(static_cast<size_t>(n_forget * k), -1);
  const auto same_d = best_same.accessor<float, 2>();
  const auto same_at = best_same_at.accessor<int64_t, 2>();
  const auto any_at = best_any_at.accessor<int64_t, 2>();
  const auto any_d = best_any.accessor<float, 2>();
  for (int64_t i = 0; i < n_forget; ++i) {
    int64_t found = 0;
    for (int64_t j = 0; j < k && same_d[i][j] != inf; ++j) {
      m.index[static_cast<size_t>(i * k + found++)] = same_at[i][j];
    }
    for (int64_t j = 0; found == 0 && j < k && any_d[i][j] != inf; ++j) {
      m.index[static_cast<size_t>(i * k + j)] = any_at[i][j];
    }
  }
  return m;
}

}  // namespace

Result<NeighbourMatches> MatchNeighbours(
    const DeviceData& data, const std::vector<int64_t>& forget,
    const std::vector<int64_t>& validation, int64_t k,
    const std::vector<int64_t>& forget_subject,
    const std::vector<int64_t>& validation_subject) {
  if (k <= 0 || validation.empty() || forget.empty()) return NeighbourMatches{};
  return internal::Guarded("matching neighbours",
                           [&]() -> Result<NeighbourMatches> {
                             return Match(data, forget, validation, k,
                                          forget_subject, validation_subject);
                           });
}

Result<NeighbourMatches> MatchForNull(
    const DeviceData& data, const std::vector<int64_t>& forget,
    const std::vector<int64_t>& validation,
    const std::vector<int64_t>& validation_subject, int64_t k,
    int64_t reference, uint64_t seed) {
  LETHE_CORE_ASSIGN_OR_RETURN(NeighbourMatches m,
                              MatchNeighbours(data, forget, validation, k));
  if (m.k == 0 || reference <= 0) return m;
  // A seeded draw of validation positions, in order.
  std::vector<int64_t> positions(validation.size());
  for (size_t i = 0; i < positions.size(); ++i) {
    positions[i] = static_cast<int64_t>(i);
  }
  std::mt19937_64 rng(seed ^ 0x0ff5e7b1a5ULL);
  for (size_t i = positions.size(); i > 1; --i) {
    std::swap(positions[i - 1], positions[static_cast<size_t>(rng() % i)]);
  }
  if (static_cast<int64_t>(positions.size()) > reference) {
    positions.resize(static_cast<size_t>(reference));
  }
  std::sort(positions.begin(), positions.end());
  std::vector<int64_t> rows, subjects;
  for (int64_t p : positions) {
    rows.push_back(validation[static_cast<size_t>(p)]);
    subjects.push_back(validation_subject[static_cast<size_t>(p)]);
  }
  LETHE_CORE_ASSIGN_OR_RETURN(
      NeighbourMatches r,
      MatchNeighbours(data, rows, validation, k, subjects, validation_subject));
  m.reference = std::move(positions);
  m.reference_index = std::move(r.index);
  if (m.reference_index.empty()) m.reference.clear();
  return m;
}

}  // namespace lethe::core
