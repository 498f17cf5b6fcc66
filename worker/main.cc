// reelfarm-worker: leases tasks from a reelfarm-server, runs the media + model
// pipeline, publishes results to the shared storage root.
#include "worker/worker_main.h"

int main(int argc, char** argv) { return reelfarm::worker::RunWorkerMain(argc, argv); }
