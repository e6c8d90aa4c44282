// rtnetlink by hand (libnl is not a dependency; ramjet sends a handful of
// messages): a request builder, one request/ack exchange, and a dump that hands
// every reply message to a callback, plus the reading side of attributes.
#pragma once

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <span>

namespace ramjet::datapath::netlink {

// One netlink request: header, family-specific body, attributes.
class Request {
 public:
  Request(std::uint16_t type, std::uint16_t flags);
  template <typename T>
  T* body() {
    hdr()->nlmsg_len = NLMSG_LENGTH(sizeof(T));
    return reinterpret_cast<T*>(NLMSG_DATA(hdr()));
  }
  void attr(std::uint16_t type, const void* data, std::size_t len);
  void attr_u32(std::uint16_t type, std::uint32_t value) { attr(type, &value, sizeof value); }
  void attr_u8(std::uint16_t type, std::uint8_t value) { attr(type, &value, sizeof value); }
  nlmsghdr* hdr() { return reinterpret_cast<nlmsghdr*>(buf_); }

 private:
  alignas(nlmsghdr) char buf_[512] = {};
};

// Sends a request that asks for an ack; 0 or -errno from the kernel's answer.
int transact(Request& req);

// Sends a NLM_F_DUMP request and calls `fn` with every message of the reply
// until NLMSG_DONE (strict checking is on, so the kernel applies the filters the
// request carries, such as RTA_TABLE). 0 or -errno.
int dump(Request& req, const std::function<void(const nlmsghdr&)>& fn);

// The attributes after a message's family header of `header_len` bytes.
class Attributes {
 public:
  Attributes(const nlmsghdr& msg, std::size_t header_len);
  // Payload of the last attribute of `type`, if any.
  std::optional<std::span<const std::uint8_t>> get(std::uint16_t type) const;
  std::optional<std::uint32_t> u32(std::uint16_t type) const;
  std::optional<std::uint8_t> u8(std::uint16_t type) const;

 private:
  static constexpr std::size_t kMaxType = 64;  // above RTA_MAX and FRA_MAX; larger ignored
  std::span<const std::uint8_t> table_[kMaxType] = {};
  bool present_[kMaxType] = {};
};

}  // namespace ramjet::datapath::netlink
