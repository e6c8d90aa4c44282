// The TLS ClientHello path of a TLS endpoint: bytes from a client go through BoringSSL
// and our callbacks (SNI and signature-algorithm parsing, certificate choice, ALPN,
// ticket decryption) with the server context ServerContext builds for `tls:`.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "../unit/tls/test_certs.h"
#include "tls/server_context.h"

namespace {

const ramjet::tls::ServerContext& context() {
  static std::shared_ptr<ramjet::tls::ServerContext> ctx = [] {
    std::string tmpl = "/tmp/ramjet-fuzz-tls-XXXXXX";
    std::string dir = ::mkdtemp(tmpl.data());
    ramjet::config::TlsServerSettings s;
    s.alpn = {"h2", "http/1.1"};
    int i = 0;
    for (auto [sans, ecdsa] : {std::pair{"DNS:a.test", true}, {"DNS:*.b.test", true},
                               {"DNS:a.test", false}}) {
      auto c = ramjet::tls::testing::make_cert("c", sans, ecdsa);
      std::string base = dir + "/" + std::to_string(i++);
      std::ofstream(base + ".pem") << c.cert_pem;
      std::ofstream(base + ".key") << c.key_pem;
      s.certificates.push_back({base + ".pem", base + ".key", ""});
    }
    std::string key, error;
    auto made = ramjet::tls::ServerContext::create(s, key, error);
    if (!made) std::abort();
    return made;
  }();
  return *ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ramjet::tls::HandshakeNotes notes;
  bssl::UniquePtr<SSL> ssl = context().new_ssl(&notes);
  BIO* in = BIO_new_mem_buf(data, static_cast<int>(size));
  BIO_set_mem_eof_return(in, -1);
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl.get(), in, out);
  SSL_set_accept_state(ssl.get());
  SSL_do_handshake(ssl.get());
  ERR_clear_error();
  return 0;
}
