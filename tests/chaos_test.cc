// Chaos: a mixed workload (upscale and generate jobs, movie and image-sequence outputs,
// dependencies, overwrites, and submits that must not overwrite) on a server with 3
// worker processes, while a seeded driver SIGKILLs and SIGSTOPs (then SIGCONTs) random
// workers and SIGKILLs and restarts the server at random moments. After the last fault:
// every acknowledged job ends; each succeeded output has the right frame count and
// matches the expected frames (PSNR against a reference made once per input); no file
// that existed before a job, outside its own outputs, changed (hashes); no .reelfarm/
// scratch is left for finished jobs; `reelctl get` of a job touched by a fault says
// what happened. Once on SQLite, once on PostgreSQL with a standby server (a server
// fault then kills either of the two, leader or standby).
//
// The seed is printed; REELFARM_CHAOS_SEED=N repeats a run, REELFARM_CHAOS_ROUNDS=N
// (20 or more) makes it longer.
#include <signal.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "tests/testing/checks.h"
#include "tests/testing/farm.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/postgres.h"

namespace fs = std::filesystem;
using namespace reelfarm;
using testing::Farm;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr int kWorkers = 3;
constexpr int kGenFrames = 8;
constexpr int kGenSize = 64;

double Seconds(SteadyClock::time_point since) {
  return std::chrono::duration<double>(SteadyClock::now() - since).count();
}

void Sleep(double seconds) {
  std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
}

// FNV-1a over the file's bytes: enough to see that a file changed.
uint64_t HashFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  uint64_t h = 1469598103934665603ull;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    for (std::streamsize i = 0; i < in.gcount(); ++i) {
      h = (h ^ static_cast<uint8_t>(buf[i])) * 1099511628211ull;
    }
  }
  return h;
}

// Every file beneath the storage root but the farm's own folder, by relative path.
std::map<std::string, uint64_t> Snapshot(const fs::path& root) {
  std::map<std::string, uint64_t> out;
  // Workers write while it looks (temporary files come and go): errors skip an entry.
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string rel = it->path().lexically_relative(root).string();
    if (rel == ".reelfarm") {
      it.disable_recursion_pending();
      continue;
    }
    std::error_code type_ec;
    if (fs::is_regular_file(it->path(), type_ec)) out[rel] = HashFile(it->path());
  }
  return out;
}

// A JobService client over one server, or two (leader and standby): each call goes to
// the server that answers, riding through restarts and failovers (60 s at most).
class Client {
 public:
  explicit Client(std::vector<std::string> addresses) : addresses_(std::move(addresses)) {
    for (const auto& a : addresses_) {
      stubs_.push_back(
          v1::JobService::NewStub(grpc::CreateChannel(a, grpc::InsecureChannelCredentials())));
    }
  }

  template <typename Call>
  grpc::Status Retry(Call call) {
    grpc::Status st;
    const auto start = SteadyClock::now();
    while (Seconds(start) < 60) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      st = call(*stubs_[current_], &ctx);
      // A call caught in a leader's hand-over may also end CANCELLED (README, Failover:
      // the standby's service goes as the farm takes the port); retried like the others
      // (submits carry a request_id).
      if (st.error_code() != grpc::StatusCode::UNAVAILABLE &&
          st.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED &&
          st.error_code() != grpc::StatusCode::CANCELLED) {
        return st;
      }
      current_ = (current_ + 1) % stubs_.size();
      Sleep(0.1);
    }
    return st;
  }

  v1::Job Get(int64_t id) {
    v1::Job job;
    v1::GetJobRequest req;
    req.set_job_id(id);
    const grpc::Status st = Retry([&](v1::JobService::Stub& s, grpc::ClientContext* ctx) {
      return s.GetJob(ctx, req, &job);
    });
    INFO("GetJob " << id << ": " << st.error_message());
    REQUIRE(st.ok());
    return job;
  }

  // Names of the workers the server sees holding a task.
  std::set<std::string> BusyWorkers() {
    v1::ListWorkersResponse resp;
    const grpc::Status st = Retry([&](v1::JobService::Stub& s, grpc::ClientContext* ctx) {
      return s.ListWorkers(ctx, v1::ListWorkersRequest(), &resp);
    });
    std::set<std::string> busy;
    for (const auto& w : resp.workers()) {
      if (st.ok() && w.current_tasks_size() > 0) busy.insert(w.name());
    }
    return busy;
  }

  std::string ServerList() const {
    std::string s;
    for (const auto& a : addresses_) s += (s.empty() ? "" : ",") + a;
    return s;
  }

 private:
  std::vector<std::string> addresses_;
  std::vector<std::unique_ptr<v1::JobService::Stub>> stubs_;
  size_t current_ = 0;
};

