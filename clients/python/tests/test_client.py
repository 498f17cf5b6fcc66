"""The SDK against a real server with a local worker: submit, watch, wait, outputs,
and a typed exception for each status class."""
import json
import os
import subprocess
import sys

import pytest

import reelfarm


def frame_count(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                          "-show_entries", "stream=nb_read_frames,width,height", "-of",
                          "json", str(path)], check=True, capture_output=True, text=True)
    s = json.loads(out.stdout)["streams"][0]
    return int(s["nb_read_frames"]), s["width"], s["height"]


def test_submit_watch_and_output(farm):
    client = reelfarm.Client(farm.address, insecure=True)
    src = farm.clip("plates/a.mp4", frames=48)
    job = client.submit_upscale(src, "renders/a_x2.mp4", scale=2, chunk_frames=16)
    assert job.id > 0
    assert job.tasks_total == 4  # 3 chunks + assembly
    events = list(client.watch(job.id))
    assert events, "watch yields progress events"
    assert events[-1].state == "succeeded"
    assert events[-1].frames_done == 48
    # Progress only moves forward.
    done = [e.frames_done for e in events]
    assert done == sorted(done)
    assert frame_count(farm.storage / "renders/a_x2.mp4") == (48, 320, 180)
    assert (farm.storage / "renders/a_x2.mp4.json").exists()
    assert client.get(job.id).output == "renders/a_x2.mp4"
    assert any(j.id == job.id for j in client.list(states=["succeeded"]))


def test_wait_with_progress_callback_and_dict_spec(farm, tmp_path):
    client = reelfarm.Client(farm.address, insecure=True)
    src = farm.clip("plates/b.mp4", frames=24)
    seen = []
    job = client.submit({"name": "b", "upscale": {"input": src, "output": "renders/b.mp4",
                                                  "model": "bicubic", "scale": 2,
                                                  "chunk_frames": 12}})
    final = job.wait(timeout=120, on_progress=seen.append)
    assert final.succeeded
    assert final.frames_done == 24
    assert seen and seen[-1].state == "succeeded"
    # The same spec from a JSON file, with a request id: submitting twice makes one job.
    spec_file = tmp_path / "job.json"
    spec_file.write_text(json.dumps({"requestId": "py-b-1", "upscale": {
        "input": src, "output": "renders/b2.mp4", "model": "bicubic", "scale": 2}}))
    first = client.submit(spec_file)
    again = client.submit(spec_file)
    assert again.id == first.id
    assert first.wait(timeout=120, raise_on_failure=True).succeeded


def test_invalid_spec(farm):
    client = reelfarm.Client(farm.address, insecure=True)
    src = farm.clip("plates/c.mp4", frames=4)
    with pytest.raises(reelfarm.InvalidSpec) as err:
        client.submit_upscale(src, "renders/c.mp4", scale=5)
    assert "upscale.scale is 5" in err.value.message
    with pytest.raises(reelfarm.InvalidSpec):
        client.submit({"upscale": {"input": src, "bogus_field": 1}})


def test_not_found(farm):
    client = reelfarm.Client(farm.address, insecure=True)
    with pytest.raises(reelfarm.NotFound) as err:
        client.submit_upscale("plates/missing.mp4", "renders/x.mp4")
    assert "upscale.input 'plates/missing.mp4'" in err.value.message
    with pytest.raises(reelfarm.NotFound):
        client.get(987654)


def test_permission_denied(farm):
    client = reelfarm.Client(farm.address, insecure=True)
    with pytest.raises(reelfarm.PermissionDenied) as err:
        client.submit_upscale("/etc/passwd", "renders/x.mp4")
    assert "upscale.input" in err.value.message


def test_queue_full(small_queue_farm):
    client = reelfarm.Client(small_queue_farm.address, insecure=True)
    src = small_queue_farm.clip("plates/q.mp4", frames=2)
    client.submit_upscale(src, "renders/q1.mp4", chunk_frames=1)  # 3 tasks: at the limit
    with pytest.raises(reelfarm.QueueFull) as err:
        client.submit_upscale(src, "renders/q2.mp4", chunk_frames=1)
    assert "queue limit of 3" in err.value.message


def test_unavailable():
    client = reelfarm.Client("127.0.0.1:1", timeout=2, insecure=True)
    with pytest.raises(reelfarm.Unavailable):
        client.list()


