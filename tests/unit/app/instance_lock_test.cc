#include "app/instance_lock.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "support/temp_dir.h"

namespace ramjet::app {
namespace {

using InstanceLockTest = testing_support::TempDirTest;

TEST_F(InstanceLockTest, ASecondHolderIsRefusedWithThePidOfTheFirst) {
  std::string path = dir_ + "/admin.sock.lock";
  auto first = InstanceLock::acquire(path, "admin socket x");
  ASSERT_TRUE(first.ok()) << first.error().message;
  // flock belongs to the open file, so a second open in this process conflicts too.
  auto second = InstanceLock::acquire(path, "admin socket x");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().message, "admin socket x is in use by pid " +
                                        std::to_string(::getpid()) + " (lock " + path + ")");
  std::ifstream note(path);
  std::string pid;
  note >> pid;
  EXPECT_EQ(pid, std::to_string(::getpid()));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(InstanceLockTest, ReleasedWhenTheHolderGoesAndTheFileStays) {
  std::string path = dir_ + "/x.lock";
  {
    auto first = InstanceLock::acquire(path, "x");
    ASSERT_TRUE(first.ok());
  }
  EXPECT_TRUE(std::filesystem::exists(path));
  auto again = InstanceLock::acquire(path, "x");
  EXPECT_TRUE(again.ok()) << again.error().message;
}

TEST_F(InstanceLockTest, ADirectoryIsLockedInPlace) {
  std::string pins = dir_ + "/instance";
  ASSERT_TRUE(std::filesystem::create_directory(pins));
  auto first = InstanceLock::acquire(pins, "datapath instance i");
  ASSERT_TRUE(first.ok()) << first.error().message;
  auto second = InstanceLock::acquire(pins, "datapath instance i");
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message.find("datapath instance i is in use by pid "),
            std::string::npos);
  EXPECT_TRUE(std::filesystem::is_directory(pins));
}

TEST_F(InstanceLockTest, AnUnopenableLockNamesThePathAndErrno) {
  auto r = InstanceLock::acquire(dir_ + "/missing/x.lock", "x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "x: cannot open the lock " + dir_ +
                                   "/missing/x.lock: No such file or directory (errno 2)");
}

}  // namespace
}  // namespace ramjet::app
