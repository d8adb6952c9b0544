// Crash attribution at start: the running journal (core/running_journal.h)
// of the daemon that ran before on this state_dir is read before any backend
// claims, each backend is told what it proves, and this daemon's journal
// replaces it. docs/semantics.md, "Attempts after a crash".
#ifndef FOXWORKER_APP_CRASH_ATTRIBUTION_H_
#define FOXWORKER_APP_CRASH_ATTRIBUTION_H_

#include <map>
#include <memory>
#include <string>

#include "daemon/core/backend.h"

namespace foxworker {

// Opens `state_dir`/running.journal, hands each backend that claims under an
// owner name the previous daemon's evidence (AdoptPreviousRun), and installs
// a fresh journal naming these backends' owners. Returns false, with a
// WARNING, when no journal could be used (then every message a crash
// interrupts is charged, as before journals); true also when no backend
// needs one. REQUIRES: before any of `backends` starts.
bool StartRunningJournal(const std::string& state_dir,
                         const std::map<std::string, std::shared_ptr<Backend>>& backends);

// Names a backend a reload adds in the installed journal (if any), before
// it starts.
void RecordClaimOwner(const std::string& name, const Backend& backend);

}  // namespace foxworker

#endif  // FOXWORKER_APP_CRASH_ATTRIBUTION_H_
