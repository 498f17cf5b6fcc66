"""The README test (ctest readme): every fenced shell (sh, bash, console, shell), YAML and
Python block of README.md, deploy/README.md and clients/python/README.md, run in the
order the files give them, against the README's own local farm (the build's binaries),
in a temporary working folder. A block that exits non-zero fails the test, which names
the README, the line, the command, and shows the block's stdout and stderr.

Markers, in the README source, on the line before a block's fence (blank lines between
are fine); a block without one just runs:
- `<!-- readme-test: skip (REASON) -->`: not run (another host, root, a GPU, a cluster,
  minutes of benchmark); the test counts and prints them with their reasons.
- `<!-- readme-test: background -->`: a long-running server (what a reader starts in its
  own terminal). It runs in the background; the test waits until it answers the gRPC
  health check, and stops it (and what it started) at the end, or when a later
  background block starts another.
- `<!-- readme-test: file NAME -->`: a YAML block the README names as a file (a job
  file): written to NAME in the working folder, where the shell blocks after it use it.
YAML blocks without a marker are parsed (they must be valid YAML) and not run. Fenced
blocks without a language (sample output, a folder tree) are neither.

Shell blocks run with `bash -e`, one after the other in one working folder: the
environment and the current folder a block leaves are the next one's (as in one
terminal). Python blocks of a README run in one interpreter, in order (a later block
uses the names an earlier one made), with the virtualenv the main README makes
(`~/venvs/reelfarm`, the build's wheel installed in it) and the environment the shell
blocks exported.

What the test substitutes, and nothing else (PLACEHOLDERS below):
- `/srv/reelfarm` (the data folder) -> a folder under the temporary root; HOME is a
  temporary folder too (`~/venvs/...`), and PATH a fresh Debian's (python3 is Debian's);
- `build/` -> the build folder, `scripts/` and `deploy/` -> the checkout's,
  `--model-path models` -> the checkout's models/ (ESRGAN packages fetched by
  scripts/fetch-models.sh, as scripts/test.sh does before ctest);
- port 7700 -> a free local port (`--listen` and `--metrics-listen 127.0.0.1:0` added
  to a background server, whose defaults are 127.0.0.1:7700 and :9770); CI runs tests
  side by side;
- `render07` (a worker's name) -> `local-2`, a worker of the local farm;
- the README's example inputs are made before the first block, small: plates/sh010.mp4
  (200 frames), plates/sh010.mov (24), plates/sh030.mp4 (48), plates/sh020/sh020.####.exr
  (frames 1001-1096), all ffmpeg `testsrc2` at 64x36 (EXR 32x18); and the .tgz the
  Learned upscalers block imports "copied in by hand" from models/.packages.
"""
import dataclasses
import functools
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest
import yaml

REPO = pathlib.Path(os.environ.get("REELFARM_SOURCE_DIR",
                                   pathlib.Path(__file__).resolve().parents[1]))
BUILD = pathlib.Path(os.environ.get("REELFARM_BUILD_DIR", REPO / "build"))
READMES = ("README.md", "deploy/README.md", "clients/python/README.md")
SHELL = {"sh", "bash", "console", "shell"}
YAML = {"yaml", "yml"}
PYTHON = {"python", "py"}
MARKER = re.compile(r"^\s*<!--\s*readme-test:\s*([a-z-]+)\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(\s*)```([\w+-]*)\s*$")
BLOCK_TIMEOUT_S = 180


@dataclasses.dataclass
class Block:
    readme: str
    line: int  # README line of the block's first line of code (1-based)
    lang: str
    text: str
    marker: str = ""  # skip, background, file, or "" (run)
    arg: str = ""  # the skip's reason, the file's name

    @property
    def where(self):
        return f"{self.readme}:{self.line}"


