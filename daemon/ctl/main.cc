// foxworkerctl: inspects and changes a local backend's SQLite file directly;
// no daemon needs to run. See docs/backends/local.md.
#include <glog/logging.h>

#include <iostream>
#include <string>
#include <vector>

#include "daemon/app/builtin_extensions.h"
#include "daemon/ctl/ctl_args.h"
#include "daemon/ctl/ctl_commands.h"

int main(int argc, char** argv) {
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;
  FLAGS_minloglevel = google::GLOG_WARNING;
  foxworker::RegisterBuiltinConfig();

  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = foxworker::ParseCtlArgs(args);
  if (!parsed.ok()) {
    std::cerr << "foxworkerctl: " << parsed.status().message()
              << "\nrun 'foxworkerctl --help' for usage\n";
    return foxworker::kCtlUsage;
  }
  switch (parsed->command) {
    case foxworker::CtlCommand::kHelp:
      std::cout << foxworker::CtlUsage();
      return foxworker::kCtlOk;
    case foxworker::CtlCommand::kVersion:
      std::cout << "foxworkerctl " << FOXWORKER_VERSION << '\n';
      return foxworker::kCtlOk;
    default:
      break;
  }
  std::ios::sync_with_stdio(false);
  return foxworker::RunCtlCommand(*parsed, std::cin, std::cout, std::cerr);
}