bool IsFinal(v1::JobState s) {
  return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED || s == v1::JOB_STATE_CANCELLED;
}

enum class Kind {
  kUpscaleMovie,
  kUpscaleSequence,
  kGenerateMovie,
  kGenerateSequence,
  kDependent,   // upscales the output movie of an earlier job, after it
  kOverwrite,   // --overwrite onto an earlier job's output or a user's file
  kMustRefuse,  // no --overwrite; a file it would write exists: refused or failed
};

const char* KindName(Kind k) {
  switch (k) {
    case Kind::kUpscaleMovie:
      return "upscale-movie";
    case Kind::kUpscaleSequence:
      return "upscale-sequence";
    case Kind::kGenerateMovie:
      return "generate-movie";
    case Kind::kGenerateSequence:
      return "generate-sequence";
    case Kind::kDependent:
      return "dependent";
    case Kind::kOverwrite:
      return "overwrite";
    default:
      return "must-refuse";
  }
}

struct ChaosJob {
  int n = 0;
  Kind kind = Kind::kUpscaleMovie;
  v1::JobSpec spec;
  int64_t id = 0;        // 0: not acknowledged
  grpc::Status refused;  // the submit's answer when not acknowledged
  std::string output;    // movie path, or sequence pattern with ####
  bool sequence = false;
  int frames = 0;
  int width = 0, height = 0;
  std::string reference;  // "in/a.mp4", "gen:1", or "file:<movie>" (bicubic of it)
  bool has_dependents = false;
  bool overwritten = false;  // a later --overwrite job replaces its output
  v1::Job last;
  std::map<std::string, uint64_t> at_success;  // its files when first seen succeeded

  // The files the job writes: its output (or frames) and the sidecar.
  bool Owns(const std::string& rel) const {
    if (rel == output + ".json") return true;
    if (!sequence) return rel == output;
    const size_t hashes = output.find("####");
    return rel.size() == output.size() && rel.compare(0, hashes, output, 0, hashes) == 0 &&
           rel.compare(hashes + 4, std::string::npos, output, hashes + 4, std::string::npos) == 0 &&
           std::all_of(rel.begin() + hashes, rel.begin() + hashes + 4,
                       [](char c) { return c >= '0' && c <= '9'; });
  }
};

// A file every job must leave alone (unless an --overwrite job names it).
struct UserFile {
  std::string path;
  bool taken = false;  // an --overwrite or must-refuse job targets it
};

class Chaos {
 public:
  Chaos(Farm& farm, std::vector<std::string> servers, bool two_servers, uint64_t seed, int rounds,
        std::vector<std::string> worker_args)
      : farm_(farm),
        client_(std::move(servers)),
        two_servers_(two_servers),
        rng_(seed),
        rounds_(rounds),
        worker_args_(std::move(worker_args)) {}

  void Run();

 private:
  double Uniform(double a, double b) { return std::uniform_real_distribution<double>(a, b)(rng_); }
  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  fs::path Path(const std::string& rel) const { return farm_.storage() / rel; }

  void Setup();
  void SubmitNext(bool must_refuse = false);
  void Submit(ChaosJob& job);
  void Fault(int round);
  void Poll();
  void Check();
  void CheckOutput(const ChaosJob& job);
  const std::vector<std::vector<uint8_t>>& Reference(const ChaosJob& job);

