// StorageFault: what a failed SQLite call says about the file under the
// local backend, so that the backend reports a state (and logs one line per
// change of state) instead of one line per failed retry.
#ifndef FOXWORKER_BACKENDS_LOCAL_STORAGE_FAULT_H_
#define FOXWORKER_BACKENDS_LOCAL_STORAGE_FAULT_H_

namespace foxworker {

enum class StorageFault {
  kOk,
  kDiskFull,   // SQLITE_FULL, ENOSPC, EDQUOT
  kReadOnly,   // SQLITE_READONLY, EROFS: a read-only remount, a read-only file
  kCorrupt,    // SQLITE_CORRUPT, SQLITE_NOTADB, or PRAGMA quick_check failed
  kDeleted,    // SQLITE_READONLY_DBMOVED: the file was deleted or replaced while open
  kIoError,    // SQLITE_IOERR: the device failed (EIO)
  kBusy,       // SQLITE_BUSY: another process held the write lock too long
  kOther,      // anything else
};

// The metric label and log spelling: "ok", "disk_full", "read_only",
// "corrupt", "deleted", "io_error", "busy", "error".
const char* StorageFaultName(StorageFault fault);

// Every state, in the order the metric lists them.
inline constexpr StorageFault kStorageFaults[] = {
    StorageFault::kOk,      StorageFault::kDiskFull, StorageFault::kReadOnly,
    StorageFault::kCorrupt, StorageFault::kDeleted,  StorageFault::kIoError,
    StorageFault::kBusy,    StorageFault::kOther,
};

// From SQLite's extended result code and the errno of the failed system call
// (sqlite3_system_errno; 0 when none).
StorageFault ClassifyStorageError(int extended_rc, int system_errno);

// What the operator does about it, one sentence (empty for kOk).
const char* StorageFaultAdvice(StorageFault fault);

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_LOCAL_STORAGE_FAULT_H_
