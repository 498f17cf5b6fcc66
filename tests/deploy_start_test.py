"""deploy/ run for real (ctest deploy_start): the Kubernetes example overlay as
`kubectl kustomize` renders it, and the systemd units, started with exactly the command
lines and environment they give, until a worker has run a job submitted with reelctl.

What the test changes, and nothing else (deploy/README.md says the same):
- the binaries: the build's reelfarm-server, reelfarm-worker and reelctl stand in for
  the images' and units' programs;
- absolute paths: moved under a temporary root; for Kubernetes through the container's
  volume mounts (a Secret's files under one folder per Secret, a claim's volume shared by
  every container that mounts it, everything else in the container's own image folder);
- ports 7700, 9770, 9771, 9772 become free local ports, and the host names
  (0.0.0.0, reelfarm-server, farm-host, ...) 127.0.0.1;
- `--device cuda:N` becomes `--device cpu` (CI has no GPU);
- the image's (or the host's) /opt/reelfarm/models holds models/shapes_t2v only.
The Secrets and files the operator creates are made as deploy/README.md's tables say.
"""
import json
import os
import pathlib
import re
import shlex
import signal
import socket
import subprocess
import time

import pytest
import yaml

REPO = pathlib.Path(os.environ.get("REELFARM_SOURCE_DIR",
                                   pathlib.Path(__file__).resolve().parents[1]))
DEPLOY = REPO / "deploy"
BUILD = REPO / "build"
BINARIES = {
    "reelfarm-server": os.environ.get("REELFARM_SERVER_BIN", str(BUILD / "server/reelfarm-server")),
    "reelfarm-worker": os.environ.get("REELFARM_WORKER_BIN", str(BUILD / "worker/reelfarm-worker")),
    "reelctl": os.environ.get("REELFARM_REELCTL_BIN", str(BUILD / "cli/reelctl")),
}
PORTS = (7700, 9770, 9771, 9772)
HOSTS = r"0\.0\.0\.0|127\.0\.0\.1|localhost|reelfarm-server|farm-host"
ADMIN_TOKEN = "deploy-test-admin-0123456789abcdef0123"
WORKER_TOKEN = "deploy-test-worker-0123456789abcdef012"
POD_NAME = "reelfarm-worker-5d9c7b-x2x7q"


# ---- what the operator creates, as deploy/README.md's tables say ----

def readme_table(heading):
    """The rows of the first table after `heading` in deploy/README.md, as lists of cells."""
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    at = text.index(heading)
    rows = []
    for line in text[at:].splitlines()[1:]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not set("".join(cells)) <= set("-: "):
                rows.append(cells)
        elif rows:
            break
    return rows[1:]  # without the header


def code_spans(cell):
    return re.findall(r"`([^`]+)`", cell)


def make_pki(d):
    """A CA, a server certificate for every name the files use, a worker client one."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "server.ext").write_text(
        "subjectAltName=DNS:reelfarm-server,DNS:farm-host,DNS:localhost,IP:127.0.0.1\n"
        "extendedKeyUsage=serverAuth\n")
    (d / "worker.ext").write_text("extendedKeyUsage=clientAuth\n")
    ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    script = f"""set -e; cd {shlex.quote(str(d))}
