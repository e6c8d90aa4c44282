// Reading and editing the kernel flow table (an LRU hash, ramjet/abi/flow.h) by fd,
// shared by the daemon (Datapath) and by ramjetctl's pinned-map access
// (PinnedMaps). Internal to datapath/: it speaks the ABI structs.
#pragma once

#include <bpf/bpf.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "datapath/kernel_flow.h"
#include "ramjet/abi/ramjet.h"
#include "ramjet/result.h"

namespace ramjet::datapath {

// Every key of a (small) map, by bpf_map_get_next_key.
template <typename K>
Result<std::vector<K>> map_keys(int fd) {
  std::vector<K> keys;
  K key{}, next{};
  void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    keys.push_back(next);
    key = next;
    prev = &key;
  }
  if (errno != ENOENT)
    return Error::kernel(errno, std::string("listing map keys: ") + std::strerror(errno));
  return keys;
}

// The key and value as stored, decoded into the originator's terms.
KernelFlow decode_flow(const ramjet_flow_key& key, const ramjet_flow& flow);

// The normalised key of a connection (client -> local as the client sent it):
// the lower (address, port) is `lo`, as bpf/lib/flow_key.h builds it.
ramjet_flow_key flow_key_of(const SocketAddress& client, const SocketAddress& local,
                            std::uint8_t proto);

// Entries per bpf_map_lookup_batch call.
inline constexpr std::uint32_t kFlowBatch = 4096;

// Calls `batch` with consecutive slices of the table (at most kFlowBatch entries
// each), read with bpf_map_lookup_batch (key iteration where batches are not
// supported); `batch` returns false to stop early. Memory stays at one batch
// whatever the table size. Entries that come and go during the walk may be
// missed or seen once, never twice.
using FlowBatchFn =
    std::function<bool(std::span<const ramjet_flow_key>, std::span<const ramjet_flow>)>;
Result<void> read_flow_batches(int fd, const FlowBatchFn& batch);

// Deletes every entry for which `match` holds; returns how many went.
Result<std::size_t> delete_flows_where(int fd, const std::function<bool(const KernelFlow&)>& match);

}  // namespace ramjet::datapath
