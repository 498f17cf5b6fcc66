// A real farm for integration tests: reelfarm-server and reelfarm-worker processes on
// loopback, driven over gRPC. Every process is stopped (and reaped) on destruction;
// their logs are kept in the farm's folder and printed when a test asks.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/grpc_security.h"
#include "reelfarm/v1/jobs.grpc.pb.h"

namespace reelfarm::testing {

class Farm {
 public:
  // `dir` holds the state, the storage root (dir/storage) and the logs. `server_args`
  // are added to the server's command line; "--metrics" among them turns on the
  // server's /metrics on a free port (server_metrics_port()). The server runs with
  // --insecure unless `server_args` give --tls-cert, and with --no-auth unless they
  // give --tokens-file; the farm's own client (jobs()) then needs SetClient(). No
  // monitor (--web-listen "") unless `server_args` give --web-listen.
  explicit Farm(std::filesystem::path dir, std::vector<std::string> server_args = {});
  ~Farm();
  Farm(const Farm&) = delete;
  Farm& operator=(const Farm&) = delete;

  const std::filesystem::path& storage() const { return storage_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  v1::JobService::Stub& jobs() { return *stub_; }
  // The TLS options and token of the farm's own client (jobs(), Submit, Get...).
  void SetClient(const common::ClientTlsOptions& tls, const std::string& token);
  // "reelctl --server ADDRESS --insecure" (plaintext farms), for shell commands.
  std::string Reelctl() const;

  // Every worker serves /metrics and a gRPC health service on loopback ports of its own.
  // It connects with --insecure unless `extra_args` give --tls-ca or --insecure. With
  // --frame-delay-ms N among them it is reelfarm-test-worker, whose model takes N ms
  // more per frame (and per model at warm-up).
  void StartWorker(const std::string& name, std::vector<std::string> extra_args = {});
  // Ports of the server's and a worker's /metrics, and a worker's health service (the
  // worker is waited for up to 30 s to write its port file).
  int server_metrics_port() const { return metrics_port_; }  // 0 without "--metrics"
  int WorkerMetricsPort(const std::string& name) const;
  int WorkerHealthPort(const std::string& name) const;
  // GET /metrics of the process listening on `port` (curl); fails the test on error.
  static std::string Scrape(int port);
  const std::filesystem::path& dir() const { return dir_; }
  // The pid of worker `name` (started and not killed).
  pid_t WorkerPid(const std::string& name) const { return workers_.at(name); }
  // Whether the server ("server") or worker `name` is still running (not exited).
  bool Alive(const std::string& name);
  // Sends `signal`; for SIGKILL/SIGTERM also reaps the process and forgets it.
  void KillWorker(const std::string& name, int signal);
  // SIGKILLs the server, then starts it again on the same port and data folder.
  void RestartServerAfterKill();

  // Active/standby (the server args give --store postgres://...): waits until the
  // first server leads, then starts a second one on the same database. Workers started
  // afterwards are given both addresses; Get() follows the leader.
  void StartStandby();
  std::string standby_address() const { return "127.0.0.1:" + std::to_string(standby_port_); }
  // The first server's pid (-1 once stopped).
  pid_t server_pid() const { return server_pid_; }
  // Sends SIGTERM to the first server and reaps it; returns its wait status (SIGKILLed,
  // if it had not exited after `timeout`).
  int StopServer(std::chrono::seconds timeout);
  // SIGKILLs the first server (the leader) and reaps it.
  void KillLeader();
  // SIGKILLs the second server (StartStandby's; it may lead by now), then starts it again
  // on the same port.
  void RestartStandbyAfterKill();
  // Sends `signal` (SIGSTOP, SIGCONT) to the first server.
  void SignalLeader(int signal);
  // A process's log so far (to look for events).
  std::string ServerLog() const;
  std::string StandbyLog() const;
  std::string WorkerLog(const std::string& name) const;
  // Polls ListWorkers until `n` are connected; fails the test after 30 s.
  void WaitForWorkers(int n);
  // Polls GetJob until the job ends (or `timeout`); returns the last state seen.
  v1::Job WaitForJob(int64_t id, std::chrono::seconds timeout = std::chrono::seconds(180));
  grpc::Status Submit(const v1::JobSpec& spec, v1::SubmitJobResponse* resp);
  // Submits (the submit must succeed), waits for the end and requires success, dumping
  // the logs when it failed; returns the job as it ended.
  v1::Job RunToSuccess(const v1::JobSpec& spec);
  v1::Job Get(int64_t id);
  // Prints every process's log to the test output (for failures).
  void DumpLogs() const;

 private:
  pid_t Spawn(const std::vector<std::string>& argv, const std::string& log_name);
  // Starts a server writing its port to `port_file` and returns its pid and port.
  std::pair<pid_t, int> StartServerProcess(int port, const std::string& name);
  void StartServer();

  std::filesystem::path dir_, storage_;
  std::vector<std::string> server_args_;
  bool metrics_ = false;
  pid_t server_pid_ = -1;
  pid_t standby_pid_ = -1;
  int port_ = 0;
  int standby_port_ = 0;
  int metrics_port_ = 0;
  std::map<std::string, pid_t> workers_;
  std::unique_ptr<v1::JobService::Stub> stub_;
  std::unique_ptr<v1::JobService::Stub> other_stub_;  // the standby's, swapped by Get()
};

}  // namespace reelfarm::testing
