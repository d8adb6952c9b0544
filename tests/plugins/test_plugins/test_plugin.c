/* A plugin for the core's tests. Behaviour is chosen by message type:
 *   ok        ack
 *   fail      retry, reason "asked to fail"; out->retry_delay_ms from header delay_ms
 *   reject    reject, reason "bad input"
 *   sleep     sleep <payload> ms, then ack (records concurrency)
 *   bogus     returns verdict 42 (a plugin bug the host must survive)
 *   defer     completes with ack from another thread after 5 ms
 *   defer_now completes with ack before returning FOXW_PENDING
 *   cancel    polls msg_cancelled until true, then retries
 *   record    sleeps <payload> us, appends the id to $FOXWORKER_TEST_RECORD_FILE
 *   record_attempt  the same, with " <attempt>" after the id
 *   publish   publishes "published" to the queue named by <payload>: acks
 *             when it was enqueued, retries with the host's error when not;
 *             appends "publishing" and then "published 0" (or -1) to
 *             $FOXWORKER_TEST_RECORD_FILE around the call
 *   hang      appends the id to $FOXWORKER_TEST_RECORD_FILE, then sleeps
 *             <payload> ms and acks (a test knows it started)
 *   crash     sleeps <payload> ms (0 when empty), then writes through a null
 *             pointer (SIGSEGV)
 *   abort     calls abort() (SIGABRT)
 *   overflow  recurses until the thread's stack overflows (SIGSEGV)
 *   count     adds 1 to the counter count_total, sets the gauge count_last to
 *             <payload>, observes 0.002 in the histogram count_seconds
 *             (defined by create()), acks
 *   exit      calls exit(<payload>), exit(1) when the payload is empty
 *   spin      a busy loop that never ends and never looks at msg_cancelled
 *   fork_bomb forks until fork() fails (max_processes) or <payload> children
 *             exist (default 1000), then kills and reaps them and retries
 *             with "fork failed after N children: <error>" (or rejects with
 *             "fork bomb not stopped after N children" at the cap)
 *   flood     prints <payload> lines on standard output, then acks
 *   syscall   makes the system call (or the kind of call) named by
 *             <payload> with harmless arguments: unshare, ptrace, mount,
 *             socket, clone_newuser, thread, spawn, x32 (x86_64); acks when
 *             it succeeds, rejects with "NAME: ERRNO (text)" when it fails
 *             (the syscall filter's tests)
 * Its shutdown appends "shutdown <pid>" to $FOXWORKER_TEST_SHUTDOWN_FILE
 * when that is set (in a handler child after sleeping
 * $FOXWORKER_TEST_CHILD_SHUTDOWN_MS ms, when that is set).
 * Builds in variants (compile definitions) to exercise the loader's checks.
 * The handlers count what ran (test_plugin_stats()); with
 * $FOXWORKER_TEST_STATS_DIR set the counts are shared between processes
 * (see map_stats), so that a test sees what ran in handler children.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* syscall(), strerrorname_np(), CLONE_NEWUSER */
#endif
#include <foxworker/plugin.h>

#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef TEST_ABI_MAJOR
#define TEST_ABI_MAJOR FOXW_ABI_MAJOR
#endif
#ifndef TEST_ABI_MINOR
#define TEST_ABI_MINOR FOXW_ABI_MINOR
#endif
#ifndef TEST_PLUGIN_VARIANT
#define TEST_PLUGIN_VARIANT "test_plugin"
#endif
#ifndef TEST_INSTANCE_MODEL
#define TEST_INSTANCE_MODEL FOXW_INSTANCE_PER_SLOT
#endif

/* Atomic: tests run two daemons in one process, and both init this one
 * loaded copy while the first one's handlers already read them. */
static const foxw_host_api *_Atomic host;
static foxw_plugin_ctx *_Atomic g_ctx;

/* Creates the file named by FOXW_TEST_CTOR_MARK when the library is loaded:
 * tells a test whether the loader ran any code of the file. */
