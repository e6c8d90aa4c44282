#include "admin/socket_path.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "ramjet/config/config.h"

namespace ramjet::admin {

namespace fs = std::filesystem;

namespace {

std::string runtime_dir_socket(const std::string& runtime_dir) {
  return (fs::path(runtime_dir) / "ramjet" / "admin.sock").string();
}

// The directory exists (or could be made) and this process may create files in it.
bool usable_directory(const std::string& dir, std::string& why) {
  if (auto r = ensure_directory(dir, "admin socket"); !r.ok()) {
    why = r.error().message;
    return false;
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    why = "admin socket: cannot create files in " + dir + ": " + strerror(errno);
    return false;
  }
  return true;
}

}  // namespace

Result<void> ensure_directory(const std::string& dir, std::string_view what) {
  fs::path target = fs::path(dir).lexically_normal();
  fs::path built;
  for (const auto& part : target) {
    built /= part;
    if (::mkdir(built.c_str(), 0755) == 0 || errno == EEXIST) continue;
    int err = errno;
    return Error::kernel(err, std::string(what) + ": cannot create directory " + built.string() +
                                  ": " + strerror(err) + " (errno " + std::to_string(err) + ")");
  }
  struct stat st {};
  if (::stat(target.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Error::kernel(ENOTDIR, std::string(what) + ": " + target.string() +
                                      " is not a directory");
  }
  return {};
}

AdminSocketChoice choose_admin_socket(const std::string& configured,
                                      const std::string& config_file,
                                      const std::string& runtime_dir) {
  if (configured != config::kDefaultAdminSocket) return {configured, std::nullopt};
  std::string why;
  if (usable_directory(fs::path(configured).parent_path().string(), why))
    return {configured, std::nullopt};
  std::string path;
  std::string where;
  if (!runtime_dir.empty()) {
    path = runtime_dir_socket(runtime_dir);
    where = "$XDG_RUNTIME_DIR";
  } else {
    path = (fs::absolute(config_file).parent_path() / "admin.sock").string();
    where = "beside the config (XDG_RUNTIME_DIR is unset)";
  }
  return {path, why + "; the admin socket is " + path + " instead, " + where +
                    " (ramjetctl --admin-socket " + path + ")"};
}

std::string find_default_admin_socket(const std::string& runtime_dir) {
  std::string standard(config::kDefaultAdminSocket);
  if (::access(standard.c_str(), F_OK) == 0 || runtime_dir.empty()) return standard;
  std::string fallback = runtime_dir_socket(runtime_dir);
  return ::access(fallback.c_str(), F_OK) == 0 ? fallback : standard;
}

}  // namespace ramjet::admin
