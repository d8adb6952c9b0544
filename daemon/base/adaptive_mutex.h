// AdaptiveMutex: a mutex that spins briefly before it sleeps (glibc's
// PTHREAD_MUTEX_ADAPTIVE_NP), for locks held for a few instructions and
// taken once per message by several threads (a queue's buffer of fetched
// messages, its settlement shards). A plain std::mutex sends a contended
// waiter to sleep in the kernel at once, and the futex wait and wake cost
// more than the work the lock protects. Meets Lockable (std::lock_guard).
#ifndef FOXWORKER_BASE_ADAPTIVE_MUTEX_H_
#define FOXWORKER_BASE_ADAPTIVE_MUTEX_H_

#include <pthread.h>

namespace foxworker {

class AdaptiveMutex {
 public:
  AdaptiveMutex() {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&mu_, &attr);
    pthread_mutexattr_destroy(&attr);
  }
  ~AdaptiveMutex() { pthread_mutex_destroy(&mu_); }
  AdaptiveMutex(const AdaptiveMutex&) = delete;
  AdaptiveMutex& operator=(const AdaptiveMutex&) = delete;

  void lock() { pthread_mutex_lock(&mu_); }
  bool try_lock() { return pthread_mutex_trylock(&mu_) == 0; }
  void unlock() { pthread_mutex_unlock(&mu_); }

 private:
  pthread_mutex_t mu_;
};

}  // namespace foxworker

#endif  // FOXWORKER_BASE_ADAPTIVE_MUTEX_H_
