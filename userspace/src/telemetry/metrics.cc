#include "telemetry/metrics.h"

#include <charconv>
#include <cmath>

namespace ramjet::telemetry {

namespace {
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// The format's escapes: backslash and line feed always, double quote in label values.
void append_escaped(std::string& out, std::string_view s, bool quote) {
  for (char c : s) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else if (c == '"' && quote)
      out += "\\\"";
    else
      out += c;
  }
}
}  // namespace

const char* to_string(MetricType t) {
  switch (t) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kUntyped:
      return "untyped";
  }
  return "untyped";
}

bool valid_metric_name(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = is_alpha(c) || c == '_' || c == ':' || (i > 0 && is_digit(c));
    if (!ok) return false;
  }
  return true;
}

bool valid_label_name(std::string_view name) {
  if (name.empty() || name.starts_with("__")) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = is_alpha(c) || c == '_' || (i > 0 && is_digit(c));
    if (!ok) return false;
  }
  return true;
}

void append_label_value(std::string& out, std::string_view value) {
  append_escaped(out, value, /*quote=*/true);
}

void append_help_text(std::string& out, std::string_view help) {
  append_escaped(out, help, /*quote=*/false);
}

void append_value(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
    return;
  }
  if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buf[32];
  // Counters are integers; below 2^53 a double holds them exactly, so print no
  // exponent or fraction for them.
  if (value == std::trunc(value) && std::fabs(value) < 9007199254740992.0) {
    auto r = std::to_chars(buf, buf + sizeof buf, static_cast<std::int64_t>(value));
    out.append(buf, r.ptr);
    return;
  }
  auto r = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, r.ptr);
}

bool MetricsWriter::family(std::string_view name, MetricType type, std::string_view help) {
  current_.clear();
  if (!valid_metric_name(name) || !seen_.emplace(name).second) {
    ++rejected_;
    return false;
  }
  current_ = std::string(name);
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  append_help_text(out_, help);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += to_string(type);
  out_ += '\n';
  return true;
}

void MetricsWriter::sample(std::span<const Label> labels, double value) {
  if (current_.empty()) {
    ++rejected_;
    return;
  }
  for (const Label& l : labels) {
    if (!valid_label_name(l.name)) {
      ++rejected_;
      return;
    }
  }
  out_ += current_;
  if (!labels.empty()) {
    out_ += '{';
    bool first = true;
    for (const Label& l : labels) {
      if (!first) out_ += ',';
      first = false;
      out_ += l.name;
      out_ += "=\"";
      append_label_value(out_, l.value);
      out_ += '"';
    }
    out_ += '}';
  }
  out_ += ' ';
  append_value(out_, value);
  out_ += '\n';
}

MetricsRegistry::SourceId MetricsRegistry::add_source(Source source) {
  std::lock_guard lock(mu_);
  SourceId id = next_id_++;
  sources_.emplace_back(id, std::move(source));
  return id;
}

void MetricsRegistry::remove_source(SourceId id) {
  std::lock_guard lock(mu_);
  std::erase_if(sources_, [id](const auto& s) { return s.first == id; });
}

std::string MetricsRegistry::collect() const {
  MetricsWriter w;
  // Held for the whole scrape, so remove_source() waits for a running scrape and
  // a removed source is never called afterwards.
  std::lock_guard lock(mu_);
  for (const auto& [id, source] : sources_) source(w);
  return std::move(w).text();
}

}  // namespace ramjet::telemetry