openssl req -x509 {ec} -keyout ca.key -out ca.crt -days 2 -subj /CN=deploy-test-ca
openssl req {ec} -keyout server.key -out server.csr -subj /CN=reelfarm-server
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile server.ext
openssl req {ec} -keyout worker.key -out worker.csr -subj /CN=render01
openssl x509 -req -in worker.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out worker.crt -days 2 -extfile worker.ext
"""
    subprocess.run(["bash", "-c", script], check=True, capture_output=True)
    return {name: (d / name).read_bytes() for name in
            ("ca.crt", "server.crt", "server.key", "worker.crt", "worker.key")}


def tokens_yaml():
    return (f"tokens:\n  - {{name: ops, role: admin, token: {ADMIN_TOKEN}}}\n"
            f"  - {{name: render-nodes, role: worker, token: {WORKER_TOKEN}}}\n").encode()


def operator_secrets(pki):
    """The contents of each Secret the README lists, by what its row says it holds."""
    known = {
        ("reelfarm-server-tls", "tls.crt"): pki["server.crt"],
        ("reelfarm-server-tls", "tls.key"): pki["server.key"],
        ("reelfarm-server-tls", "ca.crt"): pki["ca.crt"],
        ("reelfarm-worker-tls", "tls.crt"): pki["worker.crt"],
        ("reelfarm-worker-tls", "tls.key"): pki["worker.key"],
        ("reelfarm-worker-tls", "ca.crt"): pki["ca.crt"],
        ("reelfarm-tokens", "tokens.yaml"): tokens_yaml(),
        ("reelfarm-worker-token", "token"): WORKER_TOKEN.encode() + b"\n",
    }
    secrets = {}
    for row in readme_table("### Secrets you create"):
        name = code_spans(row[0])[0]
        for key in code_spans(row[1]):
            assert (name, key) in known, (
                f"deploy/README.md lists Secret {name} key {key}; this test does not know "
                "what to put there: add it to operator_secrets()")
            secrets.setdefault(name, {})[key] = known[(name, key)]
    return secrets


def operator_files(pki, env_example):
    """The bare-metal files the README lists, by path."""
    known = {
        "/etc/default/reelfarm": env_example,
        "/etc/reelfarm/tls/ca.crt": pki["ca.crt"],
        "/etc/reelfarm/tls/server.crt": pki["server.crt"],
        "/etc/reelfarm/tls/server.key": pki["server.key"],
        "/etc/reelfarm/tls/worker.crt": pki["worker.crt"],
        "/etc/reelfarm/tls/worker.key": pki["worker.key"],
        "/etc/reelfarm/tokens.yaml": tokens_yaml(),
        "/etc/reelfarm/worker.token": WORKER_TOKEN.encode() + b"\n",
        "/opt/reelfarm/models": "models",
        "/mnt/farm": "folder",
    }
    files = {}
    for row in readme_table("The files the units read"):
        for path in code_spans(row[0]):
            assert path in known, (f"deploy/README.md lists {path}; this test does not know "
                                   "what to put there: add it to operator_files()")
            files[path] = known[path]
    return files


# ---- remapping ----

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Remap:
    def __init__(self):
        self.ports = {p: free_port() for p in PORTS}

    def addresses(self, word):
        def sub(m):
            port = int(m.group(2))
            return f"127.0.0.1:{self.ports[port]}" if port in self.ports else m.group(0)
        return re.sub(rf"\b({HOSTS}):(\d+)\b", sub, word)

    def binary(self, word):
        name = pathlib.PurePosixPath(word).name
        assert name in BINARIES, f"{word!r} is not one of the reelfarm binaries"
        return BINARIES[name]

    def command(self, argv, path):
        """argv with the binary, absolute paths (through `path`), addresses, device."""
        out = [self.binary(argv[0])]
        for i, word in enumerate(argv[1:], 1):
            if argv[i - 1] == "--device" and word.startswith("cuda"):
                out.append("cpu")
                continue
            if word.startswith("--device=cuda"):
                out.append("--device=cpu")
                continue
            if word.startswith("--") and "=" not in word:
                out.append(word)
                continue
            flag, eq, value = word.partition("=") if word.startswith("--") else ("", "", word)
            if value.startswith("/"):
                value = str(path(value))
            out.append(flag + eq + self.addresses(value))
        return out


def models_into(folder):
    """The image's (or host's) model folder, with the shipped demo package only."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "shapes_t2v").symlink_to(REPO / "models/shapes_t2v")


# ---- processes ----

