// datapath::connection_flow_json without a kernel: what the audit log's `kernel`
// field holds when there is no flow entry to read (the entry itself is covered by
// the gateway integration test, which needs a real datapath).
#include "datapath/json.h"

#include <gtest/gtest.h>

namespace ramjet::datapath {
namespace {

ConnectionInfo connection(bool escalated) {
  ConnectionInfo info;
  info.id = 77;
  info.endpoint = "web";
  info.client = *SocketAddress::parse("10.10.1.2:40000");
  info.local = *SocketAddress::parse("10.10.2.2:80");
  info.escalated = escalated;
  return info;
}

TEST(ConnectionFlowJson, NullUnlessEscalated) {
  EXPECT_TRUE(connection_flow_json(nullptr, connection(false)).is_null());
}

TEST(ConnectionFlowJson, EscalatedWithoutAnEntryKeepsTheFlowId) {
  EXPECT_EQ(connection_flow_json(nullptr, connection(true)), (nlohmann::json{{"flow_id", 77}}));
}

}  // namespace
}  // namespace ramjet::datapath
