// Storage path confinement and publishing; manifests; the JSON log format.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/registry.h>
#include <spdlog/details/log_msg.h>
#include <nlohmann/json.hpp>

#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/model_manifest.h"
#include "common/process.h"
#include "common/server_list.h"
#include "common/service_main.h"
#include "common/storage.h"
#include "tests/testing/faulty_storage.h"
#include "tests/testing/fixtures.h"

namespace fs = std::filesystem;
using reelfarm::common::Storage;

TEST_CASE("paths resolve beneath the storage root only", "[unit][storage]") {
  reelfarm::testing::TempDir dir;
  fs::create_directories(dir.path() / "root/shots");
  fs::create_directories(dir.path() / "outside");
  auto opened = Storage::Open(dir.path() / "root");
  REQUIRE(opened.ok());
  const Storage& storage = **opened;

  auto ok = storage.Resolve("shots/sh010/plate.mp4", "upscale.input");
  REQUIRE(ok.ok());
  CHECK(*ok == storage.root() / "shots/sh010/plate.mp4");
  CHECK(storage.Resolve("shots/../shots/a.mp4", "f").ok());
  // A name in a folder that does not exist yet, right under the root.
  auto fresh = storage.Resolve("renders/v001/out.mp4", "upscale.output");
  REQUIRE(fresh.ok());
  CHECK(*fresh == storage.root() / "renders/v001/out.mp4");
  // A root given through a link is the real folder, and paths resolve beneath it.
  fs::create_directory_symlink(dir.path() / "root", dir.path() / "root-link");
  auto through_link = Storage::Open(dir.path() / "root-link");
  REQUIRE(through_link.ok());
  CHECK((*through_link)->root() == storage.root());
  auto beneath = (*through_link)->Resolve("shots/a.mp4", "upscale.input");
  REQUIRE(beneath.ok());
  CHECK(*beneath == storage.root() / "shots/a.mp4");
  CHECK((*through_link)->Resolve("renders/out.mp4", "upscale.output").ok());

  auto abs = storage.Resolve("/etc/passwd", "upscale.input");
  CHECK(abs.status().code() == absl::StatusCode::kPermissionDenied);
  CHECK(abs.status().message().find("upscale.input") != absl::string_view::npos);
  CHECK(abs.status().message().find("/etc/passwd") != absl::string_view::npos);

  auto up = storage.Resolve("shots/../../outside/x.mp4", "upscale.output");
  CHECK(up.status().code() == absl::StatusCode::kPermissionDenied);
  CHECK(up.status().message().find("upscale.output") != absl::string_view::npos);

  CHECK(storage.Resolve("", "upscale.input").status().code() == absl::StatusCode::kInvalidArgument);

  // A symbolic link inside the root that leads out is refused.
  fs::create_directory_symlink(dir.path() / "outside", dir.path() / "root/escape");
  auto link = storage.Resolve("escape/x.mp4", "upscale.input");
  CHECK(link.status().code() == absl::StatusCode::kPermissionDenied);
  // So is a link to a file outside; an absolute link that stays inside, and a relative
  // one to it, are followed.
  std::ofstream(dir.path() / "outside/secret.mp4") << "x";
  fs::create_symlink(dir.path() / "outside/secret.mp4", dir.path() / "root/shots/secret.mp4");
  CHECK(storage.Resolve("shots/secret.mp4", "upscale.input").status().code() ==
        absl::StatusCode::kPermissionDenied);
  fs::create_directories(dir.path() / "root/shots/v003");
  std::ofstream(dir.path() / "root/shots/v003/plate.mp4") << "x";
  fs::create_directory_symlink(dir.path() / "root/shots/v003", dir.path() / "root/shots/latest");
  fs::create_directory_symlink("latest", dir.path() / "root/shots/current");
  for (const char* p : {"shots/latest/plate.mp4", "shots/current/plate.mp4",
                        "shots/current/new.mp4", "shots/latest"}) {
    INFO(p);
    auto r = storage.Resolve(p, "upscale.input");
    REQUIRE(r.ok());
    CHECK(*r == storage.root() / p);
  }
}

