#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "baetyl/context.h"

namespace baetyl {
namespace {

void print_usage(const char* program) {
  std::printf(
      "Usage: %s [-c FILE]\n"
      "  -c, --config FILE  configuration file (default %s)\n"
      "  -h, --help         show this help\n"
      "      --version      show the version\n",
      program, kDefaultConfigFile);
}

}  // namespace

const char* version() { return BAETYL_VERSION; }
const char* git_revision() { return BAETYL_GIT_REVISION; }

int run(int argc, char** argv, const std::function<void(Context&)>& body) {
  const char* program = argc > 0 ? argv[0] : "baetyl-module";
  if (const char* slash = std::strrchr(program, '/')) program = slash + 1;

  ContextOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      print_usage(program);
      return 0;
    }
    if (arg == "--version") {
      std::printf("%s %s (git %s)\n", program, version(), git_revision());
      return 0;
    }
    if ((arg == "-c" || arg == "--config") && i + 1 < argc) {
      options.config_file = argv[++i];
    } else if (arg.starts_with("--config=")) {
      options.config_file = std::string(arg.substr(9));
    } else {
      std::fprintf(stderr, "%s: unknown argument '%s'\n", program, argv[i]);
      print_usage(program);
      return 2;
    }
  }

  std::unique_ptr<Context> context;
  try {
    context = std::make_unique<Context>(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 1;
  }
  context->log().info("{} {} starting", program, version());
  int code = 0;
  try {
    body(*context);
  } catch (const std::exception& e) {
    context->log().error("{}", e.what());
    code = 1;
  } catch (...) {
    context->log().error("stopped by an unknown exception");
    code = 1;
  }
  context->clear_stop_handlers();
  if (code != 0) return code;
  context->log().info("{} stopped", program);
  return 0;
}

}  // namespace baetyl
