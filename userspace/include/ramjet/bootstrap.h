// ramjet::bootstrap<App>(argc, argv): the whole daemon around an application's hooks.
//
// The engine is not a template: bootstrap<App> wraps the App's typed hooks and
// context types in an engine::TypedHookSet (ramjet/engine/hook_set.h).
#pragma once

#include <memory>
#include <string>

#include "ramjet/config/config.h"
#include "ramjet/engine/hook_set.h"
#include "ramjet/hooks/app.h"

namespace ramjet {

namespace engine {

// Everything the daemon needs to know about an application, without its types.
struct AppDescriptor {
  std::string name;
  std::string version;
  std::string description;
  config::AppSchema schema;
  // Called once with the parsed `app:` settings (a pointer to App::Settings).
  std::unique_ptr<HookSet> (*start)(const void* app_settings) = nullptr;
};

// Parses the command line, loads config, runs the daemon. Returns the exit code.
int run_app(const AppDescriptor& app, int argc, char** argv);

}  // namespace engine

template <typename App>
int bootstrap(int argc, char** argv) {
  using Traits = AppTraits<App>;
  engine::AppDescriptor d;
  d.name = std::string(App::name);
  d.version = std::string(App::version);
  d.description = std::string(App::description);
  d.schema.app_name = d.name;
  d.schema.app = settings::ErasedStruct::of<typename Traits::Settings>();
  d.schema.endpoint = settings::ErasedStruct::of<typename Traits::EndpointSettings>();
  d.start = [](const void* s) -> std::unique_ptr<engine::HookSet> {
    const auto& typed = *static_cast<const typename Traits::Settings*>(s);
    return std::make_unique<engine::TypedHookSet<App>>(App::start(typed));
  };
  return engine::run_app(d, argc, argv);
}

}  // namespace ramjet
