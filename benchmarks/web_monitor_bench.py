#!/usr/bin/env python3
"""The monitor under load: a real reelfarm-server (--web-listen) holding 10,000 jobs, with
100 browsers' event streams (/events) open, and the jobs page loaded over and over.

Prints one JSON object: the page times (first page, a deep page, a name filter, a sort
over every job; median and p95 of N loads, ms), the server's CPU (cores busy, from
/proc/PID/stat) while the 100 streams sit open and while pages load, the time until an
event (a pause of one job) reached all 100 streams, and the server's resident memory.

    python3 benchmarks/web_monitor_bench.py [--build build] [--jobs 10000] [--clients 100]
                                            [--out FILE]
"""
import argparse
import json
import os
import pathlib
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_mib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0


def wait_file(path, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.1)
    raise RuntimeError(f"no {path}")


class Stream(threading.Thread):
    """One browser's /events: reads the stream and notes when each job's event came."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        self.seen = {}  # job id -> arrival time
        self.ok = False
        self.lock = threading.Lock()

    def run(self):
        buf = b""
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            now = time.time()
            buf += data
            if not self.ok and b"200 OK" in buf:
                self.ok = True
            while b"\n\n" in buf:
                event, buf = buf.split(b"\n\n", 1)
                for line in event.split(b"\n"):
                    if line.startswith(b"data: "):
                        try:
                            j = json.loads(line[6:])
                        except ValueError:
                            continue
                        with self.lock:
                            self.seen.setdefault((j["id"], j["state"]), now)


def load(url, reps):
    times = []
    size = 0
    for _ in range(reps):
        t = time.perf_counter()
        with urllib.request.urlopen(url) as r:
            body = r.read()
        times.append((time.perf_counter() - t) * 1000)
        size = len(body)
    times.sort()
    return {"median_ms": round(statistics.median(times), 2),
            "p95_ms": round(times[min(len(times) - 1, int(len(times) * 0.95))], 2),
            "bytes": size, "loads": reps}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(REPO / "build"))
    ap.add_argument("--jobs", type=int, default=10000)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--out")
    a = ap.parse_args()
    build = pathlib.Path(a.build)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="web-bench-"))
    server = subprocess.Popen(
        [str(build / "server/reelfarm-server"), "--insecure", "--no-auth", "--listen",
         "127.0.0.1:0", "--port-file", str(tmp / "port"), "--metrics-listen", "",
         "--web-listen", "127.0.0.1:0", "--web-port-file", str(tmp / "web.port"),
         "--web-threads", str(a.clients + 28), "--data-dir", str(tmp / "data"),
         "--model-path", str(REPO / "models"), "--log-level", "warn"],
        stdout=open(tmp / "server.log", "w"), stderr=subprocess.STDOUT)
    try:
        port = int(wait_file(tmp / "port"))
        web = int(wait_file(tmp / "web.port"))
        base = f"http://127.0.0.1:{web}"
        reelctl = [str(build / "cli/reelctl"), "--server", f"127.0.0.1:{port}", "--insecure"]
        # 10,000 generate jobs of one take each, over 10 projects, from 4 job files at once.
        t0 = time.time()
        procs = []
        per = (a.jobs + 3) // 4
        for part in range(4):
            jobs = [{"name": f"bench{i:05d}", "project": f"show{i % 10}", "priority": i % 100,
                     "generate": {"model": "shapes_t2v", "prompt": "red circle moving right",
                                  "seeds": [i], "steps": 2, "width": 32, "height": 32,
                                  "frames": 2, "output": f"gen/b{i:05d}.mp4"}}
                    for i in range(part * per, min(a.jobs, (part + 1) * per))]
            f = tmp / f"jobs{part}.json"
            f.write_text(json.dumps({"jobs": jobs}))
            procs.append(subprocess.Popen(reelctl + ["submit", "-f", str(f)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        for p in procs:
            _, err = p.communicate()
            if p.returncode != 0:
                raise RuntimeError(f"submit failed: {err.decode()[-2000:]}")
        submit_s = time.time() - t0

        pages = {}
        pages["jobs_first_page_no_streams"] = load(base + "/jobs", a.reps)

        streams = [Stream(web) for _ in range(a.clients)]
        for s in streams:
            s.start()
        time.sleep(3)  # the streams settle; the poller lists the active jobs
        open_ok = sum(s.ok for s in streams)
        c0, t0 = cpu_seconds(server.pid), time.time()
        time.sleep(10)
        idle_cores = (cpu_seconds(server.pid) - c0) / (time.time() - t0)

        c0, t0 = cpu_seconds(server.pid), time.time()
        pages["jobs_first_page"] = load(base + "/jobs", a.reps)
        pages["jobs_page_100"] = load(base + "/jobs?page=100", a.reps)
        pages["jobs_name_filter"] = load(base + "/jobs?name=bench0999", a.reps)
        pages["jobs_sorted_by_priority"] = load(base + "/jobs?sort=priority", max(3, a.reps // 4))
        pages["jobs_state_filter_project"] = load(base + "/jobs?state=queued&project=show3",
                                                  a.reps)
        load_cores = (cpu_seconds(server.pid) - c0) / (time.time() - t0)

        # An event's fan-out: pause the newest job and wait for every stream to show it.
        listed = json.loads(subprocess.run(reelctl + ["--json", "list", "--limit", "1"],
                                           capture_output=True, text=True, check=True).stdout)
        jobs = listed.get("jobs", listed) if isinstance(listed, dict) else listed
        job_id = int(jobs[0]["id"])
        t_pause = time.time()
        subprocess.run(reelctl + ["pause", str(job_id)], check=True, capture_output=True)
        deadline = time.time() + 30
        arrivals = []
        while time.time() < deadline:
            arrivals = [s.seen.get((job_id, "paused")) for s in streams]
            if all(arrivals):
                break
            time.sleep(0.05)
        got = [x - t_pause for x in arrivals if x]
        result = {
            "benchmark": "web_monitor",
            "jobs": a.jobs,
            "submit_seconds": round(submit_s, 1),
            "sse_clients": a.clients,
            "sse_clients_open": open_ok,
            "pages": pages,
            "server_cpu_cores_idle_with_streams": round(idle_cores, 3),
            "server_cpu_cores_while_loading_pages": round(load_cores, 3),
            "event_to_all_streams_ms": {
                "received": len(got),
                "median": round(statistics.median(got) * 1000, 1) if got else None,
                "max": round(max(got) * 1000, 1) if got else None},
            "server_rss_mib": round(rss_mib(server.pid), 1),
            "cores": os.cpu_count(),
        }
        text = json.dumps(result, indent=2)
        print(text)
        if a.out:
            pathlib.Path(a.out).write_text(text + "\n")
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
