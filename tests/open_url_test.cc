// `reelctl open`: the monitor URL of a job.
#include <catch2/catch.hpp>

#include "cli/open_url.h"

using reelfarm::cli::MonitorJobUrl;

TEST_CASE("MonitorJobUrl takes the server's host and the monitor's port", "[unit]") {
  CHECK(MonitorJobUrl("farm01:7700", false, "", 42) == "https://farm01:7780/jobs/42");
  CHECK(MonitorJobUrl("127.0.0.1:7700", true, "", 7) == "http://127.0.0.1:7780/jobs/7");
  CHECK(MonitorJobUrl("[::1]:7700", true, "", 7) == "http://[::1]:7780/jobs/7");
  CHECK(MonitorJobUrl("a:7700,b:7700", false, "", 3) == "https://a:7780/jobs/3");
  CHECK(MonitorJobUrl("farm01", false, "", 5) == "https://farm01:7780/jobs/5");
}

TEST_CASE("MonitorJobUrl uses the monitor URL given", "[unit]") {
  CHECK(MonitorJobUrl("farm01:7700", false, "https://monitor.studio/", 9) ==
        "https://monitor.studio/jobs/9");
  CHECK(MonitorJobUrl("x:1", true, "http://127.0.0.1:45000", 12) ==
        "http://127.0.0.1:45000/jobs/12");
}
