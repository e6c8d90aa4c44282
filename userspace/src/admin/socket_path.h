// Where the admin socket lives, and the directories it needs.
//
// The default, /run/ramjet/admin.sock, needs root to create /run/ramjet. A user
// without root (`make run`) gets $XDG_RUNTIME_DIR/ramjet/admin.sock instead, or
// admin.sock beside the config file when XDG_RUNTIME_DIR is unset. Only the
// default falls back: a path the config names is used as written, and if its
// directory cannot be created that is an error naming it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "ramjet/result.h"

namespace ramjet::admin {

struct AdminSocketChoice {
  std::string path;
  // Set when the default could not be used: why, and where the socket went instead
  // (for one log line).
  std::optional<std::string> fallback_note;
};

// `configured` is server.admin_socket; `config_file` the config's path;
// `runtime_dir` the value of $XDG_RUNTIME_DIR ("" when unset).
AdminSocketChoice choose_admin_socket(const std::string& configured,
                                      const std::string& config_file,
                                      const std::string& runtime_dir);

// Where a user without root finds the socket the daemon chose for the default:
// the first of the default and the fallbacks that exists, else the default.
std::string find_default_admin_socket(const std::string& runtime_dir);

// Creates `dir` and its parents. The error names the directory that could not be
// created (the first missing one), with its errno.
Result<void> ensure_directory(const std::string& dir, std::string_view what);

}  // namespace ramjet::admin