__attribute__((constructor)) static void mark_loaded(void) {
  const char *path = getenv("FOXW_TEST_CTOR_MARK");
  if (path != NULL) {
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) close(fd);
  }
  /* Calls unshare(0) (changes nothing) and appends "PID 0" or "PID ERRNO"
   * to the file FOXW_TEST_CTOR_UNSHARE names: whether the constructor ran
   * under a syscall filter. */
  path = getenv("FOXW_TEST_CTOR_UNSHARE");
  if (path != NULL) {
    long r = syscall(SYS_unshare, 0);
    const char *err = r == 0 ? "0" : strerrorname_np(errno);
    char line[64];
    int len = snprintf(line, sizeof line, "%d %s\n", (int)getpid(), err ? err : "?");
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
      if (len > 0 && write(fd, line, (size_t)len) < 0) len = 0;
      close(fd);
    }
  }
}

typedef struct instance {
  atomic_int busy;
} instance;

/* The counters test_plugin_stats() reports. In this process's memory, or,
 * when $FOXWORKER_TEST_STATS_DIR is set, in the file <dir>/<variant>.stats
 * mapped shared: every process that loads this variant (the test and the
 * foxworker-child processes of isolation: process, which inherit the
 * environment) then counts into the same ones, so that the test reads what
 * the children did. Lock-free atomics work across processes. */
typedef struct stats {
  atomic_int running, max_running, overlaps, handled, instances;
  atomic_int max_batch, batch_calls; /* the batch handler's */
} stats;
static stats g_local_stats;
static stats *g_stats;
static pthread_once_t g_stats_once = PTHREAD_ONCE_INIT;

