// The command line of foxworkerctl, parsed into plain data.
//
//   foxworkerctl [--db FILE | --config FILE [--backend NAME]] [--json] COMMAND ...
//
// Options may appear before or after the command. A parse error is a usage
// error (exit code 2); everything else is decided when the command runs.
#ifndef FOXWORKER_CTL_CTL_ARGS_H_
#define FOXWORKER_CTL_CTL_ARGS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "daemon/core/message.h"
#include "daemon/base/status.h"

namespace foxworker {

enum class CtlCommand {
  kHelp,
  kVersion,
  kEnqueue,
  kStats,
  kDeadList,
  kDeadShow,
  kDeadRetry,
  kDeadPurge,
  kPause,
  kResume,
};

struct CtlArgs {
  CtlCommand command = CtlCommand::kHelp;

  // Where the database is: a file, or the daemon's config and one of its
  // local backends (the first when `backend` is empty).
  std::string db_path;
  std::string config_path;
  std::string backend;
  bool json = false;  // machine-readable output

  // --url: a running daemon's admin HTTP (http://HOST:PORT) instead of the
  // SQLite file; every backend. The token from --token-file, else
  // $FOXWORKER_ADMIN_TOKEN (or $FOXWORKER_ADMIN_TOKEN_FILE).
  std::string url;
  std::string token_file;
  std::string reason;                // dead list/retry/purge --reason: a filter
  std::vector<std::string> str_ids;  // dead show/retry/purge over --url (opaque ids)

  std::string queue;  // enqueue, pause, resume; optional filter for dead list/retry/purge

  // enqueue
  std::string payload;
  bool payload_given = false;  // as an argument
  std::string payload_file;    // --file; "-" = standard input
  bool raw = false;            // with --json: do not require a JSON payload
  std::string message_type;
  std::string content_type;
  std::string correlation_id;
  std::string unique_key;
  Headers headers;
  int64_t priority = 0;
  int64_t delay_ms = 0;
  int64_t run_at_ms = 0;  // 0 = not given

  // dead
  std::vector<int64_t> ids;  // show (exactly one), retry, purge
  bool all = false;          // retry/purge every dead job (of `queue` when given)
  int limit = 50;            // dead list
};

// `args` excludes the program name.
Result<CtlArgs> ParseCtlArgs(const std::vector<std::string>& args);

// The --help text.
const char* CtlUsage();

// "2026-03-01T12:00:00Z", "2026-03-01T12:00:00.250+01:00": Unix ms. A zone
// (Z or an offset) is required, so that the time cannot be misread.
Result<int64_t> ParseIso8601(const std::string& text);

}  // namespace foxworker

#endif  // FOXWORKER_CTL_CTL_ARGS_H_
