// Real PostgreSQL servers for tests, started with tests/pg_server.sh (initdb + pg_ctl
// into a folder under /tmp, a free loopback port, as the `postgres` user when run as
// root). ctest starts one shared server per run (fixture `postgres`, state folder in
// REELFARM_TEST_PG_STATE); a test binary run by hand starts its own on first use.
#pragma once

#include <filesystem>
#include <string>

#include "tests/testing/fixtures.h"

namespace reelfarm::testing {

// A private server, for tests that stop and start it. Stopped (data removed) on
// destruction. Fails the test if it cannot start.
class PostgresServer {
 public:
  PostgresServer();
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // postgres://reelfarm@127.0.0.1:PORT/postgres (superuser, trust on loopback).
  const std::string& url() const { return url_; }
  // pg_ctl stop (fast) / start again on the same port with the same data.
  void Pause();
  void Resume();

 private:
  TempDir state_;
  std::string url_;
};

// The URL of the run's shared server (the fixture's, or one started now).
std::string SharedPostgresUrl();

// Creates a new empty database on the server at `server_url` and returns its URL.
std::string NewPostgresDatabase(const std::string& server_url);

// Runs `sql` on the database at `url`; returns the first column of the first row of
// the last result ("" if none). Fails the test on an error.
std::string PostgresQuery(const std::string& url, const std::string& sql);

}  // namespace reelfarm::testing