static void map_stats(void) {
  g_stats = &g_local_stats;
  const char *dir = getenv("FOXWORKER_TEST_STATS_DIR");
  if (dir == NULL || *dir == '\0') return;
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.stats", dir, TEST_PLUGIN_VARIANT);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  /* Extends a new file with zeros; leaves one another process made as is. */
  void *m = fd >= 0 && ftruncate(fd, sizeof(stats)) == 0
                ? mmap(NULL, sizeof(stats), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                : MAP_FAILED;
  if (m == MAP_FAILED) {
    /* Counting privately would let a test read zeros where a child counted. */
    fprintf(stderr, "test plugin: cannot share its counters in %s: %s\n", path, strerror(errno));
    abort();
  }
  close(fd);
  g_stats = m;
}

static stats *S(void) {
  pthread_once(&g_stats_once, map_stats);
  return g_stats;
}

static atomic_int g_refuse_create;
/* Defined by create() (every instance's create defines them again and gets
 * the same ones). */
static foxw_metric *_Atomic g_count_total;
static foxw_metric *_Atomic g_count_last;
static foxw_metric *_Atomic g_count_seconds;

FOXW_EXPORT void test_plugin_stats(int *handled, int *max_running, int *overlaps, int *instances) {
  *handled = atomic_load(&S()->handled);
  *max_running = atomic_load(&S()->max_running);
  *overlaps = atomic_load(&S()->overlaps);
  *instances = atomic_load(&S()->instances);
}

/* Restarts the max_running count from the handlers running now. */
FOXW_EXPORT void test_plugin_reset_max_running(void) {
  atomic_store(&S()->max_running, atomic_load(&S()->running));
}

/* While set, create() fails (a plugin that cannot make more instances). */
FOXW_EXPORT void test_plugin_refuse_create(int refuse) { atomic_store(&g_refuse_create, refuse); }

FOXW_EXPORT void test_plugin_reset(void) {
  atomic_store(&g_refuse_create, 0);
  atomic_store(&S()->max_batch, 0);
  atomic_store(&S()->batch_calls, 0);
  atomic_store(&S()->running, 0);
  atomic_store(&S()->max_running, 0);
  atomic_store(&S()->overlaps, 0);
  atomic_store(&S()->handled, 0);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static long payload_number(const foxw_message *msg) {
  foxw_str p = host->msg_payload(msg);
  char buf[32];
  size_t n = p.len < sizeof buf - 1 ? p.len : sizeof buf - 1;
  memcpy(buf, p.ptr, n);
  buf[n] = '\0';
  return strtol(buf, NULL, 10);
}

static void enter(instance *self) {
  stats *s = S();
  if (atomic_exchange(&self->busy, 1) != 0 && TEST_INSTANCE_MODEL == FOXW_INSTANCE_PER_SLOT)
    atomic_fetch_add(&s->overlaps, 1);
  int now = atomic_fetch_add(&s->running, 1) + 1;
  int max = atomic_load(&s->max_running);
  while (now > max && !atomic_compare_exchange_weak(&s->max_running, &max, now)) {
  }
}

static void leave(instance *self) {
  stats *s = S();
  atomic_fetch_sub(&s->running, 1);
  atomic_store(&self->busy, 0);
  atomic_fetch_add(&s->handled, 1);
}

static foxw_verdict handle_ok(void *inst, const foxw_message *msg, foxw_outcome *out) {
  (void)msg; (void)out;
  enter(inst);
  leave(inst);
  return FOXW_ACK;
}

static foxw_verdict handle_fail(void *inst, const foxw_message *msg, foxw_outcome *out) {
  enter(inst);
  foxw_set_reason(out, "asked to fail", 13);
  foxw_str delay;
  if (host->msg_header(msg, "delay_ms", 8, &delay)) {
    char buf[24] = {0};
    memcpy(buf, delay.ptr, delay.len < 23 ? delay.len : 23);
    out->retry_delay_ms = strtoull(buf, NULL, 10);
  }
  leave(inst);
  return FOXW_RETRY;
}

static foxw_verdict handle_reject(void *inst, const foxw_message *msg, foxw_outcome *out) {
  (void)msg;
  enter(inst);
  foxw_set_reason(out, "bad input", 9);
  leave(inst);
  return FOXW_REJECT;
}

static foxw_verdict handle_sleep(void *inst, const foxw_message *msg, foxw_outcome *out) {
  (void)out;
  enter(inst);
  sleep_ms(payload_number(msg));
  leave(inst);
  return FOXW_ACK;
}

static foxw_verdict handle_bogus(void *inst, const foxw_message *msg, foxw_outcome *out) {
  (void)msg; (void)out;
  enter(inst);
  leave(inst);
  return 42;
}

static void *complete_later(void *arg) {
  sleep_ms(5);
  host->complete((const foxw_message *)arg, FOXW_ACK, NULL, 0, 0);
  return NULL;
}

static foxw_verdict handle_defer(void *inst, const foxw_message *msg, foxw_outcome *out) {
  (void)out;
  enter(inst);
  pthread_t t;
  pthread_create(&t, NULL, complete_later, (void *)msg);
  pthread_detach(t);
  leave(inst);
  return FOXW_PENDING;
}

static foxw_verdict handle_defer_now(void *inst, const foxw_message *msg, foxw_outcome *out) {
  (void)out;
  enter(inst);
  host->complete(msg, FOXW_ACK, NULL, 0, 0);
  leave(inst);
  return FOXW_PENDING;
}

static foxw_verdict handle_cancel(void *inst, const foxw_message *msg, foxw_outcome *out) {
  enter(inst);
  while (!host->msg_cancelled(msg)) sleep_ms(1);
  foxw_set_reason(out, "cancelled", 9);
  leave(inst);
  return FOXW_RETRY;
}

/* Appends a line to $FOXWORKER_TEST_RECORD_FILE (one O_APPEND write per
 * message, atomic for short lines), after sleeping <payload> us: the
 * message id, and with `with_attempt` a space and the attempt number. */
static void record(const foxw_message *msg, int with_attempt) {
  long us = payload_number(msg);
  if (us > 0) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};
    nanosleep(&ts, NULL);
  }
  const char *path = getenv("FOXWORKER_TEST_RECORD_FILE");
  if (path == NULL) return;
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  char line[96];
  foxw_str id = host->msg_id(msg);
  size_t n = id.len < 63 ? id.len : 63;
  memcpy(line, id.ptr, n);
  if (with_attempt) {
    int w = snprintf(line + n, sizeof line - n - 1, " %u", (unsigned)host->msg_attempt(msg));
    if (w > 0) n += (size_t)w;
  }
  line[n++] = '\n';
  ssize_t w = write(fd, line, n);
  (void)w;
  close(fd);
}

