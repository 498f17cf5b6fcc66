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

#include "reelfarm/v1/jobs.grpc.pb.h"

namespace reelfarm::testing {

class Farm {
 public:
  // `dir` holds the state, the storage root (dir/storage) and the logs.
  explicit Farm(std::filesystem::path dir, std::vector<std::string> server_args = {});
  ~Farm();
  Farm(const Farm&) = delete;
  Farm& operator=(const Farm&) = delete;

  const std::filesystem::path& storage() const { return storage_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  v1::JobService::Stub& jobs() { return *stub_; }

  void StartWorker(const std::string& name, std::vector<std::string> extra_args = {});
  // Sends `signal`; for SIGKILL/SIGTERM also reaps the process and forgets it.
  void KillWorker(const std::string& name, int signal);
  // SIGKILLs the server, then starts it again on the same port and data folder.
  void RestartServerAfterKill();
  // The server's log so far (to look for events).
  std::string ServerLog() const;
  std::string WorkerLog(const std::string& name) const;
  // Polls ListWorkers until `n` are connected; fails the test after 30 s.
  void WaitForWorkers(int n);
  // Polls GetJob until the job ends (or `timeout`); returns the last state seen.
  v1::Job WaitForJob(int64_t id, std::chrono::seconds timeout = std::chrono::seconds(180));
  grpc::Status Submit(const v1::JobSpec& spec, v1::SubmitJobResponse* resp);
  v1::Job Get(int64_t id);
  // Prints every process's log to the test output (for failures).
  void DumpLogs() const;

 private:
  pid_t Spawn(const std::vector<std::string>& argv, const std::string& log_name);

  void StartServer();

  std::filesystem::path dir_, storage_;
  std::vector<std::string> server_args_;
  pid_t server_pid_ = -1;
  int port_ = 0;
  std::map<std::string, pid_t> workers_;
  std::unique_ptr<v1::JobService::Stub> stub_;
};

}  // namespace reelfarm::testing