TEST_CASE("files open beneath the root at the time of use", "[unit][storage]") {
  reelfarm::testing::TempDir dir;
  fs::create_directories(dir.path() / "root/shots/a");
  fs::create_directories(dir.path() / "outside/renders");
  std::ofstream(dir.path() / "root/shots/a/plate.mp4") << "inside";
  std::ofstream(dir.path() / "outside/plate.mp4") << "secret";
  auto opened = Storage::Open(dir.path() / "root");
  REQUIRE(opened.ok());
  const Storage& storage = **opened;

  auto path = storage.Resolve("shots/a/plate.mp4", "upscale.input");
  REQUIRE(path.ok());
  auto fd = storage.OpenBeneath(*path, O_RDONLY, "upscale.input");
  REQUIRE(fd.ok());
  std::string text;
  std::ifstream(fd->path()) >> text;
  CHECK(text == "inside");

  // The folder is swapped for a link leading out after Resolve() accepted the path.
  fs::rename(dir.path() / "root/shots/a", dir.path() / "root/shots/a.real");
  fs::create_directory_symlink(dir.path() / "outside", dir.path() / "root/shots/a");
  auto swapped = storage.OpenBeneath(*path, O_RDONLY, "upscale.input");
  CHECK(swapped.status().code() == absl::StatusCode::kPermissionDenied);
  CHECK(swapped.status().message().find("outside the storage root") != absl::string_view::npos);
  // A relative link leading out, and a link inside the root, which is fine.
  fs::create_directory_symlink("../../outside", dir.path() / "root/shots/up");
  CHECK(storage.OpenBeneath("shots/up/plate.mp4", O_RDONLY, "f").status().code() ==
        absl::StatusCode::kPermissionDenied);
  fs::create_directory_symlink("a.real", dir.path() / "root/shots/in");
  CHECK(storage.OpenBeneath("shots/in/plate.mp4", O_RDONLY, "f").ok());
  CHECK(storage.OpenBeneath("shots/none.mp4", O_RDONLY, "f").status().code() ==
        absl::StatusCode::kNotFound);
  CHECK(storage.OpenBeneath("/etc/passwd", O_RDONLY, "f").status().code() ==
        absl::StatusCode::kPermissionDenied);

  // Folders for outputs are made one component at a time, never through a link out.
  auto made = storage.OpenDirBeneath("renders/sh010/v1", true, "upscale.output");
  REQUIRE(made.ok());
  CHECK(fs::is_directory(dir.path() / "root/renders/sh010/v1"));
  CHECK(storage.OpenDirBeneath("shots/a/renders/new", true, "upscale.output").status().code() ==
        absl::StatusCode::kPermissionDenied);
  CHECK(fs::is_empty(dir.path() / "outside/renders"));
  CHECK_FALSE(fs::exists(dir.path() / "outside/renders/new"));

  // Paths with a NUL character are refused rather than cut short.
  CHECK(storage.Resolve(std::string("shots/a\0/../x", 13), "f").status().code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE("publish keeps an existing file unless asked to replace it", "[unit][storage]") {
  reelfarm::testing::TempDir dir;
  const std::unique_ptr<Storage> storage = *Storage::Open(dir.path());
  const fs::path final_path = dir.path() / "out.txt";
  std::ofstream(final_path) << "precious";
  const fs::path tmp = Storage::TempPathFor(final_path);
  std::ofstream(tmp) << "new";
  auto st = storage->Publish(tmp, final_path, /*replace=*/false);
  CHECK(st.code() == absl::StatusCode::kAlreadyExists);
  std::string text;
  std::ifstream(final_path) >> text;
  CHECK(text == "precious");
  REQUIRE(storage->Publish(tmp, final_path, /*replace=*/true).ok());
  std::ifstream(final_path) >> text;
  CHECK(text == "new");
}

TEST_CASE("publish moves a finished file into place atomically", "[unit][storage]") {
  reelfarm::testing::TempDir dir;
  const std::unique_ptr<Storage> storage = *Storage::Open(dir.path());
  fs::path final_path = dir.path() / "a/b/out.txt";
  fs::path tmp = Storage::TempPathFor(final_path);
  CHECK(tmp.parent_path() == final_path.parent_path());
  CHECK(tmp.filename().string().rfind(".out.txt.tmp.", 0) == 0);
  fs::create_directories(tmp.parent_path());
  std::ofstream(tmp) << "done";
  REQUIRE(storage->Publish(tmp, final_path).ok());
  CHECK(fs::exists(final_path));
  CHECK_FALSE(fs::exists(tmp));
}

TEST_CASE("staged outputs publish all or nothing, and a retry knows its own", "[unit][storage]") {
  reelfarm::testing::TempDir dir;
  const std::unique_ptr<Storage> storage = *Storage::Open(dir.path());
  const fs::path staging = dir.path() / "staging";
  const fs::path out = dir.path() / "out";
  fs::create_directories(staging);
  fs::create_directories(out);
  const auto read = [](const fs::path& p) {
    std::string text;
    std::ifstream(p) >> text;
    return text;
  };
  std::vector<Storage::StagedFile> files;
  for (int i = 0; i < 4; ++i) {
    const std::string name = "f" + std::to_string(i);
    std::ofstream(staging / name) << "job" << i;
    files.push_back({staging / name, out / name});
  }
  // One name is taken: nothing is published, the taken file is kept, the message
  // names it.
  std::ofstream(out / "f2") << "user";
  auto st = storage->PublishStaged(files, /*replace=*/false);
  CHECK(st.code() == absl::StatusCode::kAlreadyExists);
  CHECK(std::string(st.message()).find("'f2'") != std::string::npos);
  CHECK_FALSE(fs::exists(out / "f0"));
  CHECK(read(out / "f2") == "user");
  // A symbolic link, even one that leads nowhere, is taken too.
  fs::remove(out / "f2");
  fs::create_symlink("nowhere", out / "f3");
  CHECK(storage->PublishStaged(files, false).code() == absl::StatusCode::kAlreadyExists);
  CHECK_FALSE(fs::exists(out / "f0"));
  fs::remove(out / "f3");
  // Free: all published, as links to the staged files.
  REQUIRE(storage->PublishStaged(files, false).ok());
  for (const auto& [staged, final_path] : files) CHECK(Storage::IsPublished(staged, final_path));
  CHECK(read(out / "f1") == "job1");
  // A retry of the same task: its own files count as published.
  CHECK(storage->PublishStaged(files, false).ok());
  // Another job's files at those names are refused without overwrite, replace them
  // with it; a folder is never replaced.
  std::ofstream(dir.path() / "other") << "other";
  std::vector<Storage::StagedFile> other = {{dir.path() / "other", out / "f1"}};
  CHECK(storage->PublishStaged(other, false).code() == absl::StatusCode::kAlreadyExists);
  fs::create_symlink(dir.path() / "other", out / "link");
  other.push_back({staging / "f0", out / "link"});
  REQUIRE(storage->PublishStaged(other, true).ok());
  CHECK(read(out / "f1") == "other");
  CHECK(fs::is_regular_file(fs::symlink_status(out / "link")));
  CHECK(read(dir.path() / "other") == "other");  // the link was replaced, not followed
  fs::create_directories(out / "dir");
  CHECK(storage->PublishStaged({{staging / "f0", out / "dir"}}, true).code() ==
        absl::StatusCode::kFailedPrecondition);
  // Nothing was written to the staged files through their links.
  CHECK(read(staging / "f0") == "job0");
}

namespace {

using reelfarm::testing::FaultyStorage;
using Step = FaultyStorage::Step;

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The names in `dir`, sorted.
std::vector<std::string> Names(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

TEST_CASE("a full disk while writing a file leaves nothing under its name, and a retry succeeds",
          "[unit][storage]") {
  reelfarm::testing::TempDir dir;
  auto storage = *FaultyStorage::Open(dir.path());
  const fs::path final_path = dir.path() / "out/sidecar.json";
  const std::string bytes(100000, 'x');
  const fs::path tmp = Storage::TempPathFor(final_path);
  fs::create_directories(tmp.parent_path());
  storage->FailAt(Step::kWrite, 1, ENOSPC);
  absl::Status st = storage->WriteFile(tmp, bytes, "out/sidecar.json");
  CHECK(st.code() == absl::StatusCode::kUnavailable);  // retryable
  CHECK(std::string(st.message()) ==
        "cannot write 'out/sidecar.json': No space left on device (the storage is full; free "
        "space on it)");
  CHECK(fs::is_empty(dir.path() / "out"));  // the half written is gone
  // An I/O error at the fsync or the rename of the publish: nothing at the final name.
  for (Step step : {Step::kFsync, Step::kRename}) {
    REQUIRE(storage->WriteFile(tmp, bytes, "out/sidecar.json").ok());
    storage->FailAt(step, 1, EIO);
    st = storage->Publish(tmp, final_path);
    CHECK(st.code() == absl::StatusCode::kUnavailable);
    CHECK(std::string(st.message()).find("Input/output error") != std::string::npos);
    CHECK_FALSE(fs::exists(final_path));
    fs::remove(tmp);
  }
  // The disk has room again.
  REQUIRE(storage->WriteFile(tmp, bytes, "out/sidecar.json").ok());
  REQUIRE(storage->Publish(tmp, final_path).ok());
  CHECK(ReadAll(final_path) == bytes);
  CHECK(Names(dir.path() / "out") == std::vector<std::string>{"sidecar.json"});
  CHECK(storage->failures(Step::kWrite) == 1);
}

TEST_CASE("a torn publish of staged files publishes all or nothing", "[unit][storage]") {
  const bool replace = GENERATE(false, true);
  // Each step of the publish fails in turn: the Nth fsync (of a staged file or the
  // output folder), link or rename.
  for (Step step : {Step::kFsync, Step::kLink, Step::kRename}) {
    for (int n = 1;; ++n) {
      reelfarm::testing::TempDir dir;
      auto storage = *FaultyStorage::Open(dir.path());
      fs::create_directories(dir.path() / "staging");
      fs::create_directories(dir.path() / "out");
      std::vector<Storage::StagedFile> files;
      for (int i = 0; i < 4; ++i) {
        const std::string name = "f" + std::to_string(i);
        std::ofstream(dir.path() / "staging" / name) << "job" << i;
        files.push_back({dir.path() / "staging" / name, dir.path() / "out" / name});
      }
      storage->FailAt(step, n, ENOSPC);
      const absl::Status st = storage->PublishStaged(files, replace);
      INFO("step " << static_cast<int>(step) << " call " << n << " replace " << replace << ": "
                   << st.ToString());
      if (storage->failures(step) == 0) {  // fewer than n such steps: all published
        REQUIRE(st.ok());
        CHECK(Names(dir.path() / "out").size() == 4);
        break;
      }
      CHECK(st.code() == absl::StatusCode::kUnavailable);
      CHECK(std::string(st.message()).find("the storage is full") != std::string::npos);
      // Nothing under the output names, and nothing of ours left beside them or in the
      // staging folder.
      CHECK(fs::is_empty(dir.path() / "out"));
      CHECK(Names(dir.path() / "staging") == std::vector<std::string>{"f0", "f1", "f2", "f3"});
      // A retry publishes all of them.
      storage->Heal();
      REQUIRE(storage->PublishStaged(files, replace).ok());
      for (int i = 0; i < 4; ++i) {
        CHECK(ReadAll(dir.path() / "out" / ("f" + std::to_string(i))) == "job" + std::to_string(i));
      }
    }
  }
}

TEST_CASE("job paths may not lie in the farm's own folder", "[unit][storage]") {
  reelfarm::testing::TempDir dir;
  auto opened = Storage::Open(dir.path());
  REQUIRE(opened.ok());
  const Storage& storage = **opened;
  fs::create_directories(dir.path() / ".reelfarm/jobs/1/parts");
  fs::create_symlink(".reelfarm/jobs", dir.path() / "shots");
  for (const char* p :
       {".reelfarm/jobs/1/parts/x.mov", "a/../.reelfarm/y.mp4", "shots/1/z.mov", ".reelfarm"}) {
    auto r = storage.ResolveJobPath(p, "upscale.output");
    INFO(p);
    CHECK(r.status().code() == absl::StatusCode::kPermissionDenied);
  }
  CHECK(storage.ResolveJobPath("renders/.reelfarm_not/x.mp4", "upscale.output").ok());
  CHECK(storage.ResolveJobPath("renders/.reelfarm/x.mp4", "upscale.output").ok());
  // The farm's own code may still reach it.
  CHECK(storage.Resolve(".reelfarm/jobs/1/parts/x.mov", "segment").ok());
}

TEST_CASE("model manifests are read and checked", "[unit][models]") {
  reelfarm::testing::TempDir dir;
  fs::create_directories(dir.path() / "good");
  std::ofstream(dir.path() / "good/model.json") << R"({"kind":"upscaler","scale":2})";
  std::ofstream(dir.path() / "good/model.pt") << "x";
  fs::create_directories(dir.path() / "bad");
  std::ofstream(dir.path() / "bad/model.json") << R"({"kind":"upscaler","scale":0})";
  std::ofstream(dir.path() / "bad/model.pt") << "x";
  std::vector<std::string> errors;
  auto found = reelfarm::common::FindModelPackages({dir.path().string()}, &errors);
  REQUIRE(found.size() == 1);
  CHECK(found[0].name == "good");
  CHECK(found[0].scale == 2);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].find("scale 0") != std::string::npos);
}

TEST_CASE("model packages are read again when one is added, changed or removed, and only then",
          "[unit][models]") {
  reelfarm::testing::TempDir dir;
  const auto write_package = [&](const std::string& name, int scale) {
    fs::create_directories(dir.path() / name);
    std::ofstream(dir.path() / name / "model.json")
        << R"({"kind":"upscaler","scale":)" << scale << "}";
    std::ofstream(dir.path() / name / "model.pt") << "x";
  };
  write_package("a", 2);
  // Times one second apart at most: no racy window, so that keeping is seen at once.
  const reelfarm::common::ModelPackageCache cache({dir.path().string()}, /*racy_seconds=*/0);
  auto first = cache.Get();
  REQUIRE(first->size() == 1);
  CHECK((*first)[0].scale == 2);
  CHECK(cache.Get() == first);  // nothing changed: the same packages, not read again
  write_package("b", 3);
  auto added = cache.Get();
  REQUIRE(added->size() == 2);
  CHECK(added != first);
  // Replaced in place with another size; then removed.
  std::ofstream(dir.path() / "a/model.json") << R"({"kind":"upscaler", "scale":4})";
  auto changed = cache.Get();
  REQUIRE(changed->size() == 2);
  CHECK(((*changed)[0].name == "a" ? (*changed)[0] : (*changed)[1]).scale == 4);
  fs::remove_all(dir.path() / "b");
  auto removed = cache.Get();
  REQUIRE(removed->size() == 1);
  CHECK((*removed)[0].name == "a");
  // With the default racy window, packages changed just now are read on every call:
  // a change of the same size within one clock tick is still seen.
  const reelfarm::common::ModelPackageCache fresh({dir.path().string()});
  auto before = fresh.Get();
  std::ofstream(dir.path() / "a/model.json") << R"({"kind":"upscaler", "scale":3})";
  auto after = fresh.Get();
  REQUIRE(after->size() == 1);
  CHECK((*after)[0].scale == 3);
  CHECK(after != before);
}

TEST_CASE("JSON logs: one object per line with key=value fields", "[unit][common]") {
  auto formatter = reelfarm::common::NewJsonLogFormatter();
  const std::string text =
      "task failed job=12 task=3 lease=99 retryable=false: frame 0:\nmodel said no";
  spdlog::details::log_msg msg("worker", spdlog::level::warn, text);
  spdlog::memory_buf_t buf;
  formatter->format(msg, buf);
  const std::string line(buf.data(), buf.size());
  REQUIRE(!line.empty());
  CHECK(line.back() == '\n');
  CHECK(line.find('\n') == line.size() - 1);  // the message's newline is escaped
  nlohmann::json j = nlohmann::json::parse(line);
  CHECK(j["level"] == "warning");
  CHECK(j["process"] == "worker");
  CHECK(j["msg"] == text);
  CHECK(j["job"] == "12");
  CHECK(j["task"] == "3");
  CHECK(j["retryable"] == "false");
  CHECK(j["ts"].get<std::string>().size() == 24);  // 2026-01-02T03:04:05.678Z
}

TEST_CASE("server lists follow the leader a standby names", "[unit][servers]") {
  auto list = reelfarm::common::ServerList::Parse("a:1, b:2,a:1");
  REQUIRE(list.ok());
  CHECK(list->addresses() == std::vector<std::string>{"a:1", "b:2"});
  CHECK(list->current() == "a:1");
  CHECK(list->Next() == "b:2");
  CHECK(list->Next() == "a:1");
  CHECK(list->Next("b:2") == "b:2");
  // A leader nobody listed is followed too, and kept.
  CHECK(list->Next("c:3") == "c:3");
  CHECK(list->size() == 3);
  CHECK(list->Next() == "a:1");
  auto bad = reelfarm::common::ServerList::Parse("a:1,,b:2");
  CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(bad.status().message()), Catch::Contains("'a:1,,b:2'"));
}

namespace {
pid_t SpawnShell(const char* script) {
  pid_t pid = -1;
  char* argv[] = {const_cast<char*>("sh"), const_cast<char*>("-c"), const_cast<char*>(script),
                  nullptr};
  REQUIRE(posix_spawn(&pid, "/bin/sh", nullptr, nullptr, argv, environ) == 0);
  return pid;
}
}  // namespace

TEST_CASE("StopProcesses ends children with SIGTERM, and with SIGKILL past the grace",
          "[unit][process]") {
  const pid_t polite = SpawnShell("exec sleep 30");
  // Ignores SIGTERM (the ignored disposition survives exec): only SIGKILL ends it.
  const pid_t stubborn = SpawnShell("trap '' TERM; exec sleep 30");
  const pid_t stopped = SpawnShell("exec sleep 30");
  // Give the shells time to set the trap and exec; a stopped one is woken to die.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  REQUIRE(kill(stopped, SIGSTOP) == 0);
  const std::vector<int> st =
      reelfarm::common::StopProcesses({polite, -1, stubborn, stopped}, std::chrono::seconds(1));
  REQUIRE(st.size() == 4);
  CHECK(WIFSIGNALED(st[0]));
  CHECK(WTERMSIG(st[0]) == SIGTERM);
  CHECK(st[1] == -1);
  CHECK(WIFSIGNALED(st[2]));
  CHECK(WTERMSIG(st[2]) == SIGKILL);
  CHECK(WIFSIGNALED(st[3]));
  CHECK(WTERMSIG(st[3]) == SIGTERM);
  // All reaped: none is left for waitpid.
  for (pid_t pid : {polite, stubborn, stopped}) CHECK(waitpid(pid, nullptr, WNOHANG) == -1);
}

namespace {

// Runs `body` in a forked child (which then exits 0) and returns its wait status; a
// process-wide setting made there does not reach the tests that follow. A child stuck
// on a lock another thread held at the fork ends by SIGALRM, not a hung test.
template <typename Body>
int InChild(Body body) {
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(30);
    body();
    _exit(0);
  }
  int st = -1;
  waitpid(pid, &st, 0);
  return st;
}

// Two absl::Mutexes taken in one order and then in the other: a lock-order cycle, which
// absl's deadlock detection aborts on (no thread waits: it never deadlocks here).
void LockBothOrders() {
  absl::Mutex a, b;
  a.Lock();
  b.Lock();
  b.Unlock();
  a.Unlock();
  b.Lock();
  a.Lock();
  a.Unlock();
  b.Unlock();
}

}  // namespace

