// Reading and writing /proc/sys settings (sysctls) of this network namespace.
#pragma once

#include <string>

namespace ramjet::datapath {

// The setting's value as an integer, or -errno.
int read_sysctl(const std::string& path);
// Writes `value`; 0 or -errno.
int write_sysctl(const std::string& path, const char* value);

}  // namespace ramjet::datapath
