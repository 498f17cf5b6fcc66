// The monitor's static files (assets/), compiled into the binary by CMake from the plain
// files, so that the pages need nothing from outside the server.
#pragma once

namespace reelfarm::server::web {

extern const char kMonitorJs[];
extern const char kMonitorCss[];

}  // namespace reelfarm::server::web
