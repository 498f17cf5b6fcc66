"""Fixtures: a real reelfarm server (with a local worker) started for the tests."""
import os
import pathlib
import signal
import subprocess
import time

import pytest

SERVER_BIN = os.environ.get("REELFARM_SERVER_BIN",
                            str(pathlib.Path(__file__).resolve().parents[3] /
                                "build/server/reelfarm-server"))


class Farm:
    def __init__(self, root, local_workers, extra=()):
        self.root = pathlib.Path(root)
        self.storage = self.root / "storage"
        self.storage.mkdir(parents=True, exist_ok=True)
        port_file = self.root / "port"
        self.log = open(self.root / "server.log", "w")
        self.proc = subprocess.Popen(
            [SERVER_BIN, "--data-dir", str(self.root), "--listen", "127.0.0.1:0",
             # Plaintext and no tokens unless the test gives TLS or a tokens file.
             *(() if "--tls-cert" in extra else ("--insecure",)),
             *(() if "--tokens-file" in extra else ("--no-auth",)),
             "--port-file", str(port_file), "--metrics-listen", "",
             "--local-workers", str(local_workers), "--worker-threads", "1", *extra],
            stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.05)
        self.address = "127.0.0.1:" + port_file.read_text().strip()

    def clip(self, relative, frames=48, size="160x90"):
        path = self.storage / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                        f"testsrc2=s={size}:r=24", "-frames:v", str(frames), "-c:v",
                        "libx264", "-pix_fmt", "yuv420p", str(path)], check=True)
        return relative

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    f = Farm(tmp_path_factory.mktemp("farm"), local_workers=1)
    yield f
    f.stop()


@pytest.fixture(scope="module")
def small_queue_farm(tmp_path_factory):
    """No workers and a farm-wide queue limit of 3 tasks."""
    f = Farm(tmp_path_factory.mktemp("queue"), local_workers=0,
             extra=("--max-queued-tasks", "3"))
    yield f
    f.stop()
