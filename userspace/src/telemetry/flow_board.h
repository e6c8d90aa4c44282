// FlowBoard: the flow ids one worker is handling, in a fixed array that a signal handler
// on any thread can read (the crash report names them). Only the owning worker writes
// it: add() when a session starts, remove() when it ends. Slots are relaxed atomics; the
// free list is the worker's alone. A full board drops the id and counts it, so a report
// says how many it could not name.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ramjet::telemetry {

class FlowBoard {
 public:
  static constexpr std::size_t kSlots = 4096;
  static constexpr std::uint32_t kNoSlot = UINT32_MAX;

  FlowBoard() {
    free_.reserve(kSlots);
    for (std::size_t i = kSlots; i > 0; --i) free_.push_back(static_cast<std::uint32_t>(i - 1));
  }
  FlowBoard(const FlowBoard&) = delete;
  FlowBoard& operator=(const FlowBoard&) = delete;

  // The slot holding `id`, or kNoSlot when the board is full (counted in unnamed()).
  std::uint32_t add(std::uint64_t id) {
    if (free_.empty()) {
      unnamed_.fetch_add(1, std::memory_order_relaxed);
      return kNoSlot;
    }
    const std::uint32_t slot = free_.back();
    free_.pop_back();
    ids_[slot].store(id, std::memory_order_relaxed);
    return slot;
  }
  void remove(std::uint32_t slot) {
    if (slot == kNoSlot) {
      unnamed_.fetch_sub(1, std::memory_order_relaxed);
      return;
    }
    ids_[slot].store(0, std::memory_order_relaxed);
    free_.push_back(slot);
  }

  // Async-signal-safe reads. Slot i holds a flow id, or 0.
  std::uint64_t id_at(std::size_t i) const { return ids_[i].load(std::memory_order_relaxed); }
  std::uint64_t unnamed() const { return unnamed_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> ids_[kSlots] = {};
  std::atomic<std::uint64_t> unnamed_{0};
  std::vector<std::uint32_t> free_;
};

}  // namespace ramjet::telemetry
