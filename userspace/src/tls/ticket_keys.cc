#include "tls/ticket_keys.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstring>

namespace ramjet::tls {

TicketKeys::TicketKeys(std::chrono::milliseconds rotate)
    : period_(rotate), current_since_(std::chrono::steady_clock::now()), current_(fresh()) {}

TicketKeys::Key TicketKeys::fresh() {
  Key k;
  RAND_bytes(k.name.data(), k.name.size());
  RAND_bytes(k.aes.data(), k.aes.size());
  RAND_bytes(k.hmac.data(), k.hmac.size());
  return k;
}

void TicketKeys::rotate_if_due() {
  auto now = std::chrono::steady_clock::now();
  if (now - current_since_ < period_) return;
  // Two periods behind: nothing of the old keys may be accepted any more.
  has_previous_ = now - current_since_ < 2 * period_;
  previous_ = current_;
  current_ = fresh();
  current_since_ = now;
}

int TicketKeys::seal_or_open(std::uint8_t name[16], std::uint8_t iv[16], EVP_CIPHER_CTX* cipher,
                             HMAC_CTX* hmac, bool seal) {
  std::lock_guard lock(mu_);
  rotate_if_due();
  if (seal) {
    RAND_bytes(iv, 16);
    std::memcpy(name, current_.name.data(), 16);
    if (!EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, current_.aes.data(), iv) ||
        !HMAC_Init_ex(hmac, current_.hmac.data(), current_.hmac.size(), EVP_sha256(), nullptr))
      return -1;
    return 1;
  }
  const Key* k = nullptr;
  if (std::memcmp(name, current_.name.data(), 16) == 0) {
    k = &current_;
  } else if (has_previous_ && std::memcmp(name, previous_.name.data(), 16) == 0) {
    k = &previous_;
  }
  if (k == nullptr) return 0;
  if (!HMAC_Init_ex(hmac, k->hmac.data(), k->hmac.size(), EVP_sha256(), nullptr) ||
      !EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, k->aes.data(), iv))
    return -1;
  return k == &current_ ? 1 : 2;
}

}  // namespace ramjet::tls
