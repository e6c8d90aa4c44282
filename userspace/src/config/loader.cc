// YAML text -> settings::Node tree -> Config. yaml-cpp stays inside this file: it throws,
// so every call into it is wrapped and turned into an Error at this boundary.
#include <fcntl.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>

#include "ramjet/config/config.h"
#include "tree.h"
#include "validate.h"

namespace ramjet::config {
namespace {

using settings::Mark;
using settings::Node;

// Aliases let a small document describe a huge (or cyclic) tree; real configs are far
// below these limits.
constexpr int kMaxDepth = 64;
constexpr std::size_t kMaxNodes = 100'000;

Mark mark_of(const YAML::Mark& m) {
  if (m.line < 0 || m.column < 0) return {};
  return {m.line + 1, m.column + 1};
}

std::string position(std::string_view filename, Mark mark) {
  std::string out(filename);
  out += ':' + std::to_string(mark.line > 0 ? mark.line : 1);
  out += ':' + std::to_string(mark.column > 0 ? mark.column : 1);
  return out;
}

std::string format(std::string_view filename, const settings::Diagnostic& d) {
  std::string out = position(filename, d.mark) + ": ";
  if (!d.path.empty()) out += d.path + ": ";
  return out + d.message;
}

// yaml-cpp's message for an unquoted "[::1]:80" ("end of map not found") does not say
// what to do, and it is the most common syntax error in a proxy config.
std::string syntax_hint(std::string_view yaml, int line0) {
  std::size_t begin = 0;
  for (int i = 0; i < line0 && begin != std::string_view::npos; ++i) {
    begin = yaml.find('\n', begin);
    if (begin != std::string_view::npos) ++begin;
  }
  if (begin == std::string_view::npos || begin > yaml.size()) return "";
  std::string_view line = yaml.substr(begin, yaml.find('\n', begin) - begin);
  auto close = line.find("]:");
  bool unquoted_v6 = close != std::string_view::npos && close + 2 < line.size() &&
                     line[close + 2] >= '0' && line[close + 2] <= '9' &&
                     line.find('"') == std::string_view::npos &&
                     line.find('\'') == std::string_view::npos;
  return unquoted_v6 ? " (quote IPv6 addresses: \"[::1]:80\")" : "";
}

class Converter {
 public:
  // Fills `out` from `in`; on failure sets error() and returns false.
  bool convert(const YAML::Node& in, Node& out, int depth) {
    if (depth > kMaxDepth) return fail(mark_of(in.Mark()), "document nested too deeply");
    if (++nodes_ > kMaxNodes) return fail(mark_of(in.Mark()), "document too large");
    out.mark = mark_of(in.Mark());
    switch (in.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        out.kind = Node::Kind::kNull;
        return true;
      case YAML::NodeType::Scalar:
        out.kind = Node::Kind::kScalar;
        out.scalar = in.Scalar();
        out.quoted = in.Tag() == "!";
        return true;
      case YAML::NodeType::Sequence:
        out.kind = Node::Kind::kSequence;
        out.items.reserve(in.size());
        for (const YAML::Node& item : in) {
          Node& n = out.items.emplace_back();
          if (!convert(item, n, depth + 1)) return false;
          if (n.is_null() && n.mark.line == 0) n.mark = out.mark;
        }
        return true;
      case YAML::NodeType::Map:
        out.kind = Node::Kind::kMap;
        for (auto it = in.begin(); it != in.end(); ++it) {
          // The iterator yields a temporary pair; copies keep the nodes alive (they are
          // reference-counted handles).
          const YAML::Node key = it->first;
          const YAML::Node value = it->second;
          if (!key.IsScalar()) {
            std::string kind = key.IsNull() ? "null" : key.IsSequence() ? "sequence" : "mapping";
            return fail(mark_of(key.Mark()), "keys must be plain text, got a " + kind);
          }
          settings::MapEntry& e = out.entries.emplace_back();
          e.key = key.Scalar();
          e.key_mark = mark_of(key.Mark());
          if (!convert(value, e.value, depth + 1)) return false;
          // yaml-cpp marks an empty value ("key:") at the next token, often on a later
          // line; the key is where the operator should look.
          if (e.value.is_null() &&
              (e.value.mark.line == 0 || e.value.mark.line != e.key_mark.line)) {
            e.value.mark = e.key_mark;
          }
        }
        return true;
    }
    return fail(out.mark, "unsupported YAML node");
  }

  const settings::Diagnostic& error() const { return error_; }

 private:
  bool fail(Mark mark, std::string message) {
    error_ = settings::Diagnostic{mark, "", std::move(message)};
    return false;
  }

