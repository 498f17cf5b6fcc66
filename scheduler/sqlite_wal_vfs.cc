#include "scheduler/sqlite_wal_vfs.h"

#include <sqlite3.h>

#include <cstring>
#include <new>
#include <vector>

namespace reelfarm::scheduler {
namespace {

// Above this, gathered writes are written out (and a larger write goes straight
// through): the unix VFS writes at most 128 KiB in one call.
constexpr size_t kMaxPending = 64 << 10;

// The file SQLite sees; the default VFS's own file follows it in the same allocation
// (szOsFile covers both).
struct File {
  sqlite3_file base;
  sqlite3_file* real;
  std::vector<char>* pending;  // WAL files only: writes not yet in the file
  sqlite3_int64 pending_at;    // the file offset of pending's first byte
};

File* Of(sqlite3_file* f) { return reinterpret_cast<File*>(f); }
sqlite3_file* Real(sqlite3_file* f) { return Of(f)->real; }

// Writes what is gathered, in one call; SQLITE_OK when nothing is.
int Flush(File* f) {
  if (f->pending == nullptr || f->pending->empty()) return SQLITE_OK;
  const int rc = f->real->pMethods->xWrite(f->real, f->pending->data(),
                                           static_cast<int>(f->pending->size()), f->pending_at);
  f->pending->clear();
  return rc;
}

int Close(sqlite3_file* file) {
  File* f = Of(file);
  const int flushed = Flush(f);
  const int rc = f->real->pMethods->xClose(f->real);
  delete f->pending;
  f->pending = nullptr;
  return flushed != SQLITE_OK ? flushed : rc;
}

int Read(sqlite3_file* file, void* buf, int n, sqlite3_int64 at) {
  if (const int rc = Flush(Of(file)); rc != SQLITE_OK) return rc;
  return Real(file)->pMethods->xRead(Real(file), buf, n, at);
}

int Write(sqlite3_file* file, const void* buf, int n, sqlite3_int64 at) {
  File* f = Of(file);
  if (f->pending == nullptr) return f->real->pMethods->xWrite(f->real, buf, n, at);
  std::vector<char>& pending = *f->pending;
  const bool follows = at == f->pending_at + static_cast<sqlite3_int64>(pending.size());
  if (!pending.empty() && (!follows || pending.size() + static_cast<size_t>(n) > kMaxPending)) {
    if (const int rc = Flush(f); rc != SQLITE_OK) return rc;
  }
  if (static_cast<size_t>(n) > kMaxPending) return f->real->pMethods->xWrite(f->real, buf, n, at);
  if (pending.empty()) f->pending_at = at;
  const char* bytes = static_cast<const char*>(buf);
  pending.insert(pending.end(), bytes, bytes + n);
  return SQLITE_OK;
}

int Truncate(sqlite3_file* file, sqlite3_int64 size) {
  if (const int rc = Flush(Of(file)); rc != SQLITE_OK) return rc;
  return Real(file)->pMethods->xTruncate(Real(file), size);
}

int Sync(sqlite3_file* file, int flags) {
  if (const int rc = Flush(Of(file)); rc != SQLITE_OK) return rc;
  return Real(file)->pMethods->xSync(Real(file), flags);
}

int FileSize(sqlite3_file* file, sqlite3_int64* size) {
  if (const int rc = Flush(Of(file)); rc != SQLITE_OK) return rc;
  return Real(file)->pMethods->xFileSize(Real(file), size);
}

int Lock(sqlite3_file* file, int level) { return Real(file)->pMethods->xLock(Real(file), level); }
int Unlock(sqlite3_file* file, int level) {
  return Real(file)->pMethods->xUnlock(Real(file), level);
}
int CheckReservedLock(sqlite3_file* file, int* out) {
  return Real(file)->pMethods->xCheckReservedLock(Real(file), out);
}

int FileControl(sqlite3_file* file, int op, void* arg) {
  if (const int rc = Flush(Of(file)); rc != SQLITE_OK) return rc;
  return Real(file)->pMethods->xFileControl(Real(file), op, arg);
}

int SectorSize(sqlite3_file* file) { return Real(file)->pMethods->xSectorSize(Real(file)); }
int DeviceCharacteristics(sqlite3_file* file) {
  return Real(file)->pMethods->xDeviceCharacteristics(Real(file));
}

// Shared memory (the WAL index, on the database file) and memory maps: as they are, where
// the default VFS has them.
int ShmMap(sqlite3_file* file, int page, int size, int extend, void volatile** out) {
  const sqlite3_io_methods* m = Real(file)->pMethods;
  return m->iVersion >= 2 ? m->xShmMap(Real(file), page, size, extend, out) : SQLITE_IOERR;
}
int ShmLock(sqlite3_file* file, int offset, int n, int flags) {
  const sqlite3_io_methods* m = Real(file)->pMethods;
  return m->iVersion >= 2 ? m->xShmLock(Real(file), offset, n, flags) : SQLITE_IOERR;
}
void ShmBarrier(sqlite3_file* file) {
  const sqlite3_io_methods* m = Real(file)->pMethods;
  if (m->iVersion >= 2) m->xShmBarrier(Real(file));
}
int ShmUnmap(sqlite3_file* file, int remove) {
  const sqlite3_io_methods* m = Real(file)->pMethods;
  return m->iVersion >= 2 ? m->xShmUnmap(Real(file), remove) : SQLITE_OK;
}
int Fetch(sqlite3_file* file, sqlite3_int64 at, int n, void** out) {
  const sqlite3_io_methods* m = Real(file)->pMethods;
  if (m->iVersion >= 3) return m->xFetch(Real(file), at, n, out);
  *out = nullptr;
  return SQLITE_OK;
}
int Unfetch(sqlite3_file* file, sqlite3_int64 at, void* p) {
  const sqlite3_io_methods* m = Real(file)->pMethods;
  return m->iVersion >= 3 ? m->xUnfetch(Real(file), at, p) : SQLITE_OK;
}

const sqlite3_io_methods kMethods = {
    3,
    Close,
    Read,
    Write,
    Truncate,
    Sync,
    FileSize,
    Lock,
    Unlock,
    CheckReservedLock,
    FileControl,
    SectorSize,
    DeviceCharacteristics,
    ShmMap,
    ShmLock,
    ShmBarrier,
    ShmUnmap,
    Fetch,
    Unfetch,
};

int Open(sqlite3_vfs* vfs, const char* name, sqlite3_file* file, int flags, int* out_flags) {
  auto* real_vfs = static_cast<sqlite3_vfs*>(vfs->pAppData);
  File* f = Of(file);
  f->base.pMethods = nullptr;  // SQLite closes only what opened
  f->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(f) + sizeof(File));
  f->pending = nullptr;
  f->pending_at = 0;
  const int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
  if (rc != SQLITE_OK || f->real->pMethods == nullptr) {
    // A failed open may still have methods to close with (SQLite's rule).
    if (f->real->pMethods != nullptr) f->real->pMethods->xClose(f->real);
    return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
  }
  if ((flags & SQLITE_OPEN_WAL) != 0) {
    f->pending = new (std::nothrow) std::vector<char>();
    if (f->pending == nullptr) {
      f->real->pMethods->xClose(f->real);
      return SQLITE_NOMEM;
    }
    f->pending->reserve(kMaxPending);
  }
  f->base.pMethods = &kMethods;
  return SQLITE_OK;
}

sqlite3_vfs* Register() {
  sqlite3_vfs* real = sqlite3_vfs_find(nullptr);
  if (real == nullptr) return nullptr;
  static sqlite3_vfs vfs;
  vfs = *real;  // every other call is the default VFS's own
  vfs.pNext = nullptr;
  vfs.zName = "reelfarm-wal-coalescing";
  vfs.szOsFile = static_cast<int>(sizeof(File)) + real->szOsFile;
  vfs.pAppData = real;
  vfs.xOpen = Open;
  if (sqlite3_vfs_register(&vfs, /*makeDflt=*/0) != SQLITE_OK) return nullptr;
  return &vfs;
}

}  // namespace

const char* WalCoalescingVfs() {
  static sqlite3_vfs* const vfs = Register();
  return vfs != nullptr ? vfs->zName : nullptr;
}

}  // namespace reelfarm::scheduler