class Procs:
    def __init__(self, root):
        self.root = root
        self.running = []

    def start(self, name, argv, env):
        log = open(self.root / f"{name}.log", "w")
        print(f"{name}: {shlex.join(argv)}")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                cwd=self.root)
        self.running.append((name, proc, log))
        return proc

    def logs(self):
        out = []
        for name, _, _ in self.running:
            text = (self.root / f"{name}.log").read_text(errors="replace")
            out.append(f"--- {name}.log (last lines)\n" + "\n".join(text.splitlines()[-25:]))
        return "\n".join(out)

    def check_alive(self):
        for name, proc, _ in self.running:
            assert proc.poll() is None, f"{name} exited with {proc.returncode}\n{self.logs()}"

    def stop(self):
        for _, proc, _ in reversed(self.running):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc, log in reversed(self.running):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def wait_for(what, check, procs, timeout=180):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        procs.check_alive()
        last = check()
        if last.returncode == 0:
            return
        time.sleep(0.5)
    pytest.fail(f"{what}: not passing after {timeout} s: {last.stdout}{last.stderr}\n"
                f"{procs.logs()}")


def run(argv, env=None, timeout=60):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env=env or {"PATH": "/usr/bin:/bin"})


def submit_and_check(remap, ca, storage, procs, worker_name):
    """A generate job (the model must be on both --model-path) with reelctl over TLS with
    a token; it must succeed on the worker started from the deploy files."""
    client = [BINARIES["reelctl"], "--server", f"127.0.0.1:{remap.ports[7700]}",
              "--tls-ca", str(ca), "--token", ADMIN_TOKEN]
    sub = run(client + ["submit", "generate", "--model", "shapes_t2v", "--prompt",
                        "red circle moving right", "--seeds", "3", "--steps", "4", "--size",
                        "64x64", "--frames", "4", "--output", "gen/deploy.####.png",
                        "--name", "deploy", "--watch"], timeout=300)
    assert sub.returncode == 0, f"{sub.stdout}{sub.stderr}\n{procs.logs()}"
    frames = sorted(p.name for p in (storage / "gen").glob("deploy_take001.*.png"))
    assert frames == [f"deploy_take001.{n:04d}.png" for n in range(4)], frames
    side = json.loads((storage / "gen/deploy_take001.####.png.json").read_text())
    assert side["take"]["seed"] == 3
    workers = run(client + ["--json", "workers"])
    assert workers.returncode == 0, workers.stderr
    listed = json.loads(workers.stdout)
    listed = listed.get("workers", listed) if isinstance(listed, dict) else listed
    names = [w["name"] for w in listed]
    assert names == [worker_name], names
    assert "shapes_t2v" in listed[0]["models"]


# ---- Kubernetes ----

def dockerfile_entrypoint(image):
    """ENTRYPOINT of the Dockerfile that builds `image` (…/reelfarm/<name>:<tag>)."""
    name = image.rsplit("/", 1)[-1].split(":")[0]
    text = (DEPLOY / "docker" / f"{name}.Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    m = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", text, flags=re.M)
    assert m, f"{name}.Dockerfile has no exec-form ENTRYPOINT"
    return json.loads(m.group(1)), text


def expand_k8s(word, env):
    """Kubernetes' $(VAR) expansion in command and args; an undefined one is left as is,
    which is a mistake in the manifest."""
    def sub(m):
        assert m.group(1) in env, f"{word!r} uses $({m.group(1)}), which the container lacks"
        return env[m.group(1)]
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", sub, word)


