#include "datapath/abi_stamp.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <vector>

#include "datapath.skel.h"
#include "ramjet/abi/ramjet.h"

namespace ramjet::datapath {

namespace {

// Closes a bpf fd on scope exit.
struct Fd {
  int fd;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

#define RAMJET_X_STAT(name, cls) "stat " #name " " #cls "\n"
#define RAMJET_X_ACTION(name, value) "action " #name " " #value "\n"
constexpr const char kAbiValues[] = RAMJET_STATS(RAMJET_X_STAT) RAMJET_ACTIONS(RAMJET_X_ACTION);
#undef RAMJET_X_STAT
#undef RAMJET_X_ACTION

std::string btf_name(const btf* b, std::uint32_t name_off) {
  const char* n = btf__name_by_offset(b, name_off);
  return n ? n : "";
}

// The layout of type `id`: what the kernel and userspace must agree on. Names of
// members and variables are part of it (they are what the C++ side addresses).
void type_layout(const btf* b, std::uint32_t id, std::string& out, int depth) {
  const btf_type* t = btf__type_by_id(b, id);
  if (!t || depth > 32) {
    out += "?";
    return;
  }
  switch (btf_kind(t)) {
    case BTF_KIND_TYPEDEF:
    case BTF_KIND_VOLATILE:
    case BTF_KIND_CONST:
    case BTF_KIND_RESTRICT:
    case BTF_KIND_TYPE_TAG:
    case BTF_KIND_VAR:
      type_layout(b, t->type, out, depth + 1);
      return;
    case BTF_KIND_INT:
      out += (btf_int_encoding(t) & BTF_INT_SIGNED) ? "s" : "u";
      out += std::to_string(btf_int_bits(t));
      return;
    case BTF_KIND_PTR:
      out += "ptr";
      return;
    case BTF_KIND_FLOAT:
      out += "f" + std::to_string(t->size * 8);
      return;
    case BTF_KIND_ENUM:
    case BTF_KIND_ENUM64:
      out += "enum" + std::to_string(t->size * 8);
      return;
    case BTF_KIND_ARRAY: {
      const struct btf_array* a = btf_array(t);
      out += "[" + std::to_string(a->nelems) + "]";
      type_layout(b, a->type, out, depth + 1);
      return;
    }
    case BTF_KIND_STRUCT:
    case BTF_KIND_UNION: {
      out += btf_is_union(t) ? "union" : "struct";
      out += std::to_string(t->size) + "{";
      const btf_member* m = btf_members(t);
      for (std::uint32_t i = 0; i < btf_vlen(t); ++i) {
        out += btf_name(b, m[i].name_off) + "@" + std::to_string(btf_member_bit_offset(t, i));
        if (std::uint32_t bits = btf_member_bitfield_size(t, i)) out += ":" + std::to_string(bits);
        out += " ";
        type_layout(b, m[i].type, out, depth + 1);
        out += ";";
      }
      out += "}";
      return;
    }
    case BTF_KIND_DATASEC: {
      out += "section" + std::to_string(t->size) + "{";
      const btf_var_secinfo* v = btf_var_secinfos(t);
      for (std::uint32_t i = 0; i < btf_vlen(t); ++i) {
        const btf_type* var = btf__type_by_id(b, v[i].type);
        out += (var ? btf_name(b, var->name_off) : "?") + "@" + std::to_string(v[i].offset) + " ";
        type_layout(b, v[i].type, out, depth + 1);
        out += ";";
      }
      out += "}";
      return;
    }
    default:
      out += "kind" + std::to_string(btf_kind(t));
      return;
  }
}

// The BTF type of an internal map's value: its section (".data" of "datapath.data").
std::uint32_t section_type(const btf* b, const std::string& map_name) {
  auto dot = map_name.find('.');
  if (dot == std::string::npos) return 0;
  std::int32_t id = btf__find_by_name_kind(b, map_name.substr(dot).c_str(), BTF_KIND_DATASEC);
  return id > 0 ? static_cast<std::uint32_t>(id) : 0;
}

// The kernel's view of a pinned map, compared with what libbpf would create.
std::string definition(std::uint32_t type, std::uint32_t key, std::uint32_t value,
                       std::uint32_t max_entries, std::uint32_t flags) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "type %u, key %u, value %u, max_entries %u, flags %#x", type, key,
                value, max_entries, flags);
  return buf;
}

}  // namespace

