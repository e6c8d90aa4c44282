#include "http/named_enum.h"

#include <gtest/gtest.h>

#include <set>
#include <string_view>

#include "http/capsule.h"
#include "http/connect_ip.h"
#include "http/masque_template.h"

namespace ramjet::http {
namespace {

// The names are counter labels: each must be non-empty and say one reason only.
template <typename Enum>
std::size_t distinct_names(std::size_t count) {
  std::set<std::string_view> names;
  for (std::size_t i = 0; i < count; ++i) {
    const std::string_view name = to_string(static_cast<Enum>(i));
    EXPECT_FALSE(name.empty()) << i;
    names.insert(name);
  }
  return names.size();
}

TEST(MasqueErrorNames, AreDistinctAndMatchTheirEnumerators) {
  EXPECT_EQ(distinct_names<CapsuleError>(kCapsuleErrorCount), kCapsuleErrorCount);
  EXPECT_EQ(distinct_names<ConnectIpError>(kConnectIpErrorCount), kConnectIpErrorCount);
  EXPECT_EQ(distinct_names<TemplateError>(kTemplateErrorCount), kTemplateErrorCount);
  // The order of the list is the order of the enum.
  EXPECT_EQ(to_string(CapsuleError::kCapsuleTooLarge), "capsule_too_large");
  EXPECT_EQ(to_string(CapsuleError::kUdpPayloadTooLong), "udp_payload_too_long");
  EXPECT_EQ(to_string(ConnectIpError::kHostBitsSet), "host_bits_set");
  EXPECT_EQ(to_string(ConnectIpError::kValueTooLarge), "value_too_large");
  EXPECT_EQ(to_string(TemplateError::kMissingTargetPort), "missing_target_port");
  EXPECT_EQ(to_string(TemplateError::kBadTargetPort), "bad_target_port");
}

}  // namespace
}  // namespace ramjet::http