static foxw_verdict handle_record(void *inst, const foxw_message *msg, foxw_outcome *out) {
  (void)out;
  enter(inst);
  record(msg, 0);
  leave(inst);
  return FOXW_ACK;
}

/* As record, with the attempt: "<id> <attempt>". */
static foxw_verdict handle_record_attempt(void *inst, const foxw_message *msg, foxw_outcome *out) {
  (void)out;
  enter(inst);
  record(msg, 1);
  leave(inst);
  return FOXW_ACK;
}

/* Fails (retry) until the message's attempt reaches <payload>. */
static foxw_verdict handle_fail_until(void *inst, const foxw_message *msg, foxw_outcome *out) {
  enter(inst);
  long ok_at = payload_number(msg);
  foxw_verdict v = (long)host->msg_attempt(msg) >= ok_at ? FOXW_ACK : FOXW_RETRY;
  if (v == FOXW_RETRY) foxw_set_reason(out, "not yet", 7);
  leave(inst);
  return v;
}

/* Appends `text` and a newline to $FOXWORKER_TEST_RECORD_FILE. */
static void record_text(const char *text) {
  const char *path = getenv("FOXWORKER_TEST_RECORD_FILE");
  if (path == NULL) return;
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  char line[96];
  int n = snprintf(line, sizeof line, "%s\n", text);
  if (n > 0) {
    ssize_t w = write(fd, line, (size_t)n);
    (void)w;
  }
  close(fd);
}

static foxw_verdict handle_publish(void *inst, const foxw_message *msg, foxw_outcome *out) {
  enter(inst);
  foxw_publish p;
  memset(&p, 0, sizeof p);
  p.struct_size = sizeof p;
  p.queue = host->msg_payload(msg);
  p.payload.ptr = "published";
  p.payload.len = 9;
  char err[256] = "";
  record_text("publishing");
  int32_t rc = host->publish(g_ctx, msg, &p, err, sizeof err);
  record_text(rc == 0 ? "published 0" : "published -1");
  if (rc != 0) foxw_set_reason(out, err, strlen(err));
  leave(inst);
  return rc == 0 ? FOXW_ACK : FOXW_RETRY;
}

static foxw_verdict handle_hang(void *inst, const foxw_message *msg, foxw_outcome *out) {
  (void)out;
  enter(inst);
  foxw_str id = host->msg_id(msg);
  char text[64];
  snprintf(text, sizeof text, "%.*s", (int)(id.len < 63 ? id.len : 63), id.ptr);
  record_text(text);
  sleep_ms(payload_number(msg));
  leave(inst);
  return FOXW_ACK;
}

static foxw_verdict handle_count(void *inst, const foxw_message *msg, foxw_outcome *out) {
  (void)out;
  enter(inst);
  host->metric_update(g_count_total, 1);
  host->metric_update(g_count_last, (double)payload_number(msg));
  host->metric_update(g_count_seconds, 0.002);
  leave(inst);
  return FOXW_ACK;
}

/* For the crash report's tests: handlers that kill the process. */
static foxw_verdict handle_crash(void *inst, const foxw_message *msg, foxw_outcome *out) {
  (void)out;
  enter(inst);
  sleep_ms(payload_number(msg));
  /* Both volatile: a real store, not a compiler trap or nothing at all. */
  volatile int *volatile target = NULL;
  *target = 1;
  leave(inst);
  return FOXW_ACK;
}

