// LocalInspector: the local backend's Inspector (daemon/core/inspect.h), on
// a SQLite connection of its own to the backend's file (WAL, so its reads
// never wait for the backend's writes; its writes wait at most the
// inspector's timeout for the write lock). Ids are row ids as text.
#ifndef FOXWORKER_BACKENDS_LOCAL_LOCAL_INSPECTOR_H_
#define FOXWORKER_BACKENDS_LOCAL_LOCAL_INSPECTOR_H_

#include <memory>
#include <string>
#include <vector>

#include "daemon/backends/local/local_config.h"
#include "daemon/backends/local/local_store.h"
#include "daemon/core/inspect.h"

namespace foxworker {

class LocalInspector final : public Inspector {
 public:
  // Opens nothing yet: the first call opens the file (it must exist).
  LocalInspector(std::string path, Durability durability, InspectorOptions options);

  Result<QueueDepth> Depth(const SourceOptions& queue) override;
  Result<DeadLetterPage> ListDead(const SourceOptions& queue, const DeadLetterFilter& filter,
                                  size_t offset, size_t limit) override;
  Result<DeadLetter> GetDead(const SourceOptions& queue, const std::string& id,
                             size_t max_payload) override;
  Result<std::vector<std::string>> RetryDead(const SourceOptions& queue,
                                             const std::vector<std::string>& ids) override;
  Result<size_t> RetryMatching(const SourceOptions& queue, const DeadLetterFilter& filter) override;
  Result<std::vector<std::string>> DeleteDead(const SourceOptions& queue,
                                              const std::vector<std::string>& ids) override;
  Result<size_t> DeleteMatching(const SourceOptions& queue, const DeadLetterFilter& filter) override;
  Result<std::vector<ScheduledJob>> ListScheduled(const SourceOptions& queue, size_t limit) override;

 private:
  // The open store, opening it when needed.
  Result<LocalStore*> Store();
  // Drops the connection after an error other than "not found", so the next
  // call opens the file afresh (it may have been replaced).
  template <typename T>
  Result<T> Checked(Result<T> r);

  std::string path_;
  Durability durability_;
  InspectorOptions options_;
  std::unique_ptr<LocalStore> store_;
};

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_LOCAL_LOCAL_INSPECTOR_H_