def extract(readme):
    """Every fenced block of `readme` with a language, with the marker before it."""
    lines = (REPO / readme).read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang = len(m.group(1)), m.group(2).lower()
        j = i + 1
        while j < len(lines) and not re.match(r"^\s*```\s*$", lines[j]):
            j += 1
        body = "\n".join(line[indent:] if not line[:indent].strip() else line.lstrip()
                         for line in lines[i + 1:j]) + "\n"
        marker, arg = "", ""
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        mm = MARKER.match(lines[k]) if k >= 0 else None
        if mm:
            marker, arg = mm.group(1), mm.group(2).strip()
            if marker == "skip":
                arg = arg[1:-1] if arg.startswith("(") and arg.endswith(")") else arg
        if lang:
            blocks.append(Block(readme, i + 2, lang, body, marker, arg))
        i = j + 1
    return blocks


def all_blocks():
    return [b for r in READMES for b in extract(r)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- placeholders ----

@dataclasses.dataclass
class Context:
    root: pathlib.Path  # temporary root
    work: pathlib.Path  # the working folder the blocks start in
    port: int

    @property
    def data(self):
        return self.root / "srv/reelfarm"

    @property
    def storage(self):
        return self.data / "storage"


def substitute(block, ctx):
    """The block's text with the placeholders of the module docstring replaced."""
    text = block.text
    text = text.replace("/srv/reelfarm", str(ctx.data))
    text = re.sub(r"(?<![\w./-])build/", f"{BUILD}/", text)
    text = re.sub(r"(?<![\w./-])(scripts|deploy)/", rf"{REPO}/\1/", text)
    text = re.sub(r"--model-path models(?![\w/.-])", f"--model-path {REPO}/models", text)
    text = text.replace("127.0.0.1:7700", f"127.0.0.1:{ctx.port}")
    text = re.sub(r"\brender07\b", "local-2", text)
    if block.marker == "background":
        text = re.sub(r"(/reelfarm-server)(?=\s)",
                      rf"\1 --listen 127.0.0.1:{ctx.port} --metrics-listen 127.0.0.1:0", text)
    return text


def command_at(block, line):
    """The README line where the command holding README line `line` starts, and its text
    as the README writes it (continuation lines joined)."""
    lines = block.text.splitlines()
    start = 0
    for n in range(len(lines)):
        if n == 0 or not lines[n - 1].rstrip().endswith("\\"):
            start = n
        if block.line + n >= line:
            break
    end = start
    while end < len(lines) - 1 and lines[end].rstrip().endswith("\\"):
        end += 1
    text = " ".join(x.rstrip().rstrip("\\").strip() for x in lines[start:end + 1])
    return block.line + start, text


def console_to_script(text):
    """A console block's commands: the `$ ` lines and their continuations."""
    out, cont = [], False
    for line in text.splitlines():
        if line.startswith("$ ") or cont:
            out.append(line[2:] if line.startswith("$ ") and not cont else line)
            cont = line.rstrip().endswith("\\")
        else:
            out.append("")  # output: keeps the line numbers
    return "\n".join(out) + "\n"


def make_inputs(ctx):
    """The README's example inputs: small testsrc2 clips under the storage root."""
    plates = ctx.storage / "plates"
    (plates / "sh020").mkdir(parents=True)

    def ffmpeg(*args):
        subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, timeout=120)

    src = ["-f", "lavfi", "-i", "testsrc2=s=64x36:r=24"]
    ffmpeg(*src, "-frames:v", "200", "-pix_fmt", "yuv420p", str(plates / "sh010.mp4"))
    ffmpeg(*src, "-frames:v", "24", "-pix_fmt", "yuv420p", str(plates / "sh010.mov"))
    ffmpeg(*src, "-frames:v", "48", "-pix_fmt", "yuv420p", str(plates / "sh030.mp4"))
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=32x18:r=24", "-frames:v", "96", "-start_number",
           "1001", "-c:v", "exr", "-pix_fmt", "gbrpf32le", str(plates / "sh020/sh020.%04d.exr"))


# ---- running ----