static foxw_verdict handle_abort(void *inst, const foxw_message *msg, foxw_outcome *out) {
  (void)msg; (void)out;
  enter(inst);
  abort();
}

/* Logs the payload through the host, then prints it on standard output and
 * standard error (what isolation: process captures into the daemon's log). */
static foxw_verdict handle_print(void *inst, const foxw_message *msg, foxw_outcome *out) {
  (void)out;
  enter(inst);
  foxw_str p = host->msg_payload(msg);
  host->log(g_ctx, FOXW_LOG_WARN, p.ptr, p.len);
  printf("stdout: %.*s\n", (int)p.len, p.ptr);
  fflush(stdout);
  fprintf(stderr, "stderr: %.*s\n", (int)p.len, p.ptr);
  leave(inst);
  return FOXW_ACK;
}

/* Leaks (payload) MiB, touched so that it is resident; kept reachable from
 * a global so that the compiler cannot drop the allocation. */
static void *_Atomic g_leaked;
static foxw_verdict handle_leak(void *inst, const foxw_message *msg, foxw_outcome *out) {
  (void)out;
  enter(inst);
  size_t bytes = (size_t)payload_number(msg) << 20;
  char *p = malloc(bytes + sizeof(void *));
  if (p != NULL) {
    memset(p, 1, bytes + sizeof(void *));
    *(void **)p = atomic_exchange(&g_leaked, (void *)p);
  }
  leave(inst);
  return p != NULL ? FOXW_ACK : FOXW_RETRY;
}

/* A plugin that quits the process with exit() from a handler: the atexit
 * handlers and static destructors run, the status is the payload (1 when
 * empty). */
static foxw_verdict handle_exit(void *inst, const foxw_message *msg, foxw_outcome *out) {
  (void)out;
  enter(inst);
  long code = payload_number(msg);
  exit(code != 0 ? (int)code : 1);
}

/* An infinite loop: only a kill ends it. */
static foxw_verdict handle_spin(void *inst, const foxw_message *msg, foxw_outcome *out) {
  (void)msg; (void)out;
  enter(inst);
  volatile unsigned long n = 1;
  while (n != 0) n = n + 2; /* odd: never 0 */
  return FOXW_ACK;
}

/* A fork bomb that a limit must stop: forks until fork() fails. The cap
 * (<payload>, default 1000) keeps a missing limit from taking the machine
 * down; each child waits to be killed (and dies with its parent, or after
 * 60 s by itself). All are killed and reaped before the handler returns. */
static foxw_verdict handle_fork_bomb(void *inst, const foxw_message *msg, foxw_outcome *out) {
  enter(inst);
  long cap = payload_number(msg);
  if (cap <= 0) cap = 1000;
  pid_t *kids = malloc((size_t)cap * sizeof(pid_t));
  long n = 0;
  int err = 0;
  const pid_t parent = getpid();
  while (kids != NULL && n < cap) {
    pid_t p = fork();
    if (p < 0) {
      err = errno;
      break;
    }
    if (p == 0) {
      /* Async-signal-safe calls only: the parent has threads. */
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(0);
      alarm(60);
      for (;;) pause();
    }
    kids[n++] = p;
  }
  for (long i = 0; i < n; ++i) kill(kids[i], SIGKILL);
  for (long i = 0; i < n; ++i) waitpid(kids[i], NULL, 0);
  free(kids);
  char reason[128];
  int len;
  foxw_verdict v;
  if (err != 0) {
    len = snprintf(reason, sizeof reason, "fork failed after %ld children: %s", n, strerror(err));
    v = FOXW_RETRY;
  } else {
    len = snprintf(reason, sizeof reason, "fork bomb not stopped after %ld children", n);
    v = FOXW_REJECT;
  }
  foxw_set_reason(out, reason, len > 0 ? (size_t)len : 0);
  leave(inst);
  return v;
}

