// Security on a real farm: tokens and roles on every call, TLS and mutual TLS on the
// gRPC port, storage confinement at the time a worker opens files, and hostile input
// sent while a good job runs. Certificates are made with the openssl tool.
#include <signal.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "common/grpc_security.h"
#include "tests/testing/checks.h"
#include "tests/testing/farm.h"
#include "tests/testing/fixtures.h"

namespace fs = std::filesystem;
using namespace reelfarm;
using testing::Farm;
using testing::UpscaleSpec;

namespace {

constexpr char kAdmin[] = "admin-token-0123456789abcdef";
constexpr char kAlice[] = "alice-token-0123456789abcdef";  // submitter: showA
constexpr char kBob[] = "bob-token-0123456789abcdef-b";    // submitter: showB
constexpr char kViewer[] = "viewer-token-0123456789abcdef";
constexpr char kWorker[] = "worker-token-0123456789abcdef";
constexpr char kCarol[] = "carol-token-0123456789abcdef";  // added by a reload

void WriteTokens(const fs::path& path, bool reloaded = false) {
  std::ofstream out(path.string() + ".tmp");
  out << "tokens:\n"
      << "  - {name: root, role: admin, token: \"" << kAdmin << "\"}\n"
      << "  - {name: alice, role: submitter, projects: [showA], token: \"" << kAlice << "\"}\n"
      << "  - {name: viewer, role: viewer, token: \"" << kViewer << "\"}\n"
      << "  - {name: nodes, role: worker, token: \"" << kWorker << "\"}\n";
  if (!reloaded) {
    out << "  - {name: bob, role: submitter, projects: [showB], token: \"" << kBob << "\"}\n";
  } else {
    out << "  - {name: carol, role: submitter, projects: [showB], token: \"" << kCarol << "\"}\n";
  }
  out.close();
  fs::rename(path.string() + ".tmp", path);
}

fs::path WriteTokenFile(const fs::path& dir, const std::string& name, const std::string& token) {
  fs::path p = dir / (name + ".token");
  std::ofstream(p) << token << "\n";
  return p;
}

common::ClientTlsOptions Plaintext() {
  common::ClientTlsOptions o;
  o.insecure = true;
  return o;
}

std::unique_ptr<v1::JobService::Stub> Client(const std::string& address, const std::string& token,
                                             const common::ClientTlsOptions& tls = Plaintext()) {
  auto channel = common::MakeChannel(address, tls, token);
  REQUIRE(channel.ok());
  return v1::JobService::NewStub(*channel);
}

void Deadline(grpc::ClientContext* ctx, int seconds = 10) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
}

grpc::StatusCode SubmitCode(v1::JobService::Stub& stub, const v1::JobSpec& spec,
                            int64_t* id = nullptr, std::string* message = nullptr) {
  grpc::ClientContext ctx;
  Deadline(&ctx, 30);
  v1::SubmitJobRequest req;
  *req.mutable_spec() = spec;
  v1::SubmitJobResponse resp;
  grpc::Status st = stub.SubmitJob(&ctx, req, &resp);
  if (id) *id = resp.job_id();
  if (message) *message = st.error_message();
  return st.error_code();
}

grpc::StatusCode GetCode(v1::JobService::Stub& stub, int64_t id, v1::Job* out = nullptr) {
  grpc::ClientContext ctx;
  Deadline(&ctx);
  v1::GetJobRequest req;
  req.set_job_id(id);
  v1::Job job;
  const grpc::StatusCode code = stub.GetJob(&ctx, req, &job).error_code();
  if (out != nullptr) *out = job;
  return code;
}

grpc::StatusCode ListCode(v1::JobService::Stub& stub, std::vector<int64_t>* ids = nullptr,
                          const std::string& project = "") {
  grpc::ClientContext ctx;
  Deadline(&ctx);
  v1::ListJobsRequest req;
  req.set_project(project);
  v1::ListJobsResponse resp;
  grpc::Status st = stub.ListJobs(&ctx, req, &resp);
  if (ids) {
    ids->clear();
    for (const auto& j : resp.jobs()) ids->push_back(j.id());
  }
  return st.error_code();
}

grpc::StatusCode WatchCode(v1::JobService::Stub& stub, int64_t id) {
  grpc::ClientContext ctx;
  Deadline(&ctx, 3);
  v1::WatchJobRequest req;
  req.set_job_id(id);
  auto reader = stub.WatchJob(&ctx, req);
  v1::JobEvent ev;
  const bool got = reader->Read(&ev);
  if (got) ctx.TryCancel();
  grpc::Status st = reader->Finish();
  return got ? grpc::StatusCode::OK : st.error_code();
}

grpc::StatusCode LogsCode(v1::JobService::Stub& stub, int64_t id) {
  grpc::ClientContext ctx;
  Deadline(&ctx, 5);
  v1::GetTaskLogsRequest req;
  req.set_job_id(id);
  auto reader = stub.GetTaskLogs(&ctx, req);
  v1::TaskLogLines lines;
  while (reader->Read(&lines)) {
  }
  return reader->Finish().error_code();
}

