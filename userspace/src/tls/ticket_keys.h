// Session-ticket keys that rotate: tickets are sealed with the current key and opened
// with the current or the previous one (renewed when opened with the previous). One
// set per endpoint for the life of the process, so a config reload keeps resumption
// working. Thread-safe: every worker's handshakes share it.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>

#include "tls/boringssl.h"

namespace ramjet::tls {

class TicketKeys {
 public:
  explicit TicketKeys(std::chrono::milliseconds rotate);

  // BoringSSL's SSL_CTX_set_tlsext_ticket_key_cb contract: 1 ok, 2 ok but renew the
  // ticket, 0 unknown key (full handshake), -1 error.
  int seal_or_open(std::uint8_t name[16], std::uint8_t iv[16], EVP_CIPHER_CTX* cipher,
                   HMAC_CTX* hmac, bool seal);

 private:
  struct Key {
    std::array<std::uint8_t, 16> name;
    std::array<std::uint8_t, 32> aes;
    std::array<std::uint8_t, 32> hmac;
  };
  static Key fresh();
  void rotate_if_due();

  std::mutex mu_;
  std::chrono::milliseconds period_;
  std::chrono::steady_clock::time_point current_since_;
  Key current_;
  Key previous_;
  bool has_previous_ = false;
};

}  // namespace ramjet::tls
