#include "datapath/flow_table.h"

#include <bpf/bpf.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace ramjet::datapath {

namespace {

SocketAddress endpoint_of(std::uint8_t family, const std::uint32_t* addr, std::uint16_t port_be) {
  auto f = family == RAMJET_FAMILY_IPV6 ? IpAddress::Family::kV6 : IpAddress::Family::kV4;
  return SocketAddress(IpAddress::from_bytes(f, addr), ntohs(port_be));
}

// Key iteration: for kernels or map types without batch lookups.
Result<void> read_by_keys(int fd, const FlowBatchFn& batch) {
  std::vector<ramjet_flow_key> keys;
  std::vector<ramjet_flow> values;
  keys.reserve(kFlowBatch);
  values.reserve(kFlowBatch);
  ramjet_flow_key key{}, next{};
  void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    ramjet_flow value{};
    if (bpf_map_lookup_elem(fd, &next, &value) == 0) {
      keys.push_back(next);
      values.push_back(value);
    }
    key = next;
    prev = &key;
    if (keys.size() == kFlowBatch) {
      if (!batch(keys, values)) return {};
      keys.clear();
      values.clear();
    }
  }
  if (!keys.empty()) batch(keys, values);
  return {};
}

}  // namespace

KernelFlow decode_flow(const ramjet_flow_key& k, const ramjet_flow& f) {
  KernelFlow out;
  out.id = f.flow_id;
  out.proto = k.proto;
  SocketAddress lo = endpoint_of(k.family, k.addr_lo, k.port_lo);
  SocketAddress hi = endpoint_of(k.family, k.addr_hi, k.port_hi);
  bool lo_first = f.origin_side == 0;
  out.src = lo_first ? lo : hi;
  out.dst = lo_first ? hi : lo;
  out.verdict = f.verdict;
  out.reason = f.reason;
  out.escalated = f.escalated != 0;
  out.fallback = f.fallback;
  out.fallback_cause = f.fallback_cause;
  out.has_rule = f.rule_index != RAMJET_RULE_INDEX_NONE;
  out.rule_id = f.rule_id;
  out.endpoint_id = f.endpoint_id;
  out.ifindex = f.ifindex;
  for (int d = 0; d < 2; ++d) {
    out.packets[d] = f.dir[d].packets;
    out.bytes[d] = f.dir[d].bytes;
    out.tcp_flags[d] = f.tcp_flags[d];
  }
  out.first_seen_ns = f.first_seen_ns;
  out.last_seen_ns = f.last_seen_ns;
  return out;
}

ramjet_flow_key flow_key_of(const SocketAddress& client, const SocketAddress& local,
                            std::uint8_t proto) {
  ramjet_flow_key key{};
  std::uint32_t a[4] = {}, b[4] = {};
  IpAddress ca = client.ip().unmapped(), la = local.ip().unmapped();
  std::memcpy(a, ca.data(), ca.size());
  std::memcpy(b, la.data(), la.size());
  std::uint16_t pa = htons(client.port()), pb = htons(local.port());
  int c = std::memcmp(a, b, 16);
  bool client_lo = c < 0 || (c == 0 && client.port() < local.port());
  std::memcpy(key.addr_lo, client_lo ? a : b, 16);
  std::memcpy(key.addr_hi, client_lo ? b : a, 16);
  key.port_lo = client_lo ? pa : pb;
  key.port_hi = client_lo ? pb : pa;
  key.family = ca.is_v4() ? RAMJET_FAMILY_IPV4 : RAMJET_FAMILY_IPV6;
  key.proto = proto;
  return key;
}

Result<void> read_flow_batches(int fd, const FlowBatchFn& batch) {
  std::uint32_t size = kFlowBatch;
  std::vector<ramjet_flow_key> keys(size);
  std::vector<ramjet_flow> values(size);
  std::uint64_t in_batch = 0, out_batch = 0;
  bool first = true;
  for (;;) {
    std::uint32_t count = size;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    int rc = bpf_map_lookup_batch(fd, first ? nullptr : &in_batch, &out_batch, keys.data(),
                                  values.data(), &count, &opts);
    int err = rc != 0 ? errno : 0;
    if (rc != 0 && err == ENOSPC && count == 0) {
      // One hash bucket holds more entries than fit: retry it with room for them.
      size *= 2;
      keys.resize(size);
      values.resize(size);
      continue;
    }
    if (rc != 0 && err != ENOENT) {
      if (first && (err == EINVAL || err == ENOTSUP || err == EOPNOTSUPP))
        return read_by_keys(fd, batch);
      return Error::kernel(err, std::string("reading the flow table: ") + std::strerror(err));
    }
    if (count > 0 && !batch({keys.data(), count}, {values.data(), count})) return {};
    if (rc != 0) return {};  // ENOENT: the walk is complete
    in_batch = out_batch;
    first = false;
  }
}

Result<std::size_t> delete_flows_where(int fd,
                                       const std::function<bool(const KernelFlow&)>& match) {
  std::vector<ramjet_flow_key> doomed;
  auto walked = read_flow_batches(fd, [&](auto keys, auto values) {
    for (std::size_t i = 0; i < keys.size(); ++i)
      if (match(decode_flow(keys[i], values[i]))) doomed.push_back(keys[i]);
    return true;
  });
  if (!walked.ok()) return walked.error();
  std::size_t deleted = 0;
  for (const auto& k : doomed)
    if (bpf_map_delete_elem(fd, &k) == 0) ++deleted;  // ENOENT: it expired meanwhile
  return deleted;
}

}  // namespace ramjet::datapath