def test_pip_install(tmp_path):
    """`pip install clients/python` builds the stubs and installs an importable package
    (from a copy, so that the source tree stays clean; no network: no build isolation)."""
    import pathlib
    import shutil
    import sys
    repo = pathlib.Path(__file__).resolve().parents[3]
    shutil.copytree(repo / "proto", tmp_path / "src/proto")
    shutil.copy(repo / "CMakeLists.txt", tmp_path / "src")  # the project's version
    shutil.copytree(repo / "clients/python", tmp_path / "src/clients/python",
                    ignore=shutil.ignore_patterns("tests", "build", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages",
                    str(tmp_path / "venv")], check=True)
    py = str(tmp_path / "venv/bin/python")
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps",
                    str(tmp_path / "src/clients/python")], check=True, cwd=tmp_path)
    out = subprocess.run([py, "-c", "import reelfarm, reelfarm.v1.jobs_pb2 as p;"
                          "print(reelfarm.__file__, p.JobSpec.DESCRIPTOR.full_name)"],
                         check=True, capture_output=True, text=True, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin"})
    assert "site-packages" in out.stdout
    assert "reelfarm.v1.JobSpec" in out.stdout


def test_follows_the_leader_a_standby_names(farm):
    """A standby answers every call UNAVAILABLE with the leader's address in the
    `reelfarm-leader` trailing metadata (server/ha_server.h); the client moves there."""
    from concurrent import futures

    import grpc

    class Standby(grpc.GenericRpcHandler):
        def service(self, details):
            def refuse(request, context):
                context.set_trailing_metadata((("reelfarm-leader", farm.address),))
                context.abort(grpc.StatusCode.UNAVAILABLE,
                              f"this reelfarm-server is a standby; the leader is '{farm.address}'")
            return grpc.unary_unary_rpc_method_handler(refuse)

    standby = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    standby.add_generic_rpc_handlers((Standby(),))
    port = standby.add_insecure_port("127.0.0.1:0")
    standby.start()
    try:
        client = reelfarm.Client(f"127.0.0.1:{port}", insecure=True)
        assert isinstance(client.workers(), list)
        assert client.address == farm.address
        # A dead server first in the list is passed over.
        listed = reelfarm.Client(["127.0.0.1:1", farm.address], insecure=True)
        assert isinstance(listed.list(), list)
        assert listed.address == farm.address
        # A watch opened on the standby goes on with the leader.
        job = client.submit_upscale(farm.clip("plates/ha.mp4", frames=12), "renders/ha.mp4")
        watching = reelfarm.Client(f"127.0.0.1:{port}", insecure=True)
        assert list(watching.watch(job.id))[-1].state == "succeeded"
        assert watching.address == farm.address
    finally:
        standby.stop(0)
    with pytest.raises(ValueError, match="empty address"):
        reelfarm.Client("127.0.0.1:1,,127.0.0.1:2")


def test_webhooks_are_called_when_the_job_ends_and_checked_at_submit(farm):
    import http.server
    import threading
    bodies = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = reelfarm.Client(farm.address, insecure=True)
        src = farm.clip("plates/w.mp4", frames=8)
        url = "http://127.0.0.1:%d/hook" % server.server_address[1]
        job = client.submit_upscale(src, "renders/w.mp4", webhooks=[url])
        assert job.wait(timeout=120).succeeded
        for _ in range(100):
            if bodies:
                break
            threading.Event().wait(0.1)
        assert len(bodies) == 1
        assert bodies[0]["job_id"] == job.id
        assert bodies[0]["state"] == "SUCCEEDED"
        assert bodies[0]["outputs"] == ["renders/w.mp4"]
        with pytest.raises(reelfarm.InvalidSpec) as err:
            client.submit_upscale(src, "renders/w2.mp4", webhooks=["ftp://example.com/x"])
        assert "webhooks[0]" in err.value.message
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(not os.environ.get("REELFARM_CONNECT_ENOENT_SHIM"),
                    reason="needs tests/testing/connect_enoent.cc built (ctest sets it)")
def test_calls_again_when_grpc_took_a_connect_for_failed(farm):
    """gRPC 1.51 now and then takes a TCP connect in progress for failed, errno 2
    (grpc/grpc#35064): the shim makes every process's first connect read so. A bare
    grpcio call fails; the SDK's calls, watch and watch_async call again and succeed."""
    src = farm.clip("plates/enoent.mp4", frames=12)
    env = dict(os.environ, LD_PRELOAD=os.environ["REELFARM_CONNECT_ENOENT_SHIM"],
               CONNECT_ENOENT="1")
    bare = subprocess.run(
        [sys.executable, "-c", "import grpc, sys; ch = grpc.insecure_channel(sys.argv[1]); "
         "ch.unary_unary('/grpc.health.v1.Health/Check')(b'', timeout=10)", farm.address],
        env=env, capture_output=True, text=True)
    assert bare.returncode != 0
    assert "No such file or directory" in bare.stderr

    def sdk(code, *args):
        """`code` in a process of its own: its first connect is the one that fails."""
        run = subprocess.run(
            [sys.executable, "-c", "import sys, reelfarm\n"
             "c = reelfarm.Client(sys.argv[1], insecure=True)\n" + code, farm.address, *args],
            env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        return run.stdout.strip()

    job_id = sdk("print(c.submit_upscale(sys.argv[2], 'renders/enoent.mp4').id)", src)
    assert sdk("print(list(c.watch(int(sys.argv[2])))[-1].state)", job_id) == "succeeded"
    assert sdk("import asyncio\n"
               "async def last():\n"
               "    return [j async for j in c.watch_async(int(sys.argv[2]))][-1].state\n"
               "print(asyncio.run(last()))", job_id) == "succeeded"
    assert sdk("print([j.id for j in c.list()])", job_id) != "[]"