  Farm& farm_;
  Client client_;
  const bool two_servers_;
  std::mt19937_64 rng_;
  const int rounds_;
  const std::vector<std::string> worker_args_;

  std::vector<ChaosJob> jobs_;
  std::vector<UserFile> user_movies_;  // free to overwrite
  std::map<std::string, int> input_frames_;
  std::map<std::string, uint64_t> before_;  // every file before the first job
  std::map<std::string, std::vector<std::vector<uint8_t>>> references_;
  std::set<std::string> stopped_, dead_;
  std::map<std::string, int> wake_round_;
  std::map<std::string, int> faults_;
  int must_refuse_made_ = 0;
};

void Chaos::Setup() {
  testing::MakeTestClip(Path("in/a.mp4"), 160, 90, 24);
  testing::MakeTestClip(Path("in/b.mp4"), 160, 90, 30);
  input_frames_ = {{"in/a.mp4", 24}, {"in/b.mp4", 30}};
  // Users' files: movies an --overwrite job may replace, and files next to outputs of
  // jobs without --overwrite that must stay as they are.
  for (const char* m : {"users/pre1.mp4", "users/pre2.mp4", "users/pre3.mp4"}) {
    testing::MakeTestClip(Path(m), 96, 64, 5);
    user_movies_.push_back({m});
  }
  testing::MakeTestClip(Path("keep/user.mp4"), 96, 64, 5);  // at a must-refuse output
  fs::create_directories(Path("keep/seq"));
  REQUIRE(testing::Run("ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=s=320x180 "
                       "-frames:v 1 '" +
                       Path("keep/seq/user.0002.png").string() + "'") == 0);
  std::ofstream(Path("keep/side.mp4.json")) << "{\"a user's own notes\": true}\n";
  fs::create_directories(Path("notes"));
  std::ofstream(Path("notes/readme.txt")) << "shot notes; nothing may touch this\n";

  // Generate references: one quiet run of each seed the workload uses.
  v1::SubmitJobResponse resp;
  v1::JobSpec ref;
  ref.set_name("ref");
  v1::GenerateSpec* g = ref.mutable_generate();
  g->set_model("shapes_t2v");
  g->set_prompt("red circle moving right");
  g->add_seeds(1);
  g->add_seeds(2);
  g->set_width(kGenSize);
  g->set_height(kGenSize);
  g->set_frames(kGenFrames);
  g->set_steps(4);
  g->set_output("ref/{take}.####.png");
  REQUIRE(client_
              .Retry([&](v1::JobService::Stub& s, grpc::ClientContext* ctx) {
                v1::SubmitJobRequest req;
                *req.mutable_spec() = ref;
                return s.SubmitJob(ctx, req, &resp);
              })
              .ok());
  for (int i = 0; i < 1200 && !IsFinal(client_.Get(resp.job_id()).state()); ++i) Sleep(0.1);
  REQUIRE(client_.Get(resp.job_id()).state() == v1::JOB_STATE_SUCCEEDED);
  for (int seed = 1; seed <= 2; ++seed) {
    int w = 0, h = 0;
    auto frames = testing::DecodeYuv420(Path("ref/ref_take00" + std::to_string(seed) + ".%04d.png"),
                                        "", &w, &h);
    REQUIRE(frames.size() == static_cast<size_t>(kGenFrames));
    references_["gen:" + std::to_string(seed)] = std::move(frames);
  }
  before_ = Snapshot(farm_.storage());
}

void Chaos::Submit(ChaosJob& job) {
  job.spec.set_max_attempts(10);
  job.spec.set_request_id("chaos-" + std::to_string(job.n));
  v1::SubmitJobResponse resp;
  // A retried submit with the same request id returns the first job: acknowledged once.
  const grpc::Status st = client_.Retry([&](v1::JobService::Stub& s, grpc::ClientContext* ctx) {
    v1::SubmitJobRequest req;
    *req.mutable_spec() = job.spec;
    return s.SubmitJob(ctx, req, &resp);
  });
  if (st.ok()) {
    job.id = resp.job_id();
  } else {
    job.refused = st;
  }
  std::printf("chaos: job %d (%s) -> %s %s\n", job.n, KindName(job.kind),
              st.ok() ? ("id " + std::to_string(job.id)).c_str() : "refused:",
              st.ok() ? "" : st.error_message().c_str());
  if (job.kind != Kind::kMustRefuse) {
    INFO("job " << job.n << " (" << KindName(job.kind) << "): " << st.error_message());
    CHECK(st.ok());
  }
}

