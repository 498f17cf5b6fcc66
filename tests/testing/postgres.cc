#include "tests/testing/postgres.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <fstream>
#include <memory>
#include <mutex>

namespace reelfarm::testing {
namespace fs = std::filesystem;

namespace {

std::string Script() { return std::string(REELFARM_SOURCE_DIR) + "/tests/pg_server.sh"; }

std::string ReadUrl(const fs::path& state) {
  std::ifstream in(state / "url");
  std::string url;
  std::getline(in, url);
  return url;
}

// Starts a server with its state in `state`; "" if it failed.
std::string StartServer(const fs::path& state) {
  if (Run("bash '" + Script() + "' start '" + state.string() + "'") != 0) return "";
  return ReadUrl(state);
}

struct PgConnFinish {
  void operator()(PGconn* c) const { PQfinish(c); }
};

}  // namespace

PostgresServer::PostgresServer() {
  url_ = StartServer(state_.path());
  INFO("tests/pg_server.sh start failed; see its output above");
  REQUIRE(!url_.empty());
}

PostgresServer::~PostgresServer() {
  Run("bash '" + Script() + "' stop '" + state_.path().string() + "'");
}

void PostgresServer::Pause() {
  REQUIRE(Run("bash '" + Script() + "' pause '" + state_.path().string() + "'") == 0);
}

void PostgresServer::Resume() {
  REQUIRE(Run("bash '" + Script() + "' resume '" + state_.path().string() + "'") == 0);
}

std::string SharedPostgresUrl() {
  if (const char* state = std::getenv("REELFARM_TEST_PG_STATE")) {
    const std::string url = ReadUrl(state);
    INFO("REELFARM_TEST_PG_STATE=" << state << " holds no url: did the fixture start?");
    REQUIRE(!url.empty());
    return url;
  }
  // Started once per process, stopped when the process exits.
  static std::mutex mu;
  static std::unique_ptr<PostgresServer> server;
  std::lock_guard<std::mutex> lock(mu);
  if (!server) server = std::make_unique<PostgresServer>();
  return server->url();
}

std::string PostgresQuery(const std::string& url, const std::string& sql) {
  std::unique_ptr<PGconn, PgConnFinish> conn(PQconnectdb(url.c_str()));
  INFO(url << ": " << PQerrorMessage(conn.get()));
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  INFO(sql);
  REQUIRE(PQsendQuery(conn.get(), sql.c_str()) == 1);
  std::string first;
  bool ok = true;
  std::string error;
  while (PGresult* r = PQgetResult(conn.get())) {
    const ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK) {
      first = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) ? PQgetvalue(r, 0, 0) : "";
    } else if (st != PGRES_COMMAND_OK) {
      ok = false;
      error = PQresultErrorMessage(r);
    }
    PQclear(r);
  }
  INFO(error);
  REQUIRE(ok);
  return first;
}

std::string NewPostgresDatabase(const std::string& server_url) {
  static std::atomic<int> counter{0};
  const std::string name = "rf_" + std::to_string(getpid()) + "_" + std::to_string(++counter);
  PostgresQuery(server_url, "CREATE DATABASE " + name);
  const auto slash = server_url.rfind('/');
  return server_url.substr(0, slash + 1) + name;
}

}  // namespace reelfarm::testing
