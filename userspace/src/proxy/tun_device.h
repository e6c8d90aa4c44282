// The TUN device of an `onramp: ip` endpoint (docs/ip_onramp.md): created by ramjetd,
// one queue per worker (IFF_MULTI_QUEUE: the kernel keeps each flow on one queue, so
// each worker owns whole flows), addressed, up, and the routes that lead traffic into
// it. The routes live in the endpoint's own table, looked up by one policy rule for
// every packet that does not carry the bypass mark: packets ramjetd sends on (the IP
// off-ramp) carry it, so the host routes them by its other tables instead of back into
// the device. Routes and rules are added over rtnetlink with ramjet's protocol number
// (82); the device and its routes vanish with the process, the rules are removed on
// stop and replaced at start (a crashed run's are found and taken over).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ramjet/config/config.h"
#include "ramjet/result.h"

namespace ramjet::proxy {

class TunDevice {
 public:
  // Creates the device with `queues` queues and sets it up; an error names the step.
  static Result<TunDevice> create(const config::TunSettings& tun, unsigned queues);

  TunDevice(TunDevice&& o) noexcept;
  TunDevice& operator=(TunDevice&&) = delete;
  ~TunDevice();

  // Queue `i`'s descriptor, handed to a worker (which closes it); -1 once taken.
  int take_queue(unsigned i);
  unsigned ifindex() const { return ifindex_; }

 private:
  TunDevice(const config::TunSettings& tun) : settings_(tun) {}
  Result<void> set_up();

  config::TunSettings settings_;
  std::vector<int> queues_;
  unsigned ifindex_ = 0;
  bool rules_[2] = {false, false};          // [IPv4, IPv6] rule added by us
  bool local_default_[2] = {false, false};  // [IPv4, IPv6] hand-off route held
};

// A socket that sends whole IP packets of `family` (AF_INET, AF_INET6) as they are,
// with `mark` so that the TUN routes do not apply. -errno on failure.
int open_ip_offramp(int family, std::uint32_t mark);

}  // namespace ramjet::proxy