/* Prints <payload> numbered lines on standard output. */
static foxw_verdict handle_flood(void *inst, const foxw_message *msg, foxw_outcome *out) {
  (void)out;
  enter(inst);
  long lines = payload_number(msg);
  for (long i = 0; i < lines; ++i) printf("flood line %ld\n", i);
  fflush(stdout);
  leave(inst);
  return FOXW_ACK;
}

extern char **environ;

static void *do_nothing(void *arg) { return arg; }

static foxw_verdict handle_syscall(void *inst, const foxw_message *msg, foxw_outcome *out) {
  enter(inst);
  foxw_str p = host->msg_payload(msg);
  char name[64];
  size_t n = p.len < sizeof name - 1 ? p.len : sizeof name - 1;
  memcpy(name, p.ptr, n);
  name[n] = '\0';
  long r = -1;
  errno = 0;
  if (strcmp(name, "unshare") == 0) {
    r = syscall(SYS_unshare, 0); /* no flags: changes nothing */
  } else if (strcmp(name, "ptrace") == 0) {
    siginfo_t si;
    r = syscall(SYS_ptrace, PTRACE_GETSIGINFO, getpid(), NULL, &si); /* ESRCH: no tracee */
  } else if (strcmp(name, "mount") == 0) {
    r = syscall(SYS_mount, "none", "/nonexistent/foxworker-test", "tmpfs", 0, NULL);
  } else if (strcmp(name, "socket") == 0) {
    r = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (r >= 0) {
      close((int)r);
      r = 0;
    }
  } else if (strcmp(name, "clone_newuser") == 0) {
    /* A process in a user namespace of its own, which exits at once. */
    r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (r == 0) syscall(SYS_exit_group, 0);
    if (r > 0) {
      waitpid((pid_t)r, NULL, 0);
      r = 0;
    }
  } else if (strcmp(name, "thread") == 0) {
    pthread_t t;
    int e = pthread_create(&t, NULL, do_nothing, NULL);
    if (e == 0) {
      pthread_join(t, NULL);
      r = 0;
    }
    errno = e;
  } else if (strcmp(name, "spawn") == 0) {
    char *argv[] = {"true", NULL};
    pid_t pid;
    int e = posix_spawnp(&pid, "true", NULL, NULL, argv, environ);
    int status = 0;
    if (e == 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
        WEXITSTATUS(status) == 0)
      r = 0;
    errno = e;
#if defined(__x86_64__)
  } else if (strcmp(name, "x32") == 0) {
    r = syscall(0x40000000 /* __X32_SYSCALL_BIT */ | SYS_getpid);
#endif
  } else {
    errno = EINVAL;
  }
  const int err = errno;
  leave(inst);
  if (r >= 0) return FOXW_ACK;
  char reason[160];
  const char *err_name = strerrorname_np(err);
  int len = snprintf(reason, sizeof reason, "%s: %s (%s)", name, err_name ? err_name : "?",
                     strerror(err));
  foxw_set_reason(out, reason, len > 0 ? (size_t)len : 0);
  return FOXW_REJECT;
}

/* Frames smaller than a page, so that the stack pointer walks into the guard
 * page below the stack (a larger frame could jump over it). */
static long recurse(long depth, long limit) {
  volatile char frame[256];
  frame[0] = (char)depth;
  if (depth >= limit) return frame[0];
  return recurse(depth + 1, limit) + frame[0];
}

static foxw_verdict handle_overflow(void *inst, const foxw_message *msg, foxw_outcome *out) {
  (void)msg; (void)out;
  enter(inst);
  long limit = 1L << 40; /* never reached: the stack ends first */
  volatile long r = recurse(0, limit);
  (void)r;
  leave(inst);
  return FOXW_ACK;
}

/* A downstream that fails while test_plugin_set_down(1). */
static atomic_int g_down;
FOXW_EXPORT void test_plugin_set_down(int down) { atomic_store(&g_down, down); }