void Chaos::SubmitNext(bool must_refuse) {
  ChaosJob job;
  job.n = static_cast<int>(jobs_.size()) + 1;
  const std::string stem = "j" + std::to_string(job.n);
  const std::string input = Pick(2) ? "in/a.mp4" : "in/b.mp4";
  auto upscale = [&](const std::string& in, const std::string& out, int frames, int w, int h) {
    job.spec = testing::UpscaleSpec(in, out, 4 + Pick(9));
    job.output = out;
    job.frames = frames;
    job.width = 2 * w;
    job.height = 2 * h;
  };
  auto generate = [&](const std::string& ext) {
    const int seed = 1 + Pick(2);
    job.spec.set_name(stem);
    v1::GenerateSpec* g = job.spec.mutable_generate();
    g->set_model("shapes_t2v");
    g->set_prompt("red circle moving right");
    g->add_seeds(seed);
    g->set_width(kGenSize);
    g->set_height(kGenSize);
    g->set_frames(kGenFrames);
    g->set_steps(4);
    g->set_output("gen/{take}" + ext);
    job.output = "gen/" + stem + "_take001" + ext;
    job.sequence = ext.find("####") != std::string::npos;
    job.frames = kGenFrames;
    job.width = job.height = kGenSize;
    job.reference = "gen:" + std::to_string(seed);
  };

  // Weights: upscale movie 5, sequence 6, generate movie 2, sequence 2, dependent 3,
  // overwrite 2.
  static const std::vector<std::pair<Kind, int>> kWeights = {
      {Kind::kUpscaleMovie, 5},     {Kind::kUpscaleSequence, 6}, {Kind::kGenerateMovie, 2},
      {Kind::kGenerateSequence, 2}, {Kind::kDependent, 3},       {Kind::kOverwrite, 2}};
  int r = Pick(20);
  for (const auto& [k, w] : kWeights) {
    if (r < w) {
      job.kind = k;
      break;
    }
    r -= w;
  }
  // Candidates for a dependency or an overwrite target: earlier movie outputs.
  std::vector<ChaosJob*> movies;
  for (ChaosJob& j : jobs_) {
    if (j.id != 0 && !j.sequence && !j.overwritten && j.kind != Kind::kMustRefuse &&
        j.kind != Kind::kOverwrite && j.width <= 320) {
      movies.push_back(&j);
    }
  }
  if (job.kind == Kind::kDependent && movies.empty()) job.kind = Kind::kUpscaleMovie;
  // The three must-refuse submits come at rounds of their own (see Run).
  if (job.kind == Kind::kMustRefuse) job.kind = Kind::kUpscaleSequence;
  if (must_refuse) job.kind = Kind::kMustRefuse;

  switch (job.kind) {
    case Kind::kUpscaleMovie:
      upscale(input, "out/" + stem + ".mp4", input_frames_[input], 160, 90);
      job.reference = input;
      break;
    case Kind::kUpscaleSequence:
      upscale(input, "out/" + stem + "/" + stem + ".####.png", input_frames_[input], 160, 90);
      job.sequence = true;
      job.reference = input;
      break;
    case Kind::kGenerateMovie:
      generate(".mp4");
      break;
    case Kind::kGenerateSequence:
      generate(".####.png");
      break;
    case Kind::kDependent: {
      ChaosJob* dep = movies[Pick(static_cast<int>(movies.size()))];
      dep->has_dependents = true;
      upscale(dep->output, "out/" + stem + ".mp4", dep->frames, dep->width, dep->height);
      job.spec.add_depends_on(dep->id);
      job.reference = "file:" + dep->output;
      break;
    }
    case Kind::kOverwrite: {
      // A user's movie, or an earlier job's output (after that job) that nothing reads.
      std::vector<UserFile*> users;
      for (UserFile& u : user_movies_) {
        if (!u.taken) users.push_back(&u);
      }
      std::vector<ChaosJob*> free;
      for (ChaosJob* m : movies) {
        if (!m->has_dependents) free.push_back(m);
      }
      std::string target;
      if (!free.empty() && (users.empty() || Pick(2))) {
        ChaosJob* earlier = free[Pick(static_cast<int>(free.size()))];
        earlier->overwritten = true;
        target = earlier->output;
        upscale(input, target, input_frames_[input], 160, 90);
        job.spec.add_depends_on(earlier->id);
      } else if (!users.empty()) {
        UserFile* u = users[Pick(static_cast<int>(users.size()))];
        u->taken = true;
        target = u->path;
        upscale(input, target, input_frames_[input], 160, 90);
      } else {
        job.kind = Kind::kUpscaleMovie;
        upscale(input, "out/" + stem + ".mp4", input_frames_[input], 160, 90);
      }
      if (job.kind == Kind::kOverwrite) job.spec.mutable_upscale()->set_overwrite(true);
      job.reference = input;
      break;
    }
    case Kind::kMustRefuse: {
      // In turn: the movie exists; a frame of the sequence exists; the sidecar exists.
      const int which = must_refuse_made_++;
      const std::string out = which == 0   ? "keep/user.mp4"
                              : which == 1 ? "keep/seq/user.####.png"
                                           : "keep/side.mp4";
      upscale(input, out, input_frames_[input], 160, 90);
      job.sequence = which == 1;
      job.reference = input;
      break;
    }
  }
  jobs_.push_back(std::move(job));
  Submit(jobs_.back());
}

