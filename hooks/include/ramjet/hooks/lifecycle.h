// AppLifecycleHook: the application's own start and stop.
#pragma once

#include "ramjet/task.h"

namespace ramjet {

class AppLifecycleHook {
 public:
  virtual ~AppLifecycleHook() = default;
  // After config is loaded and before the first connection is accepted.
  virtual void start() {}
  // After the last connection has closed (or the drain deadline passed).
  virtual void stop() {}
};

}  // namespace ramjet
