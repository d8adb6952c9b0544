#include "daemon/backends/local/storage_fault.h"

#include <sqlite3.h>

#include <cerrno>

namespace foxworker {

const char* StorageFaultName(StorageFault fault) {
  switch (fault) {
    case StorageFault::kOk:
      return "ok";
    case StorageFault::kDiskFull:
      return "disk_full";
    case StorageFault::kReadOnly:
      return "read_only";
    case StorageFault::kCorrupt:
      return "corrupt";
    case StorageFault::kDeleted:
      return "deleted";
    case StorageFault::kIoError:
      return "io_error";
    case StorageFault::kBusy:
      return "busy";
    case StorageFault::kOther:
      return "error";
  }
  return "error";
}

StorageFault ClassifyStorageError(int extended_rc, int system_errno) {
  if (extended_rc == SQLITE_READONLY_DBMOVED) return StorageFault::kDeleted;
  // The errno is the more precise witness when SQLite has one: a write to a
  // file system remounted read-only is SQLITE_IOERR_WRITE with EROFS.
  switch (system_errno) {
    case ENOSPC:
    case EDQUOT:
      return StorageFault::kDiskFull;
    case EROFS:
      return StorageFault::kReadOnly;
    default:
      break;
  }
  switch (extended_rc & 0xff) {
    case SQLITE_OK:
      return StorageFault::kOk;
    case SQLITE_FULL:
      return StorageFault::kDiskFull;
    case SQLITE_READONLY:
      return StorageFault::kReadOnly;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return StorageFault::kCorrupt;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
      return StorageFault::kIoError;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return StorageFault::kBusy;
    default:
      return StorageFault::kOther;
  }
}

const char* StorageFaultAdvice(StorageFault fault) {
  switch (fault) {
    case StorageFault::kOk:
      return "";
    case StorageFault::kDiskFull:
      return "free space on its file system; the daemon checkpoints and truncates its WAL and"
             " retries by itself";
    case StorageFault::kReadOnly:
      return "the file or its file system became read-only (a remount after disk errors?):"
             " check dmesg; the daemon retries by itself and goes on once it may write again,"
             " but a file system that went read-only after errors needs the daemon stopped, an"
             " unmount and fsck first";
    case StorageFault::kCorrupt:
      return "the file is damaged: nothing is claimed or settled until it passes"
             " PRAGMA integrity_check again (after a repair in place), or until a restart with"
             " a recovered file (see operations.md, Storage faults)";
    case StorageFault::kDeleted:
      return "the file was deleted or replaced while the daemon had it open: nothing more is"
             " written to it, and nothing is created in its place; a restart opens what is at the"
             " path then (see operations.md, Storage faults)";
    case StorageFault::kIoError:
      return "the device reports I/O errors: check dmesg and the disk; the daemon retries by"
             " itself";
    case StorageFault::kBusy:
      return "another process held the write lock too long (a long sqlite3 transaction?); the"
             " daemon retries by itself";
    case StorageFault::kOther:
      return "the daemon retries by itself";
  }
  return "";
}

}  // namespace foxworker