static foxw_verdict handle_downstream(void *inst, const foxw_message *msg, foxw_outcome *out) {
  (void)msg;
  enter(inst);
  int down = atomic_load(&g_down);
  if (down) foxw_set_reason(out, "downstream unavailable", 22);
  leave(inst);
  return down ? FOXW_RETRY : FOXW_ACK;
}

/* A batch handler: acks every message but rejects payload "bad"; records
 * the largest batch and the number of calls. A payload "abort" in the batch
 * aborts the process; "hang" makes the call wait until every message of
 * the batch is cancelled (ignore: "hang_hard", which never returns). */
FOXW_EXPORT void test_plugin_batch_stats(int *max_batch, int *calls) {
  *max_batch = atomic_load(&S()->max_batch);
  *calls = atomic_load(&S()->batch_calls);
}

static int payload_is(const foxw_message *msg, const char *text) {
  foxw_str p = host->msg_payload(msg);
  size_t n = strlen(text);
  return p.len == n && memcmp(p.ptr, text, n) == 0;
}

static void handle_batch(void *inst, const foxw_message *const *msgs, size_t count,
                         foxw_verdict *verdicts, foxw_outcome *const *outs) {
  enter(inst);
  int n = (int)count, max = atomic_load(&S()->max_batch);
  while (n > max && !atomic_compare_exchange_weak(&S()->max_batch, &max, n)) {
  }
  atomic_fetch_add(&S()->batch_calls, 1);
  for (size_t i = 0; i < count; ++i) {
    if (payload_is(msgs[i], "abort")) abort();
    if (payload_is(msgs[i], "hang_hard"))
      for (;;) sleep_ms(1000);
    if (payload_is(msgs[i], "hang"))
      while (!host->msg_cancelled(msgs[i])) sleep_ms(5);
  }
  for (size_t i = 0; i < count; ++i) {
    foxw_str p = host->msg_payload(msgs[i]);
    if (p.len == 3 && memcmp(p.ptr, "bad", 3) == 0) {
      foxw_set_reason(outs[i], "bad item", 8);
      verdicts[i] = FOXW_REJECT;
    } else {
      verdicts[i] = FOXW_ACK;
    }
  }
  atomic_fetch_add(&S()->handled, (int)count - 1); /* leave() adds one */
  leave(inst);
}

static const foxw_handler_def handlers[] = {
    FOXW_BATCH_HANDLER("batch", handle_batch),
    FOXW_HANDLER("fail_until", handle_fail_until),
    FOXW_HANDLER("downstream", handle_downstream),
    FOXW_HANDLER("record", handle_record),
    FOXW_HANDLER("record_attempt", handle_record_attempt),
    FOXW_HANDLER("ok", handle_ok),
    FOXW_HANDLER("fail", handle_fail),
    FOXW_HANDLER("reject", handle_reject),
    FOXW_HANDLER("sleep", handle_sleep),
    FOXW_HANDLER("bogus", handle_bogus),
    FOXW_HANDLER("defer", handle_defer),
    FOXW_HANDLER("defer_now", handle_defer_now),
    FOXW_HANDLER("cancel", handle_cancel),
    FOXW_HANDLER("publish", handle_publish),
    FOXW_HANDLER("hang", handle_hang),
    FOXW_HANDLER("crash", handle_crash),
    FOXW_HANDLER("abort", handle_abort),
    FOXW_HANDLER("overflow", handle_overflow),
    FOXW_HANDLER("print", handle_print),
    FOXW_HANDLER("leak", handle_leak),
    FOXW_HANDLER("count", handle_count),
    FOXW_HANDLER("exit", handle_exit),
    FOXW_HANDLER("spin", handle_spin),
    FOXW_HANDLER("fork_bomb", handle_fork_bomb),
    FOXW_HANDLER("flood", handle_flood),
    FOXW_HANDLER("syscall", handle_syscall),
#ifdef TEST_DUPLICATE_HANDLER
    FOXW_HANDLER("ok", handle_ok),
#endif
};

