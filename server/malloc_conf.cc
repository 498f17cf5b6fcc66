// reelfarm-server allocates with jemalloc (Debian's libjemalloc2, linked by
// server/CMakeLists.txt unless a sanitizer brings its own malloc), not glibc's malloc.
//
// Why: a submit allocates and frees a few hundred small blocks (protobuf, SQLite's
// statements, the job's JSON, paths), and the one that comes after an idle spell is what a
// TD's script meets. Under glibc those blocks went through the arena's fastbins, and a
// larger request then consolidated them (malloc_consolidate), a walk over memory gone
// cold: in a profile of submits 50 ms apart, malloc, free and that walk were 2.5-5x
// their cost in a stream. jemalloc serves them from a per-thread cache. In alternated
// blocks against the same server with glibc (peer_bench.py-style submit blocks through
// bench_scheduler --server-bin, 11 runs), the first submit of a block was 5-15 % faster
// in all, the p99 1-15 % lower in 10, the p50 within 3 % in 8 (-5, +7, +13 % in the
// others); dispatch with one worker faster, restart unchanged (README, "Against the
// peers").
//
// jemalloc reads this string when it starts (its documented `malloc_conf` symbol);
// MALLOC_CONF in the environment still overrides it.
// - oversize_threshold:0: no separate arena for blocks of 8 MiB and more. That arena
//   returns their pages to the kernel at once, so the vectors of a million-task job,
//   which grow by doubling, were faulted in again at each step (~12 us a page on a
//   paravirtualised VM): queuing 1,000,100 tasks took 9.0 s against glibc's 4.3. With
//   the threshold off they are reused like any other block until jemalloc's decay (10 s)
//   returns them: 4.2-4.6 s.

extern "C" {
// NOLINTNEXTLINE: the name and type jemalloc looks for.
const char* malloc_conf = "oversize_threshold:0";
}