class Container:
    def __init__(self, deployment, objects, root):
        self.deployment = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        assert len(pod["containers"]) == 1
        self.spec = pod["containers"][0]
        self.volumes = {v["name"]: v for v in pod.get("volumes", [])}
        self.root = root
        self.objects = objects
        self.secret_keys_read = {}  # secret -> keys

    def volume_dir(self, volume):
        v = self.volumes[volume]
        if "secret" in v:
            return self.root / "secrets" / v["secret"]["secretName"]
        if "persistentVolumeClaim" in v:
            return self.root / "claims" / v["persistentVolumeClaim"]["claimName"]
        if "configMap" in v:
            return self.root / "configmaps" / v["configMap"]["name"]
        return self.root / self.deployment / "volumes" / volume

    def path(self, p):
        """Where the container's path `p` lies in the test root, noting the Secret keys read."""
        best = None
        for m in self.spec.get("volumeMounts", []):
            mp = m["mountPath"].rstrip("/")
            if (p == mp or p.startswith(mp + "/")) and (best is None or len(mp) > len(best[0])):
                best = (mp, m["name"])
        if best is None:
            return self.root / self.deployment / "image" / p.lstrip("/")
        rel = p[len(best[0]):].lstrip("/")
        v = self.volumes[best[1]]
        if "secret" in v and rel:
            self.secret_keys_read.setdefault(v["secret"]["secretName"], set()).add(rel)
        return self.volume_dir(best[1]) / rel

    def env(self):
        env = {}
        for source in self.spec.get("envFrom", []):
            if "configMapRef" in source:
                cm = self.objects[("ConfigMap", source["configMapRef"]["name"])]
                env.update(cm.get("data", {}))
            else:
                pytest.fail(f"{self.deployment}: envFrom {source} not handled by the test")
        for e in self.spec.get("env", []):
            if "value" in e:
                env[e["name"]] = expand_k8s(e["value"], env)
            elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
                env[e["name"]] = POD_NAME
            elif "configMapKeyRef" in e.get("valueFrom", {}):
                ref = e["valueFrom"]["configMapKeyRef"]
                env[e["name"]] = self.objects[("ConfigMap", ref["name"])]["data"][ref["key"]]
            else:
                pytest.fail(f"{self.deployment}: env {e} not handled by the test")
        return env

    def argv(self):
        env = self.env()
        entrypoint, _ = dockerfile_entrypoint(self.spec["image"])
        command = self.spec.get("command", entrypoint)
        args = self.spec.get("args", [])
        return [expand_k8s(w, env) for w in command + args], env


def kustomize_major():
    out = subprocess.run(["kubectl", "version", "--client"], capture_output=True, text=True)
    m = re.search(r"^Kustomize Version: v(\d+)", out.stdout, re.M)
    return int(m.group(1)) if m else 0


