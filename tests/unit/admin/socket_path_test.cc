#include "admin/socket_path.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "ramjet/config/config.h"
#include "support/temp_dir.h"

namespace ramjet::admin {
namespace {

using SocketPathTest = testing_support::TempDirTest;

TEST_F(SocketPathTest, AConfiguredPathIsUsedAsWritten) {
  auto c = choose_admin_socket(dir_ + "/a/b.sock", dir_ + "/ramjet.yaml", dir_ + "/xdg");
  EXPECT_EQ(c.path, dir_ + "/a/b.sock");
  EXPECT_FALSE(c.fallback_note);
}

TEST_F(SocketPathTest, EnsureDirectoryCreatesParents) {
  auto r = ensure_directory(dir_ + "/x/y/z", "t");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(std::filesystem::is_directory(dir_ + "/x/y/z"));
  EXPECT_TRUE(ensure_directory(dir_ + "/x/y/z", "t").ok());  // again: nothing to do
}

TEST_F(SocketPathTest, EnsureDirectoryNamesTheDirectoryItCouldNotCreateAndErrno) {
  std::ofstream(dir_ + "/file") << "not a directory";
  auto r = ensure_directory(dir_ + "/file/sub/deeper", "server.admin_socket");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ENOTDIR);
  EXPECT_EQ(r.error().message, "server.admin_socket: cannot create directory " + dir_ +
                                   "/file/sub: Not a directory (errno 20)");
}

TEST_F(SocketPathTest, FindDefaultPrefersTheStandardPathThenTheRuntimeDir) {
  std::string standard(config::kDefaultAdminSocket);
  // A daemon on this host may hold the standard path: then it wins whatever else exists.
  bool standard_exists = std::filesystem::exists(standard);
  EXPECT_EQ(find_default_admin_socket(""), standard);
  EXPECT_EQ(find_default_admin_socket(dir_), standard);  // nothing in the runtime dir
  std::filesystem::create_directories(dir_ + "/ramjet");
  std::ofstream(dir_ + "/ramjet/admin.sock") << "";
  EXPECT_EQ(find_default_admin_socket(dir_),
            standard_exists ? standard : dir_ + "/ramjet/admin.sock");
}

}  // namespace
}  // namespace ramjet::admin