std::string pinned_map_name(const bpf_map* map) {
  std::string name = bpf_map__name(map);
  if (name.find(".rodata") != std::string::npos || name.find(".kconfig") != std::string::npos)
    return {};  // per load, not state
  if (name.find(".data") != std::string::npos) return "runtime";
  return name;
}

std::string abi_layout(const bpf_object* obj) {
  const btf* b = bpf_object__btf(obj);
  std::vector<std::string> lines;
  const bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    std::string pin = pinned_map_name(map);
    if (pin.empty()) continue;
    std::string line =
        pin + ": " +
        definition(bpf_map__type(map), bpf_map__key_size(map), bpf_map__value_size(map),
                   bpf_map__max_entries(map), bpf_map__map_flags(map));
    if (b) {
      if (std::uint32_t key = bpf_map__btf_key_type_id(map)) {
        line += " key=";
        type_layout(b, key, line, 0);
      }
      std::uint32_t value = bpf_map__btf_value_type_id(map);
      if (!value && bpf_map__is_internal(map)) value = section_type(b, bpf_map__name(map));
      if (value) {
        line += " value=";
        type_layout(b, value, line, 0);
      }
    }
    lines.push_back(std::move(line));
  }
  std::sort(lines.begin(), lines.end());
  // The values the maps hold by number. clang emits no BTF for enums only used in
  // inlined code, so they come from the same ABI headers, compiled here: the
  // X-macro lists whole (a stat or action added, removed, renamed or reordered),
  // the small enums by value.
  lines.push_back(kAbiValues);
  lines.push_back("event FLOW_NEW=" + std::to_string(RAMJET_EVENT_FLOW_NEW) +
                  " ESCALATE=" + std::to_string(RAMJET_EVENT_ESCALATE) +
                  " DROP_SAMPLE=" + std::to_string(RAMJET_EVENT_DROP_SAMPLE));
  lines.push_back("family IPV4=" + std::to_string(RAMJET_FAMILY_IPV4) +
                  " IPV6=" + std::to_string(RAMJET_FAMILY_IPV6));
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

std::uint64_t abi_stamp_of(std::string_view layout) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : layout) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string stamp_text(std::uint64_t stamp) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(stamp));
  return buf;
}

Result<std::uint64_t> build_abi_stamp() {
  static std::once_flag once;
  static Result<std::uint64_t> stamp = Error::internal("unset");
  std::call_once(once, [] {
    ::datapath* skel = datapath__open();
    if (!skel) {
      stamp = Error::kernel(errno, "datapath: cannot open the embedded BPF object");
      return;
    }
    stamp = abi_stamp_of(abi_layout(skel->obj));
    datapath__destroy(skel);
  });
  return stamp;
}

Result<std::optional<std::uint64_t>> read_pinned_stamp(const std::string& pin_dir) {
  std::string path = pin_dir + "/" + kAbiPinName;
  Fd fd(bpf_obj_get(path.c_str()));
  if (fd.fd < 0) {
    if (errno == ENOENT) return std::optional<std::uint64_t>{};
    return Error::kernel(errno, "cannot open " + path + ": " + std::strerror(errno));
  }
  bpf_map_info info{};
  std::uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(fd.fd, &info, &len) != 0)
    return Error::kernel(errno, "cannot inspect " + path + ": " + std::strerror(errno));
  // Anything else under that name is no stamp: the state is of unknown origin.
  if (info.type != BPF_MAP_TYPE_ARRAY || info.key_size != 4 || info.value_size != 8 ||
      info.max_entries != 1)
    return Error::config(
        path + " is not an ABI stamp (" +
        definition(info.type, info.key_size, info.value_size, info.max_entries, info.map_flags) +
        ")");
  std::uint32_t zero = 0;
  std::uint64_t stamp = 0;
  if (bpf_map_lookup_elem(fd.fd, &zero, &stamp) != 0)
    return Error::kernel(errno, "cannot read " + path + ": " + std::strerror(errno));
  return std::optional<std::uint64_t>{stamp};
}

