// Why a connection on a PROXY-protocol endpoint was closed before its first real byte.
// Declared once: the parser returns these, the engine counts them (metric label `reason`)
// and logs them; docs/proxy_protocol.md lists them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string_view>

namespace ramjet::proxy_protocol {

// X(enumerator, name): name is the counter label and the log word.
#define RAMJET_PROXY_PROTOCOL_REASONS(X)                                                         \
  /* Parser: */                                                                                  \
  X(kBadSignature, "bad_signature")               /* neither "PROXY " nor the v2 signature */    \
  X(kVersionNotAllowed, "version_not_allowed")    /* v1 or v2 not in `versions` */               \
  X(kV1TooLong, "v1_too_long")                    /* no CRLF within 107 bytes */                 \
  X(kV1Malformed, "v1_malformed")                 /* protocol, address or port not as spec'd */  \
  X(kV2BadVersion, "v2_bad_version")              /* version nibble is not 2 */                  \
  X(kV2BadCommand, "v2_bad_command")              /* command is neither LOCAL nor PROXY */       \
  X(kV2BadFamily, "v2_bad_family")                /* unknown address family or transport */      \
  X(kV2Oversized, "v2_oversized")                 /* length above the limit */                   \
  X(kV2BadAddressLength, "v2_bad_address_length") /* too short for its family */                 \
  X(kV2TlvTruncated, "v2_tlv_truncated")          /* a TLV runs past the header */               \
  X(kV2BadTlv, "v2_bad_tlv")                      /* a known TLV with a wrong size / repeated */ \
  X(kV2BadChecksum, "v2_bad_checksum")            /* PP2_TYPE_CRC32C does not match */           \
  /* Engine: */                                                                                  \
  X(kUntrustedPeer, "untrusted_peer")  /* a header from a peer not in `trusted` */               \
  X(kTruncated, "truncated")           /* the peer closed inside the header */                   \
  X(kTimeout, "timeout")               /* no complete header within `timeout` */                 \
  X(kBlockedByHook, "blocked_by_hook") /* ProxyProtocolConnectionHook said Block */

enum class Reason : std::uint8_t {
#define RAMJET_PP_ENUM(e, name) e,
  RAMJET_PROXY_PROTOCOL_REASONS(RAMJET_PP_ENUM)
#undef RAMJET_PP_ENUM
};

inline constexpr std::string_view kReasonNames[] = {
#define RAMJET_PP_NAME(e, name) name,
    RAMJET_PROXY_PROTOCOL_REASONS(RAMJET_PP_NAME)
#undef RAMJET_PP_NAME
};

inline constexpr std::size_t kReasonCount = std::size(kReasonNames);

constexpr std::string_view to_string(Reason r) {
  return kReasonNames[static_cast<std::size_t>(r)];
}

}  // namespace ramjet::proxy_protocol
