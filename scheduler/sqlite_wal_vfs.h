// A SQLite VFS for the job store: the default one ("unix") except that the writes of a
// WAL file are gathered and reach the file as one write, at the next sync.
//
// A commit in WAL mode writes each page it changed as two writes (a 24-byte frame
// header, then the page) and then syncs the WAL: a small submit's commit made eight
// pwrite calls before its fdatasync, each a system call on the submit's path. Here
// writes that follow one another in the file are kept in memory (up to 64 KiB) and
// written in one call when SQLite syncs, reads, sizes, truncates, closes or controls
// the file, or writes elsewhere in it. What a sync makes durable is unchanged: every
// write before it is in the file before the fdatasync.
//
// Only for connections with synchronous=FULL (every commit syncs the WAL before it is
// published in the WAL index), as the job store's are: with NORMAL, another connection
// could read a frame the index names before its write left this buffer.
#pragma once

namespace reelfarm::scheduler {

// Registers the VFS on first use (thread-safe) and returns its name, for
// sqlite3_open_v2; nullptr (SQLite's default VFS) if there is no default VFS to wrap.
const char* WalCoalescingVfs();

}  // namespace reelfarm::scheduler
