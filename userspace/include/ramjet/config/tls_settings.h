// The TLS sections of an endpoint: `tls` (the endpoint terminates TLS from its
// clients) and `upstream_tls` (it originates TLS to its upstreams). The files they name
// are read, and checked against each other, by the tls layer at start
// (tls::check_endpoint_tls), which reports errors at the key's file:line:col.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "ramjet/settings.h"

namespace ramjet::config {

enum class TlsVersion : std::uint8_t { kTls12, kTls13 };
enum class ClientAuthMode : std::uint8_t { kOff, kOptional, kRequired };

}  // namespace ramjet::config

namespace ramjet::settings {

template <>
struct EnumNames<config::TlsVersion> {
  static constexpr std::pair<config::TlsVersion, std::string_view> values[] = {
      {config::TlsVersion::kTls12, "1.2"},
      {config::TlsVersion::kTls13, "1.3"},
  };
};

template <>
struct EnumNames<config::ClientAuthMode> {
  static constexpr std::pair<config::ClientAuthMode, std::string_view> values[] = {
      {config::ClientAuthMode::kOff, "off"},
      {config::ClientAuthMode::kOptional, "optional"},
      {config::ClientAuthMode::kRequired, "required"},
  };
};

}  // namespace ramjet::settings

namespace ramjet::config {

// One certificate the endpoint can present: PEM chain (leaf first) and its key.
struct TlsCertificate {
  std::string cert;
  std::string key;
  std::string ocsp;

  static void describe(settings::Fields<TlsCertificate>& f) {
    f.required("cert", &TlsCertificate::cert,
               "PEM file: the certificate, then its intermediates. Relative paths are taken "
               "from the config file's directory.");
    f.required("key", &TlsCertificate::key, "PEM file: the certificate's private key.");
    f("ocsp", &TlsCertificate::ocsp,
      "DER OCSP response stapled to handshakes that ask for one; \"\" = none.");
  }
};

struct ClientAuthSettings {
  ClientAuthMode mode = ClientAuthMode::kOff;
  std::string ca;

  static void describe(settings::Fields<ClientAuthSettings>& f) {
    f("mode", &ClientAuthSettings::mode,
      "off: no client certificate asked for; optional: asked for, and one that is sent must "
      "verify; required: a connection without a verified certificate is refused.");
    f("ca", &ClientAuthSettings::ca, "PEM file of the CAs client certificates must chain to.");
  }
};

struct SessionTicketSettings {
  bool enabled = true;
  std::chrono::milliseconds rotate{std::chrono::hours(12)};

  static void describe(settings::Fields<SessionTicketSettings>& f) {
    f("enabled", &SessionTicketSettings::enabled, "Issue and accept session tickets (resumption).");
    f("rotate", &SessionTicketSettings::rotate,
      "A new ticket key every this long; tickets of the previous key are still accepted (and "
      "renewed) for one more period. Keys live for the process, across reloads.");
  }
};

// `tls:` of an endpoint: it terminates TLS. Present = on.
struct TlsServerSettings {
  std::vector<TlsCertificate> certificates;
  std::vector<std::string> alpn;
  TlsVersion min_version = TlsVersion::kTls12;
  TlsVersion max_version = TlsVersion::kTls13;
  bool strict_sni = false;
  ClientAuthSettings client_auth;
  SessionTicketSettings session_tickets;
  std::chrono::milliseconds handshake_timeout{10'000};
  std::string keylog_file;

  static void describe(settings::Fields<TlsServerSettings>& f) {
    f.required("certificates", &TlsServerSettings::certificates,
               "Certificates, chosen per connection by SNI: an exact name first, then a "
               "wildcard (*.example.com); when a name has an ECDSA and an RSA certificate, "
               "ECDSA if the client offers it. The first is the default.");
    f("alpn", &TlsServerSettings::alpn,
      "Application protocols offered, in the server's order of preference (http/1.1, h2 "
      "for http endpoints; any token for tcp endpoints). [] = no ALPN.");
    f("min_version", &TlsServerSettings::min_version, "Oldest TLS version accepted: 1.2 or 1.3.");
    f("max_version", &TlsServerSettings::max_version, "Newest TLS version accepted: 1.2 or 1.3.");
    f("strict_sni", &TlsServerSettings::strict_sni,
      "Refuse a handshake whose server name matches no certificate (instead of presenting "
      "the default one).");
    f("client_auth", &TlsServerSettings::client_auth, "Client certificates (mutual TLS).");
    f("session_tickets", &TlsServerSettings::session_tickets, "Resumption by session tickets.");
    f("handshake_timeout", &TlsServerSettings::handshake_timeout,
      "A client that has not finished its handshake by then is cut.");
    f("keylog_file", &TlsServerSettings::keylog_file,
      "Append NSS key-log lines (for Wireshark) to this file. For debugging only: anyone "
      "who reads it can decrypt the traffic. \"\" = off.");
  }
};

struct TlsClientCertificate {
  std::string cert;
  std::string key;

  static void describe(settings::Fields<TlsClientCertificate>& f) {
    f.required("cert", &TlsClientCertificate::cert, "PEM file: the client certificate chain.");
    f.required("key", &TlsClientCertificate::key, "PEM file: its private key.");
  }
};

// `upstream_tls:` of an endpoint: how it speaks TLS to upstreams. Present = on for
// tcp endpoints; http endpoints use it for https:// upstreams (defaults otherwise).
struct TlsClientSettings {
  std::string sni;
  bool verify = true;
  std::string ca = "system";
  std::vector<std::string> alpn;
  std::optional<TlsClientCertificate> client_cert;

  static void describe(settings::Fields<TlsClientSettings>& f) {
    f("sni", &TlsClientSettings::sni,
      "Server name sent and verified; \"\" = the upstream's host name (none for an IP).");
    f("verify", &TlsClientSettings::verify,
      "Verify the upstream's certificate chain and name. Turning it off is for tests only.");
    f("ca", &TlsClientSettings::ca,
      "PEM file of trusted CAs, or system (/etc/ssl/certs/ca-certificates.crt).");
    f("alpn", &TlsClientSettings::alpn,
      "Application protocols offered to the upstream. On http endpoints, default [h2, "
      "http/1.1]: an origin that chooses h2 gets one multiplexed HTTP/2 connection per worker.");
    f("client_cert", &TlsClientSettings::client_cert,
      "A certificate to present when the upstream asks for one.");
  }
};

}  // namespace ramjet::config