  std::size_t nodes_ = 0;
  settings::Diagnostic error_;
};

// TLS files named relatively are taken from the config file's directory (a config and its
// certs/ folder move together).
void resolve_tls_paths(Config& config, std::string_view filename) {
  std::filesystem::path dir = std::filesystem::path(filename).parent_path();
  auto fix = [&](std::string& p) {
    if (!p.empty() && p != "system" && std::filesystem::path(p).is_relative() && !dir.empty())
      p = (dir / p).string();
  };
  for (Endpoint& ep : config.endpoints) {
    if (ep.tls) {
      for (TlsCertificate& c : ep.tls->certificates) {
        fix(c.cert);
        fix(c.key);
        fix(c.ocsp);
      }
      fix(ep.tls->client_auth.ca);
      fix(ep.tls->keylog_file);
    }
    if (ep.upstream_tls) {
      fix(ep.upstream_tls->ca);
      if (ep.upstream_tls->client_cert) {
        fix(ep.upstream_tls->client_cert->cert);
        fix(ep.upstream_tls->client_cert->key);
      }
    }
  }
}

Result<Config> load_tree(const Node& root, std::string_view filename, const AppSchema& schema) {
  settings::SlotTable slots;
  slots.set(std::string(kAppSlot), &schema.app);
  slots.set(std::string(kEndpointAppSlot), &schema.endpoint);
  settings::ParseContext ctx(&slots);
  Config config;
  if (settings::parse(root, config, ctx)) validate(config, root, ctx);
  if (!ctx.ok()) return Error::config(format(filename, ctx.diagnostics().front()));
  resolve_tls_paths(config, filename);
  for (const auto& check : schema.checks) {
    check(config, root, ctx);
    if (!ctx.ok()) return Error::config(format(filename, ctx.diagnostics().front()));
  }
  return config;
}

}  // namespace

Result<Node> parse_tree(std::string_view yaml, std::string_view filename) {
  Node root;
  try {
    YAML::Node doc = YAML::Load(std::string(yaml));
    Converter converter;
    if (!converter.convert(doc, root, 0)) {
      return Error::config(format(filename, converter.error()));
    }
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) {
      return Error::config(std::string(filename) + ": YAML syntax error: " + e.msg);
    }
    return Error::config(position(filename, mark_of(e.mark)) + ": YAML syntax error: " + e.msg +
                         syntax_hint(yaml, e.mark.line));
  } catch (const std::exception& e) {
    return Error::config(std::string(filename) + ": cannot parse: " + e.what());
  }
  if (root.is_null() && root.mark.line == 0) root.mark = Mark{1, 1};
  return root;
}

Result<Config> load_string(std::string_view yaml, std::string_view filename,
                           const AppSchema& schema) {
  auto root = parse_tree(yaml, filename);
  if (!root.ok()) return root.error();
  return load_tree(*root, filename, schema);
}

Result<DatapathRule> parse_datapath_rule(std::string_view text, std::string_view source) {
  Node root;
  try {
    YAML::Node doc = YAML::Load(std::string(text));
    Converter converter;
    if (!converter.convert(doc, root, 0)) return Error::config(format(source, converter.error()));
  } catch (const YAML::Exception& e) {
    return Error::config(position(source, mark_of(e.mark)) + ": not YAML or JSON: " + e.msg);
  } catch (const std::exception& e) {
    return Error::config(std::string(source) + ": cannot parse: " + e.what());
  }
  if (!root.is_map()) return Error::config(std::string(source) + ": a rule is an object");
  settings::ParseContext ctx(nullptr);
  DatapathRule rule;
  settings::parse(root, rule, ctx);
  if (!ctx.ok()) return Error::config(format(source, ctx.diagnostics().front()));
  return rule;
}

Result<void> check_datapath(const Config& config, std::string_view source) {
  Node root;
  settings::ParseContext ctx(nullptr);
  validate_datapath_only(config, root, ctx);
  if (ctx.ok()) return {};
  const auto& d = ctx.diagnostics().front();
  return Error::config(std::string(source) + ": " + (d.path.empty() ? "" : d.path + ": ") +
                       d.message);
}

Result<Config> load_file(const std::string& path, const AppSchema& schema) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    Error e = Error::config(path + ": cannot read: " + std::strerror(err));
    e.code = err;
    return e;
  }
  std::string text;
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      text.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      Error e = Error::config(path + ": cannot read: " + std::strerror(err));
      e.code = err;
      return e;
    }
    break;
  }
  ::close(fd);
  return load_string(text, path, schema);
}

}  // namespace ramjet::config
