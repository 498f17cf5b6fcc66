// reelfarm-worker allocates with jemalloc (Debian's libjemalloc2, linked by
// worker/CMakeLists.txt unless a sanitizer brings its own malloc), as the server does
// (server/malloc_conf.cc), not glibc's malloc.
//
// Why: each chunk makes its own decoder threads, resizer and x264 encoder, whose frames
// (5.5 MB each at 1440p) and buffers are freed when the chunk ends and allocated again by
// the next. Under glibc those came back from the kernel every time: a thread arena's
// heap that empties is unmapped, whatever the trim threshold, and 5 chunks of a 240-frame
// 720p->1440p bicubic job took ~57,000 page faults (ffmpeg's one-liner: ~22,000), ~12 us
// each on a paravirtualised VM. With jemalloc they are reused: ~27,000 faults, and the job
// took 4.4 % less wall time and 4 % less CPU (alternated runs, 3 each), for a peak RSS
// 3.5 % higher (VmHWM 517-525 MiB against 498-507).
//
// jemalloc reads this string when it starts (its documented `malloc_conf` symbol);
// MALLOC_CONF in the environment still overrides it.
// - oversize_threshold:0: no separate arena for blocks of 8 MiB and more, which returns
//   their pages to the kernel at once (x264's and LibTorch's larger buffers).
// - narenas:1: one arena for every thread. A chunk's frames are allocated on its decode
//   and resize threads and freed on its encode thread, and each chunk's threads are new:
//   with an arena per thread (jemalloc's default, 4 per core) one chunk's freed frames
//   sat in arenas the next chunk's threads did not use (peak RSS 525-536 MiB). Small
//   blocks still come from each thread's own cache.

extern "C" {
// NOLINTNEXTLINE: the name and type jemalloc looks for.
const char* malloc_conf = "oversize_threshold:0,narenas:1";
}
