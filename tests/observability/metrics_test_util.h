// Reading samples out of collected metric families, for tests that check a
// registry (or a collector) without going through HTTP.
#ifndef LETHE_TESTS_OBSERVABILITY_METRICS_TEST_UTIL_H_
#define LETHE_TESTS_OBSERVABILITY_METRICS_TEST_UTIL_H_

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <prometheus/metric_family.h>

namespace lethe::testing {

// The one sample of family `name` whose labels include all of `want`;
// nullopt if none or several match (so a test asking for too little fails).
inline std::optional<prometheus::ClientMetric> FindSample(
    const std::vector<prometheus::MetricFamily>& families,
    const std::string& name, const std::map<std::string, std::string>& want) {
  std::optional<prometheus::ClientMetric> found;
  for (const auto& f : families) {
    if (f.name != name) continue;
    for (const auto& m : f.metric) {
      const bool match = std::all_of(want.begin(), want.end(), [&](auto& kv) {
        return std::any_of(m.label.begin(), m.label.end(), [&](auto& l) {
          return l.name == kv.first && l.value == kv.second;
        });
      });
      if (!match) continue;
      if (found) return std::nullopt;
      found = m;
    }
  }
  return found;
}

inline double CounterValue(const std::vector<prometheus::MetricFamily>& f,
                           const std::string& name,
                           const std::map<std::string, std::string>& want) {
  auto m = FindSample(f, name, want);
  return m ? m->counter.value : -1;
}

inline double GaugeValue(const std::vector<prometheus::MetricFamily>& f,
                         const std::string& name,
                         const std::map<std::string, std::string>& want = {}) {
  auto m = FindSample(f, name, want);
  return m ? m->gauge.value : -1;
}

inline int64_t HistogramCount(const std::vector<prometheus::MetricFamily>& f,
                              const std::string& name,
                              const std::map<std::string, std::string>& want) {
  auto m = FindSample(f, name, want);
  return m ? static_cast<int64_t>(m->histogram.sample_count) : -1;
}

}  // namespace lethe::testing

#endif  // LETHE_TESTS_OBSERVABILITY_METRICS_TEST_UTIL_H_