void Chaos::Fault(int round) {
  std::vector<std::string> up;  // running, neither stopped nor dead
  for (int i = 1; i <= kWorkers; ++i) {
    const std::string w = "w" + std::to_string(i);
    if (!stopped_.count(w) && !dead_.count(w)) up.push_back(w);
  }
  // At least one worker stays up. A worker fault hits a busy worker when there is one.
  const bool may_take_worker = up.size() > 1;
  const double r = Uniform(0, 1);
  if (r < 0.7 && may_take_worker) {
    const std::set<std::string> busy = client_.BusyWorkers();
    std::vector<std::string> busy_up;
    for (const std::string& w : up) {
      if (busy.count(w)) busy_up.push_back(w);
    }
    if (!busy_up.empty()) up = busy_up;
  }
  std::string what;
  if (r < 0.4 && may_take_worker) {
    const std::string w = up[Pick(static_cast<int>(up.size()))];
    farm_.KillWorker(w, SIGKILL);
    dead_.insert(w);
    what = "SIGKILL worker " + w;
    ++faults_["worker SIGKILL"];
  } else if (r < 0.7 && may_take_worker) {
    const std::string w = up[Pick(static_cast<int>(up.size()))];
    farm_.KillWorker(w, SIGSTOP);
    stopped_.insert(w);
    wake_round_[w] = round + 2 + Pick(2);  // stopped past a lease, most times
    what = "SIGSTOP worker " + w;
    ++faults_["worker SIGSTOP"];
  } else if (two_servers_ && Pick(2)) {
    farm_.RestartStandbyAfterKill();
    what = "SIGKILL and restart the second server";
    ++faults_["server SIGKILL"];
  } else {
    farm_.RestartServerAfterKill();
    what = two_servers_ ? "SIGKILL and restart the first server" : "SIGKILL and restart the server";
    ++faults_["server SIGKILL"];
  }
  std::printf("chaos: round %d: %s\n", round + 1, what.c_str());
  std::fflush(stdout);
}

void Chaos::Poll() {
  for (ChaosJob& j : jobs_) {
    if (j.id == 0 || IsFinal(j.last.state())) continue;
    j.last = client_.Get(j.id);
    if (j.last.state() != v1::JOB_STATE_SUCCEEDED) continue;
    // Its files as published: nothing may change them later but an --overwrite job.
    for (const auto& [rel, hash] : Snapshot(farm_.storage())) {
      if (j.Owns(rel)) j.at_success[rel] = hash;
    }
  }
}

