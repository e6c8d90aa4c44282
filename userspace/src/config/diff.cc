// Which settings differ between two configs, key by key: what a reload reports. Both
// configs are printed with the declared emitter (so a key written out at its default is no
// change) and read back as trees, which are compared path by path.
#include <algorithm>
#include <string>
#include <vector>

#include "ramjet/config/config.h"
#include "tree.h"

namespace ramjet::config {
namespace {

using settings::Node;

bool same(const Node& a, const Node& b) {
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Node::Kind::kNull:
      return true;
    case Node::Kind::kScalar:
      return a.scalar == b.scalar;
    case Node::Kind::kSequence:
      return std::equal(a.items.begin(), a.items.end(), b.items.begin(), b.items.end(), same);
    case Node::Kind::kMap:
      return std::equal(a.entries.begin(), a.entries.end(), b.entries.begin(), b.entries.end(),
                        [](const auto& x, const auto& y) {
                          return x.key == y.key && same(x.value, y.value);
                        });
  }
  return false;
}

// The `name` of every item, when each item is a mapping with a distinct scalar name: such
// sequences (endpoints, datapath rules) are compared item by item, by name.
bool names_of(const Node& seq, std::vector<std::string>& names) {
  for (const Node& item : seq.items) {
    const Node* name = item.find("name");
    if (name == nullptr || !name->is_scalar()) return false;
    if (std::find(names.begin(), names.end(), name->scalar) != names.end()) return false;
    names.push_back(name->scalar);
  }
  return true;
}

const Node* item_named(const Node& seq, const std::string& name) {
  for (const Node& item : seq.items) {
    const Node* n = item.find("name");
    if (n != nullptr && n->scalar == name) return &item;
  }
  return nullptr;
}

std::string child(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

void diff(const Node& a, const Node& b, const std::string& path, std::vector<std::string>& out) {
  if (a.is_map() && b.is_map()) {
    for (const auto& e : a.entries) {
      const Node* other = b.find(e.key);
      if (other == nullptr) {
        out.push_back(child(path, e.key));
      } else {
        diff(e.value, *other, child(path, e.key), out);
      }
    }
    for (const auto& e : b.entries) {
      if (a.find(e.key) == nullptr) out.push_back(child(path, e.key));
    }
    return;
  }
  std::vector<std::string> names_a, names_b;
  if (a.is_sequence() && b.is_sequence() && !a.items.empty() && !b.items.empty() &&
      names_of(a, names_a) && names_of(b, names_b)) {
    for (const std::string& name : names_a) {
      const Node* other = item_named(b, name);
      const std::string at = path + "[" + name + "]";
      if (other == nullptr) {
        out.push_back(at);
      } else {
        diff(*item_named(a, name), *other, at, out);
      }
    }
    for (const std::string& name : names_b) {
      if (item_named(a, name) == nullptr) out.push_back(path + "[" + name + "]");
    }
    // The same items in another order is a change of the sequence (rules match in order).
    std::vector<std::string> order_a, order_b;
    for (const auto& n : names_a)
      if (item_named(b, n) != nullptr) order_a.push_back(n);
    for (const auto& n : names_b)
      if (item_named(a, n) != nullptr) order_b.push_back(n);
    if (order_a != order_b) out.push_back(path);
    return;
  }
  if (!same(a, b)) out.push_back(path);
}

Result<Node> printed(const Config& config, const AppSchema& schema, const char* which) {
  settings::SlotTable slots;
  slots.set(std::string(kAppSlot), &schema.app);
  slots.set(std::string(kEndpointAppSlot), &schema.endpoint);
  return parse_tree(settings::emit(config, 0, settings::EmitOptions{&slots, true}), which);
}

}  // namespace

std::vector<std::string> changed_keys(const Config& before, const Config& after,
                                      const AppSchema& schema) {
  std::vector<std::string> out;
  auto a = printed(before, schema, "running config");
  auto b = printed(after, schema, "new config");
  if (!a.ok() || !b.ok()) return {"(the config could not be compared)"};
  diff(*a, *b, "", out);
  return out;
}

}  // namespace ramjet::config