@pytest.fixture(scope="module")
def rendered():
    # The overlay uses `labels:` and `patches:` (kubectl >= 1.21, kustomize v4, as
    # deploy/README.md says); Debian 12's kubernetes-client 1.20 cannot render it.
    if kustomize_major() < 4:
        pytest.skip("kubectl's kustomize is older than v4 (Debian 12's kubernetes-client "
                    "1.20); the overlay needs kubectl >= 1.21")
    out = subprocess.run(["kubectl", "kustomize", str(DEPLOY / "k8s/overlays/example")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # No deprecation warnings (commonLabels, patchesStrategicMerge, ...).
    assert out.stderr.strip() == "", out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_kustomize_renders_without_warnings_and_every_key_read_is_defined(rendered, tmp_path):
    listed = {name: set(keys) for name, keys in
              ((code_spans(r[0])[0], code_spans(r[1])) for r in
               readme_table("### Secrets you create"))}
    deployments = [d for (kind, _), d in rendered.items() if kind == "Deployment"]
    assert sorted(d["metadata"]["name"] for d in deployments) == ["reelfarm-server",
                                                                  "reelfarm-worker"]
    remap = Remap()
    for dep in deployments:
        c = Container(dep, rendered, tmp_path)
        argv, _ = c.argv()  # fails on a $(VAR) the container does not define
        probes = [c.spec.get(p, {}).get("exec", {}).get("command", [])
                  for p in ("readinessProbe", "livenessProbe", "startupProbe")]
        for words in [argv] + [p for p in probes if p]:
            remap.command(words, c.path)
        for vol in c.volumes.values():
            if "secret" in vol:
                name = vol["secret"]["secretName"]
                defined = rendered.get(("Secret", name))
                keys = c.secret_keys_read.get(name, set())
                assert keys, f"{c.deployment} mounts Secret {name} and reads nothing from it"
                if defined:
                    have = set(defined.get("data", {})) | set(defined.get("stringData", {}))
                    assert keys <= have, f"Secret {name} lacks {keys - have}"
                else:
                    assert name in listed, (f"{c.deployment} reads Secret {name}, neither "
                                            "defined nor listed in deploy/README.md")
                    assert keys <= listed[name], (
                        f"{c.deployment} reads {sorted(keys)} of Secret {name}; "
                        f"deploy/README.md lists {sorted(listed[name])}")
            if "configMap" in vol:
                assert ("ConfigMap", vol["configMap"]["name"]) in rendered
        for source in c.spec.get("envFrom", []):
            assert ("ConfigMap", source["configMapRef"]["name"]) in rendered
    # Every listed Secret is one a container reads.
    read = set()
    for dep in deployments:
        read |= {v["secret"]["secretName"] for v in
                 dep["spec"]["template"]["spec"].get("volumes", []) if "secret" in v}
    assert set(listed) == read, (set(listed), read)


def test_kubernetes_server_and_worker_run_a_job(rendered, tmp_path):
    root = tmp_path / "k8s"
    root.mkdir()
    remap = Remap()
    secrets = operator_secrets(make_pki(tmp_path / "pki"))
    for name, keys in secrets.items():
        for key, data in keys.items():
            (root / "secrets" / name).mkdir(parents=True, exist_ok=True)
            (root / "secrets" / name / key).write_bytes(data)
    procs = Procs(root)
    try:
        started = {}
        for name in ("reelfarm-server", "reelfarm-worker"):
            c = Container(rendered[("Deployment", name)], rendered, root)
            argv, env = c.argv()
            for m in c.spec.get("volumeMounts", []):
                if "persistentVolumeClaim" in c.volumes[m["name"]]:
                    c.volume_dir(m["name"]).mkdir(parents=True, exist_ok=True)
            # The image's model folder, at the path the command gives and the Dockerfile fills.
            _, dockerfile = dockerfile_entrypoint(c.spec["image"])
            copied = re.findall(r"^COPY models/ (\S+)", dockerfile, flags=re.M)
            model_paths = [argv[i + 1] for i, w in enumerate(argv[:-1]) if w == "--model-path"]
            assert model_paths, f"{name}: no --model-path on its command line {argv}"
            for p in model_paths:
                assert p.rstrip("/") in [x.rstrip("/") for x in copied], (
                    f"{name}: --model-path {p} is not where its image copies models/")
                models_into(c.path(p))
            cmd = remap.command(argv, c.path)
            proc_env = {"PATH": "/usr/bin:/bin", **env}
            started[name] = (c, cmd, proc_env)
            procs.start(name, cmd, proc_env)
            probes = [c.spec[p] for p in ("startupProbe", "readinessProbe", "livenessProbe")
                      if p in c.spec]
            assert probes, f"{name} has no probes"
            for probe in probes:
                if "exec" in probe:
                    words = remap.command(probe["exec"]["command"], c.path)
                    wait_for(f"{name} exec probe", lambda: run(words), procs)
                elif "grpc" in probe:
                    port = remap.ports[probe["grpc"]["port"]]
                    # What the kubelet does: grpc.health.v1 Check, plaintext, service "".
                    words = [BINARIES["reelctl"], "--server", f"127.0.0.1:{port}", "--insecure",
                             "health"]
                    wait_for(f"{name} grpc probe", lambda: run(words), procs)
                else:
                    pytest.fail(f"{name}: probe {probe} is neither exec nor grpc")
        server = started["reelfarm-server"][0]
        submit_and_check(remap, root / "secrets/reelfarm-server-tls/ca.crt",
                         server.volume_dir("storage"), procs, POD_NAME)
        procs.check_alive()
    finally:
        procs.stop()


# ---- systemd ----

def read_unit(path):
    """[Service] settings of a unit file: continuation lines joined, lists for repeats."""
    text = re.sub(r"\\\n", " ", path.read_text())
    section, out = None, {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault((section, key.strip()), []).append(value.strip())
    return out


def read_env_file(text):
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip().strip('"')
    return env


def expand_systemd(line, env, instance):
    """ExecStart as systemd reads it: specifiers, then words; `$VAR` alone splits at
    whitespace, `${VAR}` stays one word."""
    line = (line.replace("%i", instance).replace("%H", socket.gethostname())
            .replace("%%", "%"))
    words = []
    for word in shlex.split(line):
        m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if m:
            words += env.get(m.group(1), "").split()
            continue
        def sub(m):
            name = m.group(1)
            assert name in env, f"ExecStart uses ${{{name}}}, which no EnvironmentFile sets"
            return env[name]
        words.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", sub, word))
    return words


def test_systemd_units_run_a_job(tmp_path):
    root = tmp_path / "host"
    root.mkdir()
    remap = Remap()
    pki = make_pki(tmp_path / "pki")
    files = operator_files(pki, (DEPLOY / "systemd/reelfarm.env.example").read_bytes())
    for path, data in files.items():
        target = root / path.lstrip("/")
        if data == "models":
            models_into(target)
        elif data == "folder":
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    host = lambda p: root / p.lstrip("/")  # noqa: E731
    procs = Procs(root)
    try:
        for unit_name, instance, health in (("reelfarm-server.service", "", None),
                                            ("reelfarm-worker@.service", "0", 9772)):
            unit = read_unit(DEPLOY / "systemd" / unit_name)
            env = {}
            for ref in unit.get(("Service", "EnvironmentFile"), []):
                optional = ref.startswith("-")
                ref = ref.lstrip("-").replace("%i", instance)
                f = host(ref)
                assert optional or f.exists(), f"{unit_name}: EnvironmentFile {ref} missing"
                if f.exists():
                    env.update(read_env_file(f.read_text()))
            for state in unit.get(("Service", "StateDirectory"), []):
                host("/var/lib/" + state).mkdir(parents=True, exist_ok=True)
            [exec_start] = unit[("Service", "ExecStart")]
            argv = expand_systemd(exec_start, env, instance)
            # Every path the command reads is one the README lists (or the state folder).
            managed = [f"/var/lib/{s}" for s in unit.get(("Service", "StateDirectory"), [])]
            for word in argv[1:]:
                value = word.partition("=")[2] if word.startswith("--") else word
                if value.startswith("/"):
                    assert any(value == p or value.startswith(p + "/")
                               for p in list(files) + managed), (
                        f"{unit_name} reads {value}, which deploy/README.md does not list")
            assert "--model-path" in argv, f"{unit_name}: no --model-path"
            cmd = remap.command(argv, host)
            procs.start(unit_name.split("@")[0].split(".")[0], cmd,
                        {"PATH": "/usr/bin:/bin", **env})
            ca = host("/etc/reelfarm/tls/ca.crt")
            if health is None:
                words = [BINARIES["reelctl"], "--server", f"127.0.0.1:{remap.ports[7700]}",
                         "--tls-ca", str(ca), "health"]
            else:
                words = [BINARIES["reelctl"], "--server", f"127.0.0.1:{remap.ports[health]}",
                         "--insecure", "health"]
            wait_for(f"{unit_name} health", lambda: run(words), procs)
        submit_and_check(remap, host("/etc/reelfarm/tls/ca.crt"), host("/mnt/farm"), procs,
                         f"{socket.gethostname()}-gpu0")
        procs.check_alive()
    finally:
        procs.stop()