// Every call that controls a job, by `stub`, on job `id`: their codes.
std::vector<grpc::StatusCode> ControlCodes(v1::JobService::Stub& stub, int64_t id) {
  std::vector<grpc::StatusCode> codes;
  v1::Job job;
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::PauseJobRequest r;
    r.set_job_id(id);
    codes.push_back(stub.PauseJob(&ctx, r, &job).error_code());
  }
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::ResumeJobRequest r;
    r.set_job_id(id);
    codes.push_back(stub.ResumeJob(&ctx, r, &job).error_code());
  }
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::RetryJobRequest r;
    r.set_job_id(id);
    codes.push_back(stub.RetryJob(&ctx, r, &job).error_code());
  }
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::SetPriorityRequest r;
    r.set_job_id(id);
    r.set_priority(99);
    codes.push_back(stub.SetPriority(&ctx, r, &job).error_code());
  }
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::CancelJobRequest r;
    r.set_job_id(id);
    codes.push_back(stub.CancelJob(&ctx, r, &job).error_code());
  }
  return codes;
}

grpc::StatusCode WorkersCode(v1::JobService::Stub& stub,
                             std::vector<std::string>* names = nullptr) {
  grpc::ClientContext ctx;
  Deadline(&ctx);
  v1::ListWorkersResponse resp;
  grpc::Status st = stub.ListWorkers(&ctx, v1::ListWorkersRequest(), &resp);
  if (names) {
    names->clear();
    for (const auto& w : resp.workers()) names->push_back(w.name());
  }
  return st.error_code();
}

grpc::StatusCode DrainCode(v1::JobService::Stub& stub, const std::string& name) {
  grpc::ClientContext ctx;
  Deadline(&ctx);
  v1::DrainWorkerRequest r;
  r.set_name(name);
  r.set_drain(false);
  v1::Worker w;
  return stub.DrainWorker(&ctx, r, &w).error_code();
}

