#include "daemon/base/crash_stack.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>

namespace foxworker {
namespace {

// Enough for the report: formatting on the stack plus the unwinder that
// backtrace() runs (a few KiB), with a wide margin for what libgcc needs.
constexpr size_t kStackSize = 64 * 1024;

class ThreadCrashStack {
 public:
  ~ThreadCrashStack() {
    if (map_ == nullptr) return;
    stack_t off{};
    off.ss_flags = SS_DISABLE;
    sigaltstack(&off, nullptr);
    munmap(map_, map_size_);
  }

  void Install() {
    if (map_ != nullptr) return;
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    long min = sysconf(_SC_MINSIGSTKSZ);
    size_t size = kStackSize;
    if (min > 0 && static_cast<size_t>(min) * 4 > size) size = static_cast<size_t>(min) * 4;
    size = (size + page - 1) / page * page;
    void* map = mmap(nullptr, size + page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED) return;
    // The lowest page is the guard: the signal stack grows down towards it.
    mprotect(map, page, PROT_NONE);
    stack_t ss{};
    ss.ss_sp = static_cast<char*>(map) + page;
    ss.ss_size = size;
    if (sigaltstack(&ss, nullptr) != 0) {
      munmap(map, size + page);
      return;
    }
    map_ = map;
    map_size_ = size + page;
  }

 private:
  void* map_ = nullptr;
  size_t map_size_ = 0;
};

thread_local ThreadCrashStack t_crash_stack;

}  // namespace

void InstallThreadCrashStack() { t_crash_stack.Install(); }

}  // namespace foxworker
