// What a datapath's pinned state must match to be adopted. The ABI stamp is a
// digest of the layout of every map in the BPF object as this build compiled it:
// pin name, map type, key and value sizes, max_entries, flags, the BTF layout of
// key and value (member names, offsets, sizes, nested types; the `.data` section's
// variables), then the stat, action, event and family values of the ABI headers.
// It is derived from the object embedded in the build (the skeleton) and from those
// headers, so a change to an ABI header or a map definition changes it with nobody
// having to bump a version (a comment or a program change does not).
//
// ramjetd stores it in the instance's pin directory as a one-entry array map
// (`<pin_dir>/abi`, value: the 64-bit stamp) after its maps are pinned, and checks
// it before adopting pins. ramjetctl checks it before reading them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ramjet/result.h"

struct bpf_object;
struct bpf_map;

namespace ramjet::datapath {

// The pin of the stamp, beside the maps.
inline constexpr const char* kAbiPinName = "abi";

// The name a map of the object is pinned under in the instance directory: `.data`
// as `runtime`; empty for maps that are not pinned (`.rodata`, set per load).
std::string pinned_map_name(const bpf_map* map);

// One line per pinned map, sorted by pin name, then the ABI's values: the text the
// stamp digests (shown by tests and debugging). Uses the object's compiled
// max_entries: call it before resizing maps.
std::string abi_layout(const bpf_object* obj);
std::uint64_t abi_stamp_of(std::string_view layout);  // FNV-1a, 64 bits
std::string stamp_text(std::uint64_t stamp);          // 16 hex digits

// This build's stamp, from the embedded object (opened once, then cached).
Result<std::uint64_t> build_abi_stamp();

// The stamp pinned in `pin_dir`: nullopt when there is no stamp pin; an error
// when it cannot be read or is not a stamp map.
Result<std::optional<std::uint64_t>> read_pinned_stamp(const std::string& pin_dir);
// Creates (or overwrites) the stamp pin.
Result<void> write_pinned_stamp(const std::string& pin_dir, std::uint64_t stamp);

// Whether the maps pinned in `pin_dir` can be adopted by `obj` (opened, maps sized
// for this config, not loaded): `reason` says why not.
struct PinCheck {
  enum class Verdict { kFresh, kAdopt, kRecreate };
  Verdict verdict = Verdict::kFresh;
  std::string reason;  // kRecreate: the first difference found
};
PinCheck check_pins(const std::string& pin_dir, const bpf_object* obj, std::uint64_t stamp);

// Removes every pinned map (and the stamp) from `pin_dir`; links stay.
Result<void> remove_pinned_maps(const std::string& pin_dir);

}  // namespace ramjet::datapath