class Runner:
    def __init__(self, ctx):
        self.ctx = ctx
        home = ctx.root / "home"
        home.mkdir()
        self.env = {"HOME": str(home), "USER": os.environ.get("USER", "root"),
                    "LANG": "C.UTF-8", "TERM": "dumb",
                    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TMPDIR": str(ctx.root / "tmp")}
        (ctx.root / "tmp").mkdir()
        self.cwd = str(ctx.work)
        self.background = []  # (block, Popen, log path)
        self.n = 0

    def stop_background(self):
        for _, proc, _ in self.background:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _, proc, _ in self.background:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.background = []

    def script(self, block, text):
        """A bash script running `text` (README line numbers kept in its messages)."""
        self.n += 1
        state = self.ctx.root / f"state{self.n}"
        # Line 1 sets the shell up, line 2 is the first line of the block.
        where = block.readme
        path = self.ctx.root / f"block{self.n}.sh"
        path.write_text(
            f"set -eE; cd {json.dumps(self.cwd)}; "
            f"trap 'rc=$?; echo \"readme-test: {where} line $((LINENO + {block.line - 2})): "
            f"exit status $rc: $BASH_COMMAND\" >&2' ERR; "
            f"trap 'env -0 > {state}.env; pwd > {state}.cwd' EXIT\n" + text)
        return path, state

    def run_shell(self, block):
        text = substitute(block, self.ctx)
        if block.lang == "console":
            text = console_to_script(text)
        # A model package "copied in by hand": from the cache scripts/fetch-models.sh
        # fills (checked there against its SHA-512), when the block names one.
        for tgz in set(re.findall(r"(?<![\w/.-])([\w.-]+\.tgz)\b", text)):
            cached = REPO / "models/.packages" / tgz
            if cached.exists() and not (pathlib.Path(self.cwd) / tgz).exists():
                shutil.copy(cached, self.cwd)
        path, state = self.script(block, text)
        if block.marker == "background":
            log = self.ctx.root / f"background{self.n}.log"
            self.stop_background()
            proc = subprocess.Popen(["bash", str(path)], cwd=self.cwd, env=self.env,
                                    stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                                    start_new_session=True)
            self.background.append((block, proc, log))
            self.wait_serving(block, proc, log)
            return f"started in the background (pid {proc.pid}), serving"
        try:
            out = subprocess.run(["bash", str(path)], cwd=self.cwd, env=self.env,
                                 capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"{block.where}: the block ran past {BLOCK_TIMEOUT_S} s\n"
                        f"--- stdout\n{e.stdout}\n--- stderr\n{e.stderr}{self.server_logs()}")
        if out.returncode != 0:
            failed = re.findall(r"readme-test: \S+ line (\d+): exit status (\d+)", out.stderr)
            what = f"exit status {out.returncode}"
            if failed:
                line, command = command_at(block, int(failed[-1][0]))
                what = (f"{block.readme} line {line}: `{command}` exited with status "
                        f"{failed[-1][1]}")
            pytest.fail(f"{block.where} ({block.lang} block) failed: {what}\n"
                        f"--- the block as run\n{text}--- stdout\n{out.stdout}\n"
                        f"--- stderr\n{out.stderr}{self.server_logs()}", pytrace=False)
        self.env = dict(kv.split("=", 1) for kv in
                        pathlib.Path(f"{state}.env").read_text().split("\0") if "=" in kv)
        for k in ("SHLVL", "_", "OLDPWD", "PWD"):
            self.env.pop(k, None)
        self.cwd = pathlib.Path(f"{state}.cwd").read_text().strip()
        return out.stdout

    def wait_serving(self, block, proc, log):
        deadline = time.time() + 90
        reelctl = str(BUILD / "cli/reelctl")
        while time.time() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"{block.where}: the background block exited with status "
                            f"{proc.returncode}\n--- its output\n{log.read_text()}",
                            pytrace=False)
            hc = subprocess.run([reelctl, "--server", f"127.0.0.1:{self.ctx.port}", "--insecure",
                                 "health"], capture_output=True, text=True, timeout=30)
            if hc.returncode == 0:
                return
            time.sleep(0.5)
        pytest.fail(f"{block.where}: the background server does not answer its health "
                    f"check after 90 s\n--- its output\n{log.read_text()}", pytrace=False)

    def server_logs(self):
        out = ""
        for block, _, log in self.background:
            tail = log.read_text(errors="replace").splitlines()[-20:]
            out += f"\n--- last lines of the background block {block.where}\n" + "\n".join(tail)
        return out

    def run_python(self, blocks):
        """One README's Python blocks in one interpreter: the README's venv's python."""
        python = pathlib.Path(self.env["HOME"]) / "venvs/reelfarm/bin/python"
        if not python.exists():
            pytest.fail(f"{blocks[0].where}: no {python}: the main README's Python SDK block "
                        "makes it before the SDK README's blocks run", pytrace=False)
        driver = self.ctx.root / f"python{self.n}.py"
        self.n += 1
        payload = [{"where": b.where, "file": b.readme,
                    "code": "\n" * (b.line - 1) + b.text} for b in blocks]
        driver.write_text(
            "import json, sys, traceback\n"
            f"blocks = json.loads({json.dumps(json.dumps(payload))})\n"
            "ns = {'__name__': '__main__'}\n"
            "for b in blocks:\n"
            "    print('readme-test: running ' + b['where'], file=sys.stderr, flush=True)\n"
            "    try:\n"
            "        exec(compile(b['code'], b['file'], 'exec'), ns)\n"
            "    except BaseException:\n"
            "        traceback.print_exc()\n"
            "        print('readme-test: failed ' + b['where'], file=sys.stderr)\n"
            "        sys.exit(1)\n"
            "    sys.stdout.flush()\n"
            "import reelfarm\n"
            "print('readme-test: reelfarm from ' + reelfarm.__file__, file=sys.stderr)\n")
        out = subprocess.run([str(python), str(driver)], cwd=self.cwd, env=self.env,
                             capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
        if out.returncode != 0:
            failed = re.findall(r"readme-test: failed (.*)", out.stderr)
            pytest.fail(f"{failed[-1] if failed else blocks[0].where} (python block) failed, "
                        f"exit status {out.returncode}\n--- stdout\n{out.stdout}\n"
                        f"--- stderr\n{out.stderr}{self.server_logs()}", pytrace=False)
        origin = re.search(r"readme-test: reelfarm from (.*)", out.stderr).group(1)
        assert origin.startswith(str(python.parents[1])), (
            f"the SDK was imported from {origin}, not from the README's venv")
        return out.stdout


# ---- the tests ----

def test_markers_are_known_and_explained():
    blocks = all_blocks()
    for readme in READMES:
        for n, line in enumerate((REPO / readme).read_text().splitlines(), 1):
            if re.search(r"<!--\s*readme-test", line):
                assert MARKER.match(line), f"{readme}:{n}: not a marker this test knows: {line}"
    for b in blocks:
        assert b.marker in ("", "skip", "background", "file"), f"{b.where}: marker {b.marker}"
        if b.marker == "skip":
            assert b.arg, f"{b.where}: a skip marker without its reason"
        if b.marker == "file":
            assert b.lang in YAML and re.fullmatch(r"[\w.-]+", b.arg), b.where
        if b.marker == "background":
            assert b.lang in SHELL, b.where
    assert {b.readme for b in blocks if b.lang in SHELL | YAML | PYTHON} >= {
        "README.md", "clients/python/README.md"}


def test_every_yaml_block_parses():
    for b in all_blocks():
        if b.lang in YAML:
            try:
                yaml.safe_load(b.text)
            except yaml.YAMLError as e:
                pytest.fail(f"{b.where}: YAML block does not parse: {e}")


def logical_commands(text):
    """The block's commands, continuation lines joined, comments and `a ; b` split."""
    joined = re.sub(r"\\\n", " ", text)
    for line in joined.splitlines():
        line = re.sub(r"\s#.*$", "", line).strip()
        if line and not line.startswith("#"):
            yield from (part.split() for part in re.split(r"\s*(?:;|&&|\|\|)\s*", line) if part)


@functools.lru_cache(maxsize=None)
def help_flags(argv):
    out = subprocess.run(list(argv) + ["--help"], capture_output=True, text=True, timeout=30)
    return set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", out.stdout + out.stderr))


def test_skipped_blocks_use_flags_the_binaries_define():
    """A skipped block is not run, so its reelfarm-server, reelfarm-worker and reelctl
    command lines are checked against the binaries' --help instead."""
    binaries = {"reelfarm-server": BUILD / "server/reelfarm-server",
                "reelfarm-worker": BUILD / "worker/reelfarm-worker",
                "reelctl": BUILD / "cli/reelctl"}
    checked = 0
    for b in all_blocks():
        if b.marker != "skip" or b.lang not in SHELL:
            continue
        for words in logical_commands(b.text):
            words = [w for w in words if not re.fullmatch(r"[A-Z_]+=.*", w)]  # VAR=value
            name = pathlib.Path(words[0]).name if words else ""
            if name not in binaries:
                continue
            argv = (str(binaries[name]),)
            if name == "reelctl":  # the subcommand's help, and the global flags
                subs = tuple(w for w in words[1:3] if not w.startswith("-"))
                known = help_flags(argv) | help_flags(argv + subs[:2]) | help_flags(argv + subs[:1])
            else:
                known = help_flags(argv)
            for w in words[1:]:
                flag = w.split("=", 1)[0]
                if flag.startswith("--"):
                    assert flag in known, (f"{b.where}: `{' '.join(words)}` uses {flag}, "
                                           f"which `{name} --help` does not list")
                    checked += 1
    assert checked > 10, f"only {checked} flags checked in skipped blocks"


def test_readme_blocks_run_in_order_against_a_local_farm():
    keep = os.environ.get("REELFARM_KEEP_TEST_DIRS") == "1"
    root = pathlib.Path(tempfile.mkdtemp(prefix="reelfarm-readme-"))
    ctx = Context(root, root / "work", free_port())
    ctx.work.mkdir()
    make_inputs(ctx)
    runner = Runner(ctx)
    report, started = [], time.time()
    try:
        blocks = all_blocks()
        i = 0
        while i < len(blocks):
            b = blocks[i]
            t0 = time.time()
            if b.marker == "skip":
                report.append(f"SKIP {b.where} {b.lang}: {b.arg}")
            elif b.lang in YAML:
                if b.marker == "file":
                    (pathlib.Path(runner.cwd) / b.arg).write_text(b.text)
                    report.append(f"FILE {b.where} yaml -> {b.arg}")
                else:
                    report.append(f"PARSED {b.where} yaml (not a file the README names)")
            elif b.lang in SHELL:
                runner.run_shell(b)
                report.append(f"RAN  {b.where} {b.lang} ({time.time() - t0:.1f} s)"
                              + (" in the background" if b.marker == "background" else ""))
            elif b.lang in PYTHON:
                group = [b]
                while (i + 1 < len(blocks) and blocks[i + 1].readme == b.readme and
                       blocks[i + 1].lang in PYTHON and blocks[i + 1].marker != "skip"):
                    i += 1
                    group.append(blocks[i])
                runner.run_python(group)
                report.append(f"RAN  {', '.join(g.where for g in group)} python "
                              f"({time.time() - t0:.1f} s)")
            else:
                report.append(f"NOT RUN {b.where} {b.lang}: not a shell, YAML or Python block")
            i += 1
        # What the README's commands say they make, made by the farm.
        for out in ("renders/sh010_x2.mp4", "renders/sh010_x2.mp4.json", "renders/sh010_x2.mov",
                    "renders/sh010_x4.mov", "renders/sh020/sh020_x2.1096.png",
                    "gen/sh010_take008.0047.png", "gen/wedge/wedge_take016.mov",
                    "gen/look_take001.mov", "renders/look_x2.mov", "renders/sh030_x4.mp4",
                    "renders/sh010_sdk_x2.mp4", "gen/sh020_take006.0000.png"):
            assert (ctx.storage / out).exists(), f"{out} is not under the storage root"
    finally:
        runner.stop_background()
        ran = sum(r.startswith("RAN") for r in report)
        skipped = [r for r in report if r.startswith("SKIP")]
        print(f"\nREADME test: {ran} blocks run, {len(skipped)} skipped, "
              f"{time.time() - started:.0f} s; working folder {ctx.root}"
              + ("" if keep else " (removed)"))
        print("\n".join(report))
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