v1::JobSpec ProjectSpec(const std::string& project, const std::string& output) {
  v1::JobSpec spec = UpscaleSpec("plates/a.mp4", output, 12);
  spec.set_project(project);
  return spec;
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A test CA, a server certificate for localhost/127.0.0.1 and a worker client
// certificate it signed (EC P-256, two days).
struct Pki {
  fs::path ca, server_cert, server_key, worker_cert, worker_key;
};

Pki MakePki(const fs::path& dir) {
  fs::create_directories(dir);
  const std::string d = dir.string();
  const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ";
  std::ofstream(dir / "server.ext") << "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                    << "extendedKeyUsage=serverAuth,clientAuth\n";
  std::ofstream(dir / "worker.ext") << "extendedKeyUsage=clientAuth\n";
  const std::string cmd =
      "cd " + d + " && openssl req -x509" + ec +
      "-keyout ca.key -out ca.crt -days 2 -subj /CN=reelfarm-test-ca && "
      "openssl req" +
      ec +
      "-keyout server.key -out server.csr -subj /CN=localhost && "
      "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
      "-out server.crt -days 2 -extfile server.ext && "
      "openssl req" +
      ec +
      "-keyout worker.key -out worker.csr -subj /CN=render01 && "
      "openssl x509 -req -in worker.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
      "-out worker.crt -days 2 -extfile worker.ext";
  REQUIRE(testing::Run("(" + cmd + ") >/dev/null 2>&1") == 0);
  return {dir / "ca.crt", dir / "server.crt", dir / "server.key", dir / "worker.crt",
          dir / "worker.key"};
}

// Polls until `pred` holds or `seconds` pass.
template <typename Pred>
bool Eventually(Pred pred, int seconds) {
  for (int i = 0; i < seconds * 10; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return pred();
}

}  // namespace

TEST_CASE("tokens and roles: every call checks and other projects' jobs stay out of reach",
          "[integration][security]") {
  testing::TempDir dir;
  const fs::path tokens = dir.path() / "tokens.yaml";
  WriteTokens(tokens);
  Farm farm(dir.path() / "farm", {"--tokens-file", tokens.string()});
  farm.SetClient(Plaintext(), kAdmin);
  testing::MakeTestClip(farm.storage() / "plates/a.mp4", 64, 36, 12);

  auto none = Client(farm.address(), "");
  auto wrong = Client(farm.address(), "not-a-token-0123456789abcdef");
  auto alice = Client(farm.address(), kAlice);
  auto bob = Client(farm.address(), kBob);
  auto viewer = Client(farm.address(), kViewer);
  auto worker = Client(farm.address(), kWorker);
  auto admin = Client(farm.address(), kAdmin);

  // Submitting: only a submitter of the job's project (or an admin).
  int64_t a_job = 0, b_job = 0;
  CHECK(SubmitCode(*none, ProjectSpec("showA", "r/a.mp4")) == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(SubmitCode(*wrong, ProjectSpec("showA", "r/a.mp4")) == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(SubmitCode(*viewer, ProjectSpec("showA", "r/a.mp4")) ==
        grpc::StatusCode::PERMISSION_DENIED);
  CHECK(SubmitCode(*worker, ProjectSpec("showA", "r/a.mp4")) ==
        grpc::StatusCode::PERMISSION_DENIED);
  std::string message;
  CHECK(SubmitCode(*bob, ProjectSpec("showA", "r/a.mp4"), nullptr, &message) ==
        grpc::StatusCode::PERMISSION_DENIED);
  CHECK(message.find("showA") != std::string::npos);
  CHECK(SubmitCode(*alice, ProjectSpec("", "r/a.mp4")) ==  // "default" is not hers
        grpc::StatusCode::PERMISSION_DENIED);
  REQUIRE(SubmitCode(*alice, ProjectSpec("showA", "r/a.mp4"), &a_job) == grpc::StatusCode::OK);
  REQUIRE(SubmitCode(*bob, ProjectSpec("showB", "r/b.mp4"), &b_job) == grpc::StatusCode::OK);
  // depends_on another project's job is refused too.
  v1::JobSpec chained = ProjectSpec("showB", "r/b2.mp4");
  chained.add_depends_on(a_job);
  CHECK(SubmitCode(*bob, chained) == grpc::StatusCode::PERMISSION_DENIED);

  // No token or a wrong one: UNAUTHENTICATED on every call.
  for (auto* stub : {none.get(), wrong.get()}) {
    CHECK(GetCode(*stub, a_job) == grpc::StatusCode::UNAUTHENTICATED);
    CHECK(ListCode(*stub) == grpc::StatusCode::UNAUTHENTICATED);
    CHECK(WatchCode(*stub, a_job) == grpc::StatusCode::UNAUTHENTICATED);
    CHECK(LogsCode(*stub, a_job) == grpc::StatusCode::UNAUTHENTICATED);
    CHECK(WorkersCode(*stub) == grpc::StatusCode::UNAUTHENTICATED);
    CHECK(DrainCode(*stub, "w1") == grpc::StatusCode::UNAUTHENTICATED);
    for (auto code : ControlCodes(*stub, a_job)) CHECK(code == grpc::StatusCode::UNAUTHENTICATED);
  }

  // Another project's job: bob can neither get, watch, read the logs of, nor control
  // alice's job; his listing leaves it out, and asking for her project is refused.
  CHECK(GetCode(*bob, a_job) == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(WatchCode(*bob, a_job) == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(LogsCode(*bob, a_job) == grpc::StatusCode::PERMISSION_DENIED);
  for (auto code : ControlCodes(*bob, a_job)) CHECK(code == grpc::StatusCode::PERMISSION_DENIED);
  std::vector<int64_t> ids;
  CHECK(ListCode(*bob, &ids) == grpc::StatusCode::OK);
  CHECK(ids == std::vector<int64_t>{b_job});
  CHECK(ListCode(*bob, &ids, "showA") == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(ListCode(*alice, &ids) == grpc::StatusCode::OK);
  CHECK(ids == std::vector<int64_t>{a_job});
  CHECK(GetCode(*alice, a_job) == grpc::StatusCode::OK);
  CHECK(WatchCode(*alice, a_job) == grpc::StatusCode::OK);
  // Each job names who submitted it: the name of the token, whoever asks.
  v1::Job got;
  CHECK(GetCode(*viewer, a_job, &got) == grpc::StatusCode::OK);
  CHECK(got.owner() == "alice");
  CHECK(GetCode(*admin, b_job, &got) == grpc::StatusCode::OK);
  CHECK(got.owner() == "bob");
  CHECK(DrainCode(*alice, "w1") == grpc::StatusCode::PERMISSION_DENIED);

  // A viewer reads everything and changes nothing.
  CHECK(GetCode(*viewer, a_job) == grpc::StatusCode::OK);
  CHECK(ListCode(*viewer, &ids) == grpc::StatusCode::OK);
  CHECK(ids.size() == 2);
  CHECK(WorkersCode(*viewer) == grpc::StatusCode::OK);
  for (auto code : ControlCodes(*viewer, a_job)) {
    CHECK(code == grpc::StatusCode::PERMISSION_DENIED);
  }
  // A worker token opens the WorkerService only.
  CHECK(GetCode(*worker, a_job) == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(ListCode(*worker) == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(WorkersCode(*worker) == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(WatchCode(*worker, a_job) == grpc::StatusCode::PERMISSION_DENIED);
  for (auto code : ControlCodes(*worker, a_job)) {
    CHECK(code == grpc::StatusCode::PERMISSION_DENIED);
  }
  // None of that touched alice's job; she (and an admin) control it.
  CHECK(farm.Get(a_job).state() == v1::JOB_STATE_QUEUED);
  CHECK(farm.Get(a_job).spec().priority() != 99);
  CHECK(DrainCode(*admin, "nobody") != grpc::StatusCode::PERMISSION_DENIED);
  grpc::ClientContext cctx;
  v1::CancelJobRequest creq;
  creq.set_job_id(a_job);
  v1::Job cancelled;
  CHECK(alice->CancelJob(&cctx, creq, &cancelled).ok());
  CHECK(cancelled.state() == v1::JOB_STATE_CANCELLED);

  // Workers: no token, or a submitter's, is refused; the worker token connects.
  const fs::path t = dir.path() / "tok";
  fs::create_directories(t);
  farm.StartWorker("anon");
  farm.StartWorker("sub", {"--token-file", WriteTokenFile(t, "alice", kAlice).string()});
  farm.StartWorker("w1", {"--token-file", WriteTokenFile(t, "worker", kWorker).string()});
  farm.WaitForWorkers(1);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  std::vector<std::string> names;
  REQUIRE(WorkersCode(*admin, &names) == grpc::StatusCode::OK);
  CHECK(names == std::vector<std::string>{"w1"});
  CHECK(farm.ServerLog().find("worker refused") != std::string::npos);
  CHECK(farm.WorkerLog("sub").find("may not connect as a worker") != std::string::npos);
  CHECK(farm.WorkerLog("anon").find("no token") != std::string::npos);

  // The tokens file is read again when it changes: carol comes, bob goes.
  WriteTokens(tokens, /*reloaded=*/true);
  auto carol = Client(farm.address(), kCarol);
  CHECK(Eventually([&] { return ListCode(*carol) == grpc::StatusCode::OK; }, 10));
  CHECK(GetCode(*carol, b_job) == grpc::StatusCode::OK);
  CHECK(GetCode(*bob, b_job) == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(farm.ServerLog().find("tokens reloaded") != std::string::npos);
  // A file that no longer parses keeps the tokens in force.
  std::ofstream(tokens) << "tokens: [ {name: x, role: emperor";
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  CHECK(GetCode(*carol, b_job) == grpc::StatusCode::OK);

  // No token ever reaches a log.
  const std::string logs =
      farm.ServerLog() + farm.WorkerLog("w1") + farm.WorkerLog("sub") + farm.WorkerLog("anon");
  for (const char* token : {kAdmin, kAlice, kBob, kViewer, kWorker, kCarol}) {
    CHECK(logs.find(token) == std::string::npos);
  }
}

TEST_CASE("TLS: plaintext refused, mutual TLS refuses a worker without a certificate",
          "[integration][security]") {
  testing::TempDir dir;
  const Pki pki = MakePki(dir.path() / "pki");
  const fs::path tokens = dir.path() / "tokens.yaml";
  WriteTokens(tokens);
  // Local workers get the worker token and TLS settings from the server itself.
  Farm farm(dir.path() / "farm",
            {"--tls-cert", pki.server_cert.string(), "--tls-key", pki.server_key.string(),
             "--tls-client-ca", pki.ca.string(), "--require-worker-cert", "--tokens-file",
             tokens.string(), "--local-workers", "1", "--worker-threads", "1",
             "--local-worker-tls-ca", pki.ca.string()});
  common::ClientTlsOptions tls;
  tls.ca_file = pki.ca.string();
  farm.SetClient(tls, kAdmin);
  farm.WaitForWorkers(1);

  // The handshake is required: plaintext, and TLS without trusting the CA, fail.
  auto plain = Client(farm.address(), kAdmin, Plaintext());
  CHECK(ListCode(*plain) == grpc::StatusCode::UNAVAILABLE);
  common::ClientTlsOptions system_roots;
  auto untrusted = Client(farm.address(), kAdmin, system_roots);
  CHECK(ListCode(*untrusted) == grpc::StatusCode::UNAVAILABLE);
  auto good = Client(farm.address(), kAdmin, tls);
  CHECK(ListCode(*good) == grpc::StatusCode::OK);
  // reelctl over TLS: refused without the CA, served with it.
  int status = -1;
  const std::string ctl =
      std::string(REELFARM_REELCTL_BIN) + " --server " + farm.address() + " --token " + kViewer;
  testing::Capture(ctl + " list 2>&1", &status);
  CHECK(status == 3);
  testing::Capture(ctl + " --tls-ca " + pki.ca.string() + " list 2>&1", &status);
  CHECK(status == 0);

  // Workers: a plaintext one and one without a client certificate are refused; one
  // with a certificate the CA signed connects.
  const fs::path t = dir.path() / "tok";
  fs::create_directories(t);
  const std::string token_file = WriteTokenFile(t, "worker", kWorker).string();
  farm.StartWorker("plain", {"--insecure", "--token-file", token_file});
  farm.StartWorker("nocert", {"--tls-ca", pki.ca.string(), "--tls-server-name", "localhost",
                              "--token-file", token_file});
  farm.StartWorker("withcert", {"--tls-ca", pki.ca.string(), "--tls-server-name", "localhost",
                                "--tls-cert", pki.worker_cert.string(), "--tls-key",
                                pki.worker_key.string(), "--token-file", token_file});
  farm.WaitForWorkers(2);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  std::vector<std::string> names;
  REQUIRE(WorkersCode(*good, &names) == grpc::StatusCode::OK);
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"local-1", "withcert"});
  CHECK(farm.WorkerLog("nocert").find("client certificate") != std::string::npos);

  // A job runs end to end over TLS.
  testing::MakeTestClip(farm.storage() / "plates/a.mp4", 64, 36, 24);
  int64_t id = 0;
  v1::JobSpec spec = UpscaleSpec("plates/a.mp4", "renders/a.mp4", 12);
  REQUIRE(SubmitCode(*good, spec, &id) == grpc::StatusCode::OK);
  CHECK(farm.WaitForJob(id).state() == v1::JOB_STATE_SUCCEEDED);
  CHECK(fs::file_size(farm.storage() / "renders/a.mp4") > 0);
}

TEST_CASE("TLS with --require-client-cert: no client certificate, no handshake",
          "[integration][security]") {
  testing::TempDir dir;
  const Pki pki = MakePki(dir.path() / "pki");
  Farm farm(dir.path() / "farm",
            {"--tls-cert", pki.server_cert.string(), "--tls-key", pki.server_key.string(),
             "--tls-client-ca", pki.ca.string(), "--require-client-cert"});
  common::ClientTlsOptions tls;
  tls.ca_file = pki.ca.string();
  auto no_cert = Client(farm.address(), "", tls);
  CHECK(ListCode(*no_cert) == grpc::StatusCode::UNAVAILABLE);
  tls.cert_file = pki.worker_cert.string();
  tls.key_file = pki.worker_key.string();
  auto with_cert = Client(farm.address(), "", tls);
  CHECK(ListCode(*with_cert) == grpc::StatusCode::OK);
  // A certificate from another CA is refused as well.
  const Pki other = MakePki(dir.path() / "other");
  tls.cert_file = other.worker_cert.string();
  tls.key_file = other.worker_key.string();
  auto foreign = Client(farm.address(), "", tls);
  CHECK(ListCode(*foreign) == grpc::StatusCode::UNAVAILABLE);
}

TEST_CASE("storage confinement holds when the worker opens files, not only at submit",
          "[integration][security]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  const fs::path outside = dir.path() / "outside";
  fs::create_directories(outside / "renders");
  testing::MakeTestClip(outside / "plate.mp4", 64, 36, 12);
  testing::MakeTestClip(farm.storage() / "shots/a/plate.mp4", 64, 36, 12);
  testing::MakeTestClip(farm.storage() / "plates/b.mp4", 64, 36, 12);
  const std::string secret = ReadAll(outside / "plate.mp4");

  // At submit: absolute paths, "..", a symbolic link leading out, an existing output.
  fs::create_directory_symlink(outside, farm.storage() / "escape");
  std::ofstream(farm.storage() / "plates/taken.mp4") << "precious";
  const auto code = [&](const std::string& in, const std::string& out) {
    v1::SubmitJobResponse resp;
    return farm.Submit(UpscaleSpec(in, out, 12), &resp).error_code();
  };
  CHECK(code((outside / "plate.mp4").string(), "r/x.mp4") == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(code("plates/b.mp4", (outside / "x.mp4").string()) == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(code("plates/../../outside/plate.mp4", "r/x.mp4") == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(code("escape/plate.mp4", "r/x.mp4") == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(code("plates/b.mp4", "escape/renders/x.mp4") == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(code("plates/b.mp4", "plates/taken.mp4") == grpc::StatusCode::ALREADY_EXISTS);

  // Accepted while every path was inside; then, before any worker runs them:
  v1::SubmitJobResponse a, b, c;
  REQUIRE(farm.Submit(UpscaleSpec("shots/a/plate.mp4", "renders/a.mp4", 12), &a).ok());
  REQUIRE(farm.Submit(UpscaleSpec("plates/b.mp4", "out/b.mp4", 12), &b).ok());
  REQUIRE(farm.Submit(UpscaleSpec("plates/b.mp4", "renders/c.mp4", 12), &c).ok());
  // (a) the input's folder is swapped for a link to a folder outside,
  fs::rename(farm.storage() / "shots/a", farm.storage() / "shots/a.real");
  fs::create_directory_symlink(outside, farm.storage() / "shots/a");
  // (b) the output's folder is made a link to a folder outside,
  fs::create_directory_symlink(outside / "renders", farm.storage() / "out");
  // (c) a file appears at the output's path.
  fs::create_directories(farm.storage() / "renders");
  std::ofstream(farm.storage() / "renders/c.mp4") << "precious";

  farm.StartWorker("w1");
  const v1::Job ja = farm.WaitForJob(a.job_id());
  const v1::Job jb = farm.WaitForJob(b.job_id());
  const v1::Job jc = farm.WaitForJob(c.job_id());
  CHECK(ja.state() == v1::JOB_STATE_FAILED);
  CHECK(ja.error().find("outside the storage root") != std::string::npos);
  CHECK(jb.state() == v1::JOB_STATE_FAILED);
  CHECK(jb.error().find("outside the storage root") != std::string::npos);
  CHECK(fs::is_empty(outside / "renders"));  // nothing written outside, not even a temp
  CHECK(jc.state() == v1::JOB_STATE_FAILED);
  CHECK(jc.error().find("set overwrite") != std::string::npos);
  CHECK(ReadAll(farm.storage() / "renders/c.mp4") == "precious");
  CHECK(ReadAll(outside / "plate.mp4") == secret);
  // The worker keeps serving: with overwrite set, (c) runs.
  v1::JobSpec again = UpscaleSpec("plates/b.mp4", "renders/c.mp4", 12);
  again.mutable_upscale()->set_overwrite(true);
  v1::SubmitJobResponse d;
  REQUIRE(farm.Submit(again, &d).ok());
  CHECK(farm.WaitForJob(d.job_id()).state() == v1::JOB_STATE_SUCCEEDED);
  CHECK(ReadAll(farm.storage() / "renders/c.mp4") != "precious");
}

namespace {

// A PNG whose header claims `width`x`height` but whose data is a few bytes: a decoder
// that trusted the header would allocate width*height*3 bytes.
void WritePngBomb(const fs::path& path, uint32_t width, uint32_t height) {
  const std::string py =
      "import struct,zlib,sys\n"
      "def chunk(t,d): return struct.pack('>I',len(d))+t+d+struct.pack('>I',zlib.crc32(t+d))\n"
      "w,h=int(sys.argv[2]),int(sys.argv[3])\n"
      "data=b'\\x89PNG\\r\\n\\x1a\\n'+chunk(b'IHDR',struct.pack('>IIBBBBB',w,h,8,2,0,0,0))"
      "+chunk(b'IDAT',zlib.compress(b'\\0'*4096))+chunk(b'IEND',b'')\n"
      "open(sys.argv[1],'wb').write(data)\n";
  const fs::path script = path.parent_path() / "bomb.py";
  std::ofstream(script) << py;
  REQUIRE(testing::Run("/usr/bin/python3 " + script.string() + " " + path.string() + " " +
                       std::to_string(width) + " " + std::to_string(height)) == 0);
}

// `path` with `count` bytes from `offset` on replaced by pseudo-random ones.
void Corrupt(const fs::path& path, size_t offset, size_t count) {
  std::string bytes = ReadAll(path);
  std::mt19937 rng(1234);
  for (size_t i = offset; i < offset + count && i < bytes.size(); ++i) {
    bytes[i] = static_cast<char>(rng());
  }
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

}  // namespace

TEST_CASE("hostile input while a good job runs: the job completes, both processes stay up",
          "[integration][security][hostile]") {
  testing::TempDir dir;
  Farm farm(dir.path() / "farm");
  const fs::path s = farm.storage();
  testing::MakeTestClip(s / "plates/good.mp4", 320, 180, 48);
  // A slow model (40 ms a frame) keeps the good job running while the rest arrives.
  farm.StartWorker("w1", {"--frame-delay-ms", "40"});
  farm.StartWorker("w2", {"--frame-delay-ms", "40"});
  farm.WaitForWorkers(2);
  v1::SubmitJobResponse good;
  REQUIRE(farm.Submit(UpscaleSpec("plates/good.mp4", "renders/good.mp4", 12), &good).ok());

  // Hostile media: truncated, corrupt (header and middle), garbage, an empty file,
  // oversize frames, and PNG decompression bombs.
  testing::MakeTestClip(s / "h/base.mp4", 160, 90, 48);
  const std::string base = ReadAll(s / "h/base.mp4");
  std::ofstream(s / "h/truncated.mp4", std::ios::binary) << base.substr(0, base.size() / 3);
  fs::copy_file(s / "h/base.mp4", s / "h/corrupt_mid.mp4");
  Corrupt(s / "h/corrupt_mid.mp4", base.size() / 2, 2000);
  fs::copy_file(s / "h/base.mp4", s / "h/corrupt_head.mp4");
  Corrupt(s / "h/corrupt_head.mp4", 0, 64);
  std::ofstream(s / "h/garbage.mp4", std::ios::binary) << std::string(100000, '\x42');
  std::ofstream(s / "h/empty.mp4");
  REQUIRE(testing::Run("ffmpeg -nostdin -v error -y -f lavfi -i color=c=red:s=8200x16:r=24 "
                       "-frames:v 2 -c:v ffv1 " +
                       (s / "h/wide.mkv").string()) == 0);
  for (int i = 1; i <= 2; ++i) {
    WritePngBomb(s / ("h/bomb." + std::to_string(1000 + i) + ".png"), 60000, 60000);
  }
  WritePngBomb(s / "h/tall.0001.png", 16, 1u << 30);
  // A clip that is fine at submit and replaced by garbage before a worker reads it.
  testing::MakeTestClip(s / "h/swapped.mp4", 160, 90, 24);

  std::vector<int64_t> accepted;
  const auto submit = [&](const v1::JobSpec& spec) {
    v1::SubmitJobResponse resp;
    grpc::Status st = farm.Submit(spec, &resp);
    INFO(spec.ShortDebugString() << " -> " << st.error_code() << " " << st.error_message());
    CHECK(st.error_code() != grpc::StatusCode::UNAVAILABLE);  // the server answered
    CHECK(st.error_code() != grpc::StatusCode::INTERNAL);
    if (st.ok()) accepted.push_back(resp.job_id());
    return st.error_code();
  };
  int n = 0;
  const auto out = [&] { return "h/out" + std::to_string(++n) + ".mp4"; };
  for (const char* in : {"h/truncated.mp4", "h/corrupt_mid.mp4", "h/corrupt_head.mp4",
                         "h/garbage.mp4", "h/empty.mp4"}) {
    submit(UpscaleSpec(in, out(), 12));
  }
  CHECK(submit(UpscaleSpec("h/garbage.mp4", out(), 12)) == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(submit(UpscaleSpec("h/wide.mkv", out(), 12)) == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(submit(UpscaleSpec("h/bomb.####.png", "h/bomb_x2.####.png", 12)) ==
        grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(submit(UpscaleSpec("h/tall.####.png", "h/tall_x2.####.png", 12)) ==
        grpc::StatusCode::FAILED_PRECONDITION);
  REQUIRE(submit(UpscaleSpec("h/swapped.mp4", out(), 12)) == grpc::StatusCode::OK);
  const int64_t swapped = accepted.back();
  Corrupt(s / "h/swapped.mp4", 0, fs::file_size(s / "h/swapped.mp4"));

  // Malformed specs: empty, wrong numbers, hostile strings, oversize.
  CHECK(submit(v1::JobSpec()) == grpc::StatusCode::INVALID_ARGUMENT);
  v1::JobSpec spec = UpscaleSpec("plates/good.mp4", out(), 12);
  spec.mutable_upscale()->set_scale(1000);
  CHECK(submit(spec) == grpc::StatusCode::INVALID_ARGUMENT);
  spec = UpscaleSpec("plates/good.mp4", out(), -5);
  CHECK(submit(spec) == grpc::StatusCode::INVALID_ARGUMENT);
  spec = UpscaleSpec("plates/good.mp4", out(), 1);
  spec.mutable_upscale()->set_first_frame(40);
  spec.mutable_upscale()->set_last_frame(3);
  CHECK(submit(spec) == grpc::StatusCode::INVALID_ARGUMENT);
  spec = UpscaleSpec(std::string("plates/good.mp4\0x", 17), out(), 12);
  CHECK(submit(spec) == grpc::StatusCode::INVALID_ARGUMENT);
  spec = UpscaleSpec("plates/" + std::string(5000, 'a') + ".mp4", out(), 12);
  CHECK(submit(spec) == grpc::StatusCode::INVALID_ARGUMENT);
  spec = UpscaleSpec("plates/good.mp4", out(), 12);
  spec.set_name(std::string(100'000, 'n'));
  CHECK(submit(spec) == grpc::StatusCode::INVALID_ARGUMENT);
  spec = UpscaleSpec("plates/good.mp4", out(), 12);
  spec.set_name(std::string(8 << 20, 'n'));  // over the gRPC message limit
  CHECK(submit(spec) == grpc::StatusCode::RESOURCE_EXHAUSTED);
  spec = UpscaleSpec("plates/good.mp4", out(), 12);
  for (int i = 0; i < 100; ++i) (*spec.mutable_requirements())["k" + std::to_string(i)] = "v";
  CHECK(submit(spec) == grpc::StatusCode::INVALID_ARGUMENT);
  spec = UpscaleSpec("/dev/zero", out(), 12);
  CHECK(submit(spec) == grpc::StatusCode::PERMISSION_DENIED);
  spec = UpscaleSpec("plates/good.mp4", "h/x.mp4", 12);
  spec.mutable_upscale()->mutable_format()->set_codec(std::string(300, 'x'));
  CHECK(submit(spec) == grpc::StatusCode::INVALID_ARGUMENT);
  spec = UpscaleSpec("plates/good.mp4", out(), 1);  // 48 tasks: fine
  spec.set_max_attempts(0);
  CHECK(submit(spec) == grpc::StatusCode::INVALID_ARGUMENT);

  // The good job completes, correct; every accepted hostile job ends; nobody died.
  const v1::Job job = farm.WaitForJob(good.job_id());
  CHECK(job.state() == v1::JOB_STATE_SUCCEEDED);
  CHECK(job.frames_done() == 48);
  testing::CheckUpscaledClip(s / "plates/good.mp4", s / "renders/good.mp4", 48,
                             "scale=640:360:flags=bicubic", 35.0);
  for (int64_t id : accepted) {
    const v1::Job j = farm.WaitForJob(id);
    INFO("job " << id << " " << j.error());
    CHECK((j.state() == v1::JOB_STATE_SUCCEEDED || j.state() == v1::JOB_STATE_FAILED));
  }
  CHECK(farm.WaitForJob(swapped).state() == v1::JOB_STATE_FAILED);
  CHECK(farm.Alive("server"));
  CHECK(farm.Alive("w1"));
  CHECK(farm.Alive("w2"));
  CHECK(farm.WorkerLog("w1").find("AddressSanitizer") == std::string::npos);
  // And they still work.
  v1::SubmitJobResponse after;
  REQUIRE(farm.Submit(UpscaleSpec("plates/good.mp4", "renders/after.mp4", 24), &after).ok());
  CHECK(farm.WaitForJob(after.job_id()).state() == v1::JOB_STATE_SUCCEEDED);
}

namespace {

// A tmpfs mounted over `path` for the test's lifetime (needs root or CAP_SYS_ADMIN).
class TmpfsMount {
 public:
  TmpfsMount(const fs::path& path, const std::string& size) : path_(path) {
    fs::create_directories(path);
    mounted_ = testing::Run("mount -t tmpfs -o size=" + size + " tmpfs " + path.string() +
                            " 2>/dev/null") == 0;
  }
  ~TmpfsMount() {
    if (mounted_) testing::Run("umount -l " + path_.string());
  }
  bool mounted() const { return mounted_; }
  bool Remount(const std::string& mode) {
    return testing::Run("mount -o remount," + mode + " " + path_.string()) == 0;
  }

 private:
  fs::path path_;
  bool mounted_ = false;
};

}  // namespace

// What the Storage fake cannot show (tests/publish_test.cc drives full disks and failed
// publishing steps with it): a real kernel's ENOSPC on an output folder on another file
// system than the scratch (published as a copy), EROFS where folders and files are
// made, and the server's retries of both across real processes.
TEST_CASE("a full disk or a read-only storage root: retryable I/O, no partial output",
          "[integration][security][resources]") {
  testing::TempDir dir;
  TmpfsMount root(dir.path() / "farm/storage", "32m");
  if (!root.mounted()) {
    WARN("cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): not checked");
    return;
  }
  TmpfsMount full(dir.path() / "farm/storage/full", "64k");
  REQUIRE(full.mounted());
  Farm farm(dir.path() / "farm");
  const fs::path s = farm.storage();
  testing::MakeTestClip(s / "plates/a.mp4", 320, 180, 48);
  farm.StartWorker("w1");
  farm.WaitForWorkers(1);

  // Full: the chunks fit, the assembled movie does not.
  v1::JobSpec spec = UpscaleSpec("plates/a.mp4", "full/a.mp4", 24);
  spec.set_max_attempts(2);
  v1::SubmitJobResponse a;
  REQUIRE(farm.Submit(spec, &a).ok());
  v1::Job ja = farm.WaitForJob(a.job_id());
  CHECK(ja.state() == v1::JOB_STATE_FAILED);
  INFO("error: " << ja.error());
  CHECK(ja.error().find("No space left") != std::string::npos);
  CHECK(ja.tasks(ja.tasks_size() - 1).attempts() == 2);  // retried: I/O, not bad input
  CHECK(fs::is_empty(s / "full"));                       // not even a temporary file

  // Read-only storage root: every task fails to write, and is retried.
  REQUIRE(root.Remount("ro"));
  spec = UpscaleSpec("plates/a.mp4", "renders/b.mp4", 24);
  spec.set_max_attempts(2);
  v1::SubmitJobResponse b;
  REQUIRE(farm.Submit(spec, &b).ok());
  v1::Job jb = farm.WaitForJob(b.job_id());
  CHECK(jb.state() == v1::JOB_STATE_FAILED);
  INFO("error: " << jb.error());
  CHECK(jb.error().find("Read-only file system") != std::string::npos);
  int most_attempts = 0;
  for (const auto& t : jb.tasks()) most_attempts = std::max(most_attempts, t.attempts());
  CHECK(most_attempts == 2);  // retried: I/O, not bad input
  REQUIRE(root.Remount("rw"));
  CHECK_FALSE(fs::exists(s / "renders/b.mp4"));

  // Both processes kept serving: the same job now runs.
  REQUIRE(farm.Submit(UpscaleSpec("plates/a.mp4", "renders/c.mp4", 24), &b).ok());
  CHECK(farm.WaitForJob(b.job_id()).state() == v1::JOB_STATE_SUCCEEDED);
  CHECK(farm.Alive("server"));
  CHECK(farm.Alive("w1"));
}

TEST_CASE("a worker whose TLS handshake fails says so and backs off", "[integration][security]") {
  testing::TempDir dir;
  const Pki pki = MakePki(dir.path() / "pki");
  const Pki other = MakePki(dir.path() / "other");  // a CA the server does not know
  Farm farm(dir.path() / "farm",
            {"--tls-cert", pki.server_cert.string(), "--tls-key", pki.server_key.string(),
             "--tls-client-ca", pki.ca.string(), "--require-client-cert"});
  // A client certificate the server refuses, and a server certificate the worker does
  // not trust.
  farm.StartWorker("foreign",
                   {"--tls-ca", pki.ca.string(), "--tls-server-name", "localhost", "--tls-cert",
                    other.worker_cert.string(), "--tls-key", other.worker_key.string()});
  farm.StartWorker("distrust",
                   {"--tls-ca", other.ca.string(), "--tls-server-name", "localhost", "--tls-cert",
                    pki.worker_cert.string(), "--tls-key", pki.worker_key.string()});
  const auto failures = [&](const std::string& name) {
    const std::string log = farm.WorkerLog(name);
    size_t n = 0;
    for (size_t at = log.find("TLS handshake failed"); at != std::string::npos;
         at = log.find("TLS handshake failed", at + 1)) {
      ++n;
    }
    return n;
  };
  if (!Eventually([&] { return failures("distrust") > 0; }, 20)) {
    FAIL_CHECK("no handshake error logged:\n" << farm.WorkerLog("distrust"));
  }
  if (!Eventually([&] { return failures("foreign") > 0; }, 20)) {
    FAIL_CHECK("no handshake error logged:\n" << farm.WorkerLog("foreign"));
  }
  CHECK(farm.WorkerLog("distrust").find("--tls-ca") != std::string::npos);
  // It backs off, and repeats the same line at most every 30 s: a few lines, not one a
  // second.
  std::this_thread::sleep_for(std::chrono::seconds(8));
  CHECK(failures("distrust") <= 2);
  CHECK(failures("foreign") <= 2);
  CHECK(farm.Alive("distrust"));
}