void Chaos::Run() {
  const auto t0 = SteadyClock::now();
  Setup();
  for (int i = 0; i < 4; ++i) SubmitNext();
  // Each must-refuse case once, at a round of the seed's choice.
  std::set<int> refuse_rounds;
  while (refuse_rounds.size() < 3) refuse_rounds.insert(Pick(rounds_));
  for (int round = 0; round < rounds_; ++round) {
    for (const std::string& w : std::set<std::string>(stopped_)) {
      if (round < wake_round_[w]) continue;
      farm_.KillWorker(w, SIGCONT);
      stopped_.erase(w);
      std::printf("chaos: round %d: SIGCONT worker %s\n", round + 1, w.c_str());
    }
    for (const std::string& w : dead_) farm_.StartWorker(w, worker_args_);
    dead_.clear();
    for (int k = Pick(3); k > 0; --k) SubmitNext();
    if (refuse_rounds.count(round)) SubmitNext(/*must_refuse=*/true);
    Sleep(Uniform(0.3, 1.5));
    Fault(round);
    Poll();
  }
  // The last fault is over: every worker runs again.
  for (const std::string& w : stopped_) farm_.KillWorker(w, SIGCONT);
  for (const std::string& w : dead_) farm_.StartWorker(w, worker_args_);
  stopped_.clear();
  dead_.clear();
  const double chaos_seconds = Seconds(t0);
  const auto t1 = SteadyClock::now();
  bool all_final = false;
  while (!all_final && Seconds(t1) < 240) {
    Poll();
    all_final = std::all_of(jobs_.begin(), jobs_.end(),
                            [](const ChaosJob& j) { return j.id == 0 || IsFinal(j.last.state()); });
    if (!all_final) Sleep(0.5);
  }
  const double drain_seconds = Seconds(t1);
  // A worker that was stopped may still finish a task it lost: give it past a lease.
  Sleep(4);
  int faults = 0;
  for (const auto& [k, n] : faults_) {
    std::printf("chaos: %d x %s\n", n, k.c_str());
    faults += n;
  }
  std::printf("chaos: %zu jobs, %d faults in %.1f s, all ended %.1f s after the last fault\n",
              jobs_.size(), faults, chaos_seconds, drain_seconds);
  CHECK(faults >= 20);
  for (const ChaosJob& j : jobs_) {
    if (j.id != 0 && !IsFinal(j.last.state())) {
      farm_.DumpLogs();
      break;
    }
  }
  for (const ChaosJob& j : jobs_) {
    INFO("job " << j.n << " (" << KindName(j.kind) << ", id " << j.id << ")");
    CHECK((j.id == 0 || IsFinal(j.last.state())));
  }
  Check();
}

const std::vector<std::vector<uint8_t>>& Chaos::Reference(const ChaosJob& job) {
  std::string key = job.reference;
  if (key.rfind("gen:", 0) != 0) key += "@" + std::to_string(job.width);
  auto it = references_.find(key);
  if (it != references_.end()) return it->second;
  const std::string source =
      job.reference.rfind("file:", 0) == 0 ? job.reference.substr(5) : job.reference;
  int w = 0, h = 0;
  auto frames = testing::DecodeYuv420(
      Path(source),
      "scale=" + std::to_string(job.width) + ":" + std::to_string(job.height) + ":flags=bicubic",
      &w, &h);
  return references_[key] = std::move(frames);
}