static int32_t create(foxw_plugin_ctx *ctx, const char *json, size_t len, void **out, char *err,
                      size_t cap) {
  (void)len;
#ifdef TEST_CREATE_REFUSES
  (void)ctx; (void)json; (void)out;
  foxw_set_error(err, cap, "the test plugin refuses to create instances");
  return 1;
#else
  if (atomic_load(&g_refuse_create)) {
    foxw_set_error(err, cap, "refused by test_plugin_refuse_create");
    return 1;
  }
  if (strstr(json, "\"refuse\":true") != NULL) {
    foxw_set_error(err, cap, "refused by config");
    return 1;
  }
  char merr[256];
  atomic_store(&g_count_total, host->metric_define(ctx, FOXW_METRIC_COUNTER, "count_total",
                                                   "Messages the count handler handled.", merr,
                                                   sizeof merr));
  atomic_store(&g_count_last, host->metric_define(ctx, FOXW_METRIC_GAUGE, "count_last",
                                                  "The payload of the last count message.", merr,
                                                  sizeof merr));
  atomic_store(&g_count_seconds, host->metric_define(ctx, FOXW_METRIC_HISTOGRAM, "count_seconds",
                                                     "What the count handler observed.", merr,
                                                     sizeof merr));
  instance *self = calloc(1, sizeof *self);
  atomic_fetch_add(&S()->instances, 1);
  *out = self;
  return 0;
#endif
}

static void destroy(void *inst) {
  atomic_fetch_sub(&S()->instances, 1);
  free(inst);
}

/* Appends "shutdown <pid>" to $FOXWORKER_TEST_SHUTDOWN_FILE when it is set:
 * a test sees which processes (the daemon, each handler child) ran it. In a
 * handler child (foxworker-child), first sleeps
 * $FOXWORKER_TEST_CHILD_SHUTDOWN_MS ms when that is set: a shutdown hook
 * that takes too long. */
static void plugin_shutdown(foxw_plugin_ctx *ctx) {
  (void)ctx;
  const char *path = getenv("FOXWORKER_TEST_SHUTDOWN_FILE");
  if (path == NULL) return;
  const char *delay = getenv("FOXWORKER_TEST_CHILD_SHUTDOWN_MS");
  char comm[32] = "";
  if (delay != NULL && prctl(PR_GET_NAME, comm, 0, 0, 0) == 0 &&
      strcmp(comm, "foxworker-child") == 0)
    sleep_ms(atol(delay));
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  char line[64];
  int n = snprintf(line, sizeof line, "shutdown %ld\n", (long)getpid());
  if (n > 0) {
    ssize_t w = write(fd, line, (size_t)n);
    (void)w;
  }
  close(fd);
}

static const foxw_plugin_v1 plugin = {
    sizeof(foxw_plugin_v1), TEST_INSTANCE_MODEL, 0, handlers,
    sizeof handlers / sizeof handlers[0], sizeof(foxw_handler_def), create, destroy,
    plugin_shutdown};

#ifndef TEST_NO_MAGIC
FOXW_EXPORT const foxw_plugin_info *foxworker_plugin_magic(void) {
  static const foxw_plugin_info info = {sizeof(foxw_plugin_info), FOXW_PLUGIN_MAGIC_VALUE,
                                        TEST_ABI_MAJOR, TEST_ABI_MINOR, FOXW_ABI_MINOR, 0,
                                        "test", "1.0.0", "core test plugin", NULL, 0,
                                        sizeof(foxw_config_key)};
  return &info;
}
#endif

FOXW_EXPORT const foxw_plugin_v1 *foxworker_plugin_init_v1(const foxw_host_api *h,
                                                           foxw_plugin_ctx *ctx, char *err,
                                                           size_t cap) {
  (void)ctx;
#ifdef TEST_INIT_REFUSES
  (void)h;
  (void)plugin;
  foxw_set_error(err, cap, "missing licence key");
  return NULL;
#else
  (void)err; (void)cap;
  host = h;
  g_ctx = ctx;
  return &plugin;
#endif
}
