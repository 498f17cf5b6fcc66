"""The wheel the build makes, installed without a checkout: into a fresh virtualenv in a
temporary folder (Debian's grpcio and protobuf through --system-site-packages, nothing
downloaded), then the quick start of clients/python/README.md, as written, run by the
venv's python against a real local farm configured from the environment as the main
README's local farm is (REELFARM_SERVER, REELFARM_INSECURE=1)."""
import json
import os
import pathlib
import re
import subprocess
import sys
import zipfile

import pytest

from conftest import Farm

REPO = pathlib.Path(__file__).resolve().parents[3]
WHEEL = pathlib.Path(os.environ.get(
    "REELFARM_WHEEL", REPO / "build/clients/python/dist/reelfarm-0.1.0-py3-none-any.whl"))


def readme_python_blocks():
    text = (REPO / "clients/python/README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A fresh venv outside the repository with the wheel installed, as the README says."""
    root = tmp_path_factory.mktemp("sdk-venv")
    assert REPO not in root.parents
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(root / "venv")],
                   check=True)
    # No --no-deps: grpcio and protobuf must be found installed (Debian's); --no-index
    # makes any download attempt fail instead.
    subprocess.run([str(root / "venv/bin/pip"), "install", "--quiet", "--no-index",
                    "--no-cache-dir", str(WHEEL)], check=True, cwd=root,
                   env={"PATH": "/usr/bin:/bin", "HOME": str(root)})
    return root


def run_in_venv(venv, code, env_extra=None):
    """The venv's python, run from a folder outside the checkout, with no PYTHONPATH."""
    work = venv / "work"
    work.mkdir(exist_ok=True)
    env = {"PATH": f"{venv}/venv/bin:/usr/bin:/bin", "HOME": str(venv)}
    env.update(env_extra or {})
    return subprocess.run([str(venv / "venv/bin/python"), "-c", code], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_wheel_holds_stubs_and_type_hints():
    assert re.fullmatch(r"reelfarm-\d+\.\d+\.\d+-py3-none-any\.whl", WHEEL.name), WHEEL.name
    names = set(zipfile.ZipFile(WHEEL).namelist())
    for want in ("reelfarm/__init__.py", "reelfarm/client.py", "reelfarm/errors.py",
                 "reelfarm/py.typed", "reelfarm/v1/__init__.py", "reelfarm/v1/jobs_pb2.py",
                 "reelfarm/v1/jobs_pb2_grpc.py", "reelfarm/v1/workers_pb2.py",
                 "reelfarm/v1/workers_pb2_grpc.py"):
        assert want in names, f"{want} missing from {WHEEL.name}: {sorted(names)}"
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(WHEEL).read(meta).decode()
    assert "Requires-Dist: grpcio" in text and "Requires-Dist: protobuf" in text


def test_installed_package_comes_from_the_venv(venv):
    out = run_in_venv(venv, "import json, pathlib, reelfarm, reelfarm.v1.jobs_pb2 as p\n"
                      "print(json.dumps({'file': reelfarm.__file__,"
                      " 'typed': (pathlib.Path(reelfarm.__file__).parent / 'py.typed').exists(),"
                      " 'spec': p.JobSpec.DESCRIPTOR.full_name}))")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    site = (venv / "venv/lib").resolve()
    assert pathlib.Path(got["file"]).resolve().is_relative_to(site), got
    assert "site-packages" in got["file"]
    assert REPO not in pathlib.Path(got["file"]).resolve().parents
    assert got["typed"] and got["spec"] == "reelfarm.v1.JobSpec"


def test_readme_quick_start_runs_as_written(venv, tmp_path_factory):
    blocks = readme_python_blocks()
    assert blocks, "clients/python/README.md has no python block"
    quick_start = blocks[0]
    assert "reelfarm.Client()" in quick_start  # configured from the environment
    farm = Farm(tmp_path_factory.mktemp("farm"), local_workers=1)
    try:
        farm.clip("plates/sh010.mp4", frames=24)
        code = (quick_start + "\nimport reelfarm as _rf, json as _js\n"
                "print('CHECK', _js.dumps({'file': _rf.__file__, 'id': job.id,"
                " 'state': job.state, 'output': job.output}))\n")
        out = run_in_venv(venv, code, {"REELFARM_SERVER": farm.address,
                                       "REELFARM_INSECURE": "1"})
        assert out.returncode == 0, out.stdout + out.stderr
        lines = out.stdout.splitlines()
        check = json.loads(next(line for line in lines if line.startswith("CHECK "))[6:])
        assert check["state"] == "succeeded"
        assert "site-packages" in check["file"] and str(venv) in check["file"]
        # What the quick start prints: progress lines, then "succeeded <output>".
        assert f"succeeded {check['output']}" in lines
        assert "24 / 24" in lines
        produced = farm.storage / check["output"]
        assert produced.exists() and (farm.storage / (check["output"] + ".json")).exists()
        probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries",
                                "stream=nb_read_frames,width,height", "-of", "json",
                                str(produced)], check=True, capture_output=True, text=True)
        stream = json.loads(probe.stdout)["streams"][0]
        assert (int(stream["nb_read_frames"]), stream["width"], stream["height"]) == (24, 320, 180)
    finally:
        farm.stop()


def test_type_hints_resolve_in_the_installed_package(venv):
    """Every public method's annotations evaluate (what a checker reading py.typed sees)."""
    code = """
import inspect, json, typing, reelfarm
hints = {}
for cls in (reelfarm.Client, reelfarm.Job, reelfarm.Task):
    for name, member in inspect.getmembers(cls):
        if name.startswith('_') and name != '__init__':
            continue
        fn = member.fget if isinstance(member, property) else member
        if callable(fn):
            hints[cls.__name__ + '.' + name] = {k: repr(v) for k, v in
                                                typing.get_type_hints(fn).items()}
print(json.dumps(hints))
"""
    out = run_in_venv(venv, code)
    assert out.returncode == 0, out.stderr
    hints = json.loads(out.stdout)
    assert "reelfarm.client.Job" in hints["Client.get"]["return"]
    assert "List[reelfarm.client.Job]" in hints["Client.wait_all"]["return"]
    assert "AsyncIterator[reelfarm.client.Job]" in hints["Client.watch_async"]["return"]
    assert "list[reelfarm.client.Task]" in hints["Job.tasks"]["return"]
    assert "dict[str, typing.Any]" in hints["Job.sidecar"]["return"]
    unannotated = [n for n, h in hints.items() if "return" not in h and n.split(".")[1] not in
                   ("__init__", "__enter__")]
    assert not unannotated, unannotated