void Chaos::CheckOutput(const ChaosJob& job) {
  std::string path = Path(job.output).string();
  if (job.sequence) {
    int files = 0;
    const fs::path folder = Path(job.output).parent_path();
    for (const auto& e : fs::directory_iterator(folder)) {
      const std::string rel = fs::relative(e.path(), farm_.storage()).string();
      files += job.Owns(rel) && rel != job.output + ".json";
    }
    CHECK(files == job.frames);
    path.replace(path.find("####"), 4, "%04d");
  }
  const bool exists = fs::exists(job.sequence ? Path(job.output).parent_path() : Path(job.output));
  CHECK(exists);
  if (!exists) return;
  int w = 0, h = 0;
  const auto got = testing::DecodeYuv420(path, "", &w, &h);
  CHECK(w == job.width);
  CHECK(h == job.height);
  const auto& want = Reference(job);
  CHECK(got.size() == static_cast<size_t>(job.frames));
  CHECK(want.size() == static_cast<size_t>(job.frames));
  if (got.size() != want.size() || got.empty()) return;
  double worst = 1e9;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i].size() != want[i].size()) {
      worst = 0;
      break;
    }
    worst = std::min(worst, testing::Psnr(got[i], want[i]));
  }
  INFO("lowest PSNR against the reference: " << worst << " dB");
  CHECK(worst >= 35.0);
}

void Chaos::Check() {
  // Outputs: complete and right, each against its reference.
  int succeeded = 0;
  for (const ChaosJob& j : jobs_) {
    INFO("job " << j.n << " (" << KindName(j.kind) << ", id " << j.id << ", output " << j.output
                << "): " << j.last.error());
    if (j.kind == Kind::kMustRefuse) {
      // Refused at submit, or failed without writing.
      CHECK((j.id == 0 || j.last.state() == v1::JOB_STATE_FAILED));
      continue;
    }
    CHECK(j.last.state() == v1::JOB_STATE_SUCCEEDED);
    if (j.last.state() != v1::JOB_STATE_SUCCEEDED) continue;
    ++succeeded;
    if (!j.overwritten) CheckOutput(j);
  }
  // Files that existed before: unchanged unless an --overwrite job writes them.
  const std::map<std::string, uint64_t> now = Snapshot(farm_.storage());
  auto overwritten_by_later = [&](const std::string& rel, int after) {
    for (const ChaosJob& k : jobs_) {
      if (k.n > after && k.kind == Kind::kOverwrite && k.id != 0 && k.Owns(rel)) return true;
    }
    return false;
  };
  int kept = 0;
  for (const auto& [rel, hash] : before_) {
    if (overwritten_by_later(rel, 0)) continue;
    INFO("file '" << rel << "', there before any job");
    auto it = now.find(rel);
    CHECK(it != now.end());
    if (it != now.end()) CHECK(it->second == hash);
    ++kept;
  }
  for (const ChaosJob& j : jobs_) {
    for (const auto& [rel, hash] : j.at_success) {
      if (overwritten_by_later(rel, j.n)) continue;
      INFO("file '" << rel << "', published by job " << j.n);
      auto it = now.find(rel);
      CHECK(it != now.end());
      if (it != now.end()) CHECK(it->second == hash);
      ++kept;
    }
  }
  // No scratch: nothing under .reelfarm/jobs for a finished job (the server sweeps it
  // every 2 s, so it is given 10 s), no temporary file.
  for (const ChaosJob& j : jobs_) {
    if (j.id == 0) continue;
    INFO("job " << j.n << " (id " << j.id << ", " << KindName(j.kind) << ")");
    const fs::path scratch = farm_.storage() / ".reelfarm/jobs" / std::to_string(j.id);
    for (int i = 0; i < 100 && fs::exists(scratch); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    CHECK_FALSE(fs::exists(scratch));
  }
  for (const auto& [rel, hash] : now) {
    INFO("file '" << rel << "'");
    CHECK(rel.find(".tmp") == std::string::npos);
  }
  // `reelctl get` of jobs touched by a fault says what happened: each failed attempt,
  // with its worker and error.
  int touched = 0, shown = 0;
  for (const ChaosJob& j : jobs_) {
    if (j.id == 0) continue;
    std::vector<std::string> lines;
    for (const auto& t : j.last.tasks()) {
      for (int i = 0; i < t.errors_size() && i < t.workers_size(); ++i) {
        if (t.errors(i).empty()) continue;
        lines.push_back("attempt " + std::to_string(i + 1) + " on " + t.workers(i) + ": " +
                        t.errors(i));
      }
    }
    if (lines.empty()) continue;
    ++touched;
    if (shown >= 6) continue;  // a few are enough
    ++shown;
    int status = 0;
    const std::string out =
        testing::Capture(std::string(REELFARM_REELCTL_BIN) + " --insecure --server " +
                             client_.ServerList() + " get " + std::to_string(j.id) + " 2>&1",
                         &status);
    INFO(out);
    CHECK(status == 0);
    for (const std::string& l : lines) CHECK_THAT(out, Catch::Contains(l));
  }
  std::printf(
      "chaos: %d jobs succeeded; %d touched by a fault (reelctl get checked for %d); "
      "%d files checked unchanged\n",
      succeeded, touched, shown, kept);
  CHECK(touched > 0);
  // No process died on its own.
  for (int i = 1; i <= kWorkers; ++i) {
    const std::string w = "w" + std::to_string(i);
    INFO("worker " << w);
    CHECK(farm_.Alive(w));
  }
  CHECK(farm_.Alive("server"));
}

uint64_t ChaosSeed() {
  if (const char* s = std::getenv("REELFARM_CHAOS_SEED")) return std::strtoull(s, nullptr, 10);
  return std::random_device()() % 1000000;
}

int ChaosRounds() {
  if (const char* s = std::getenv("REELFARM_CHAOS_ROUNDS")) return std::max(20, std::atoi(s));
  return 24;
}

}  // namespace