Result<void> write_pinned_stamp(const std::string& pin_dir, std::uint64_t stamp) {
  std::string path = pin_dir + "/" + kAbiPinName;
  ::unlink(path.c_str());
  Fd fd(bpf_map_create(BPF_MAP_TYPE_ARRAY, "ramjet_abi", 4, 8, 1, nullptr));
  if (fd.fd < 0)
    return Error::kernel(errno, "cannot create the ABI stamp map: " + std::string(strerror(errno)));
  std::uint32_t zero = 0;
  if (bpf_map_update_elem(fd.fd, &zero, &stamp, BPF_ANY) != 0 ||
      bpf_obj_pin(fd.fd, path.c_str()) != 0)
    return Error::kernel(errno, "cannot pin the ABI stamp at " + path + ": " + strerror(errno));
  return {};
}

PinCheck check_pins(const std::string& pin_dir, const bpf_object* obj, std::uint64_t stamp) {
  // Which of this object's maps are pinned, and how they are defined.
  std::vector<std::pair<std::string, std::string>> mismatched;  // name, why
  bool any = false;
  const bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    std::string name = pinned_map_name(map);
    if (name.empty()) continue;
    std::string path = pin_dir + "/" + name;
    Fd fd(bpf_obj_get(path.c_str()));
    if (fd.fd < 0) continue;  // missing: libbpf creates and pins it
    any = true;
    bpf_map_info info{};
    std::uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd.fd, &info, &len) != 0) {
      mismatched.emplace_back(name, std::string("cannot inspect it: ") + strerror(errno));
      continue;
    }
    std::string have =
        definition(info.type, info.key_size, info.value_size, info.max_entries, info.map_flags);
    std::string want =
        definition(bpf_map__type(map), bpf_map__key_size(map), bpf_map__value_size(map),
                   bpf_map__max_entries(map), bpf_map__map_flags(map));
    if (have != want)
      mismatched.emplace_back(name, "pinned as " + have + "; this build needs " + want);
  }
  if (!any) return {};  // nothing to adopt; a stamp alone is overwritten
  auto pinned = read_pinned_stamp(pin_dir);
  if (!pinned.ok()) return {PinCheck::Verdict::kRecreate, pinned.error().message};
  if (!*pinned)
    return {PinCheck::Verdict::kRecreate,
            "they carry no ABI stamp (pinned by a ramjet from before stamps, or by a start "
            "that did not finish)"};
  if (**pinned != stamp)
    return {PinCheck::Verdict::kRecreate, "they were pinned by a build with ABI stamp " +
                                              stamp_text(**pinned) + ", this build's is " +
                                              stamp_text(stamp)};
  if (!mismatched.empty())
    return {
        PinCheck::Verdict::kRecreate,
        "the pinned map `" + mismatched.front().first +
            "` does not fit: " + mismatched.front().second +
            (mismatched.front().first == "flows" ? " (datapath.flow_table_size changed?)" : "")};
  return {PinCheck::Verdict::kAdopt, {}};
}

Result<void> remove_pinned_maps(const std::string& pin_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(pin_dir, ec)) {
    if (entry.is_directory()) continue;  // links/
    if (::unlink(entry.path().c_str()) != 0 && errno != ENOENT)
      return Error::kernel(errno,
                           "cannot remove " + entry.path().string() + ": " + std::strerror(errno));
  }
  if (ec) return Error::kernel(ec.value(), "cannot list " + pin_dir + ": " + ec.message());
  return {};
}

}  // namespace ramjet::datapath