TEST_CASE("release builds run absl::Mutex without its debug-only deadlock detection",
          "[unit][locks]") {
#ifndef NDEBUG
  WARN("a debug build keeps absl's deadlock detection: skipped");
#else
  // Debian's absl is built without NDEBUG: a process that sets nothing aborts on the
  // cycle (the cost that UseReleaseMutexChecks removes from every lock).
  const int untouched = InChild([] { LockBothOrders(); });
  CHECK(WIFSIGNALED(untouched));
  CHECK(WTERMSIG(untouched) == SIGABRT);
  // What reelfarm-server and reelfarm-worker call first in main.
  const int release = InChild([] {
    reelfarm::common::UseReleaseMutexChecks();
    LockBothOrders();
  });
  CHECK(WIFEXITED(release));
  CHECK(WEXITSTATUS(release) == 0);
#endif
}

TEST_CASE("a metrics endpoint writes its port, and a taken port fails naming the flag",
          "[unit][metrics]") {
  reelfarm::testing::TempDir dir;
  auto registry = std::make_shared<prometheus::Registry>();
  auto first = reelfarm::common::MetricsEndpoint::Start("127.0.0.1:0", registry);
  REQUIRE(first.ok());
  const std::string port_file = (dir.path() / "metrics.port").string();
  first->Announce(port_file);
  int port = 0;
  std::ifstream(port_file) >> port;
  REQUIRE(port > 0);
  auto second =
      reelfarm::common::MetricsEndpoint::Start("127.0.0.1:" + std::to_string(port), registry);
  CHECK(second.status().code() == absl::StatusCode::kUnavailable);
  CHECK_THAT(std::string(second.status().message()),
             Catch::Contains("--metrics-listen '127.0.0.1:" + std::to_string(port) + "'"));
  // No endpoint: nothing listens and no port file is written.
  auto none = reelfarm::common::MetricsEndpoint::Start("", registry);
  REQUIRE(none.ok());
  none->Announce((dir.path() / "none.port").string());
  CHECK_FALSE(fs::exists(dir.path() / "none.port"));
}