TEST_CASE(
    "chaos: workers and the server killed and stopped at random lose and overwrite "
    "nothing",
    "[integration][slow][chaos]") {
  const uint64_t seed = ChaosSeed();
  const int rounds = ChaosRounds();
  std::printf("chaos (SQLite): seed %llu, %d rounds; REELFARM_CHAOS_SEED=%llu repeats it\n",
              static_cast<unsigned long long>(seed), rounds, static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  INFO("chaos seed " << seed << " (REELFARM_CHAOS_SEED repeats it)");
  testing::TempDir dir;
  const std::string models = std::string(REELFARM_SOURCE_DIR) + "/models";
  Farm farm(dir.path() / "farm", {"--lease-seconds", "3", "--model-path", models});
  const std::vector<std::string> worker_args = {"--model-path", models, "--frame-delay-ms", "50"};
  for (int i = 1; i <= kWorkers; ++i) farm.StartWorker("w" + std::to_string(i), worker_args);
  farm.WaitForWorkers(kWorkers);
  Chaos chaos(farm, {farm.address()}, /*two_servers=*/false, seed, rounds, worker_args);
  chaos.Run();
}

TEST_CASE(
    "chaos on PostgreSQL with a standby: workers and either server killed and stopped "
    "at random lose and overwrite nothing",
    "[integration][slow][chaos][postgres]") {
  const uint64_t seed = ChaosSeed();
  const int rounds = ChaosRounds();
  std::printf(
      "chaos (PostgreSQL, standby): seed %llu, %d rounds; REELFARM_CHAOS_SEED=%llu "
      "repeats it\n",
      static_cast<unsigned long long>(seed), rounds, static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  INFO("chaos seed " << seed << " (REELFARM_CHAOS_SEED repeats it)");
  testing::TempDir dir;
  const std::string models = std::string(REELFARM_SOURCE_DIR) + "/models";
  const std::string url = testing::NewPostgresDatabase(testing::SharedPostgresUrl());
  Farm farm(dir.path() / "farm", {"--store", url, "--lease-seconds", "3", "--model-path", models});
  farm.StartStandby();
  const std::vector<std::string> worker_args = {"--model-path", models, "--frame-delay-ms", "50"};
  for (int i = 1; i <= kWorkers; ++i) farm.StartWorker("w" + std::to_string(i), worker_args);
  farm.WaitForWorkers(kWorkers);
  Chaos chaos(farm, {farm.address(), farm.standby_address()}, /*two_servers=*/true, seed, rounds,
              worker_args);
  chaos.Run();
}
