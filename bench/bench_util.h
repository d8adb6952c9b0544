// Process measurements shared by the broker benchmarks.
#ifndef FOXWORKER_BENCH_BENCH_UTIL_H_
#define FOXWORKER_BENCH_BENCH_UTIL_H_

#include <time.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace foxworker::bench {

// CPU seconds (user + system, every thread) this process has used so far.
inline double ProcessCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// The process's peak resident set size (VmHWM), in MiB.
inline double PeakRssMiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  return 0;
}

}  // namespace foxworker::bench

#endif  // FOXWORKER_BENCH_BENCH_UTIL_H_
