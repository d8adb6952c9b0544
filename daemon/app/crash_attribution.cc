#include "daemon/app/crash_attribution.h"

#include <glog/logging.h>

#include <filesystem>
#include <utility>

#include "daemon/core/running_journal.h"

namespace foxworker {

bool StartRunningJournal(const std::string& state_dir,
                         const std::map<std::string, std::shared_ptr<Backend>>& backends) {
  std::map<std::string, std::string> owners;
  for (const auto& [name, b] : backends) {
    std::string owner = b->ClaimOwner();
    if (!owner.empty()) owners[name] = std::move(owner);
  }
  if (owners.empty()) return true;  // nothing claimed outlives this process
  const std::string path = (std::filesystem::path(state_dir) / RunningJournal::kFileName).string();
  auto opened = RunningJournal::Open(path);
  if (!opened.ok()) {
    LOG(WARNING) << "running journal: " << opened.status().message()
                 << "; without it, a crash charges an attempt to every message this daemon had "
                    "claimed, started or not (docs/operations.md#running-journal)";
    return false;
  }
  std::unique_ptr<RunningJournal> journal = std::move(*opened);
  if (const auto& ev = journal->previous()) {
    std::string ids;
    for (size_t i = 0; i < ev->running_ids.size() && i < 20; ++i)
      ids += (i ? ", " : "") + ev->running_ids[i];
    LOG(INFO) << "running journal " << path << ": the previous daemon (pid " << ev->pid << ") had "
              << ev->running.size() << " handler(s) running when it ended"
              << (ids.empty() ? "" : ": " + ids);
    for (const auto& [name, b] : backends) {
      const std::string* owner = ev->OwnerOf(name);
      if (owner == nullptr || owners.count(name) == 0) continue;
      b->AdoptPreviousRun(PreviousRun{*owner, ev});
    }
  } else if (journal->problem().empty()) {
    LOG(INFO) << "running journal " << path << ": created (no previous journal; whatever an "
                 "earlier daemon had claimed is charged an attempt)";
  } else {
    LOG(WARNING) << "running journal " << path << " is no proof of what the previous daemon ran: "
                 << journal->problem()
                 << "; whatever it had claimed is charged an attempt (docs/operations.md#running-journal)";
  }
  journal->Reset();
  for (const auto& [name, owner] : owners) {
    if (!journal->RecordOwner(name, owner)) {
      LOG(WARNING) << "running journal " << path << ": no room for backend " << name << " (owner "
                   << owner << "); after a crash its claimed messages are all charged";
    }
  }
  RunningJournal::Install(std::move(journal));
  return true;
}

void RecordClaimOwner(const std::string& name, const Backend& backend) {
  RunningJournal* j = RunningJournal::Current();
  if (j == nullptr) return;
  const std::string owner = backend.ClaimOwner();
  if (!owner.empty() && !j->RecordOwner(name, owner)) {
    LOG(WARNING) << "running journal " << j->path() << ": no room for backend " << name
                 << " (owner " << owner << "); after a crash its claimed messages are all charged";
  }
}

}  // namespace foxworker
