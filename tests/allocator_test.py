"""reelfarm-server and reelfarm-worker allocate with jemalloc, with the options their
malloc_conf.cc gives them (server/, worker/), and an operator's MALLOC_CONF still
overrides them: what `MALLOC_CONF=stats_print:true reelfarm-server --help` (or
reelfarm-worker) shows an operator (jemalloc prints its options at exit)."""

import os
import re
import subprocess

SERVER = os.environ["REELFARM_SERVER_BIN"]
WORKER = os.environ["REELFARM_WORKER_BIN"]


def jemalloc_options(program, malloc_conf):
    """jemalloc's option lines ("name: value") printed at the program's exit, or {} when
    it did not allocate with jemalloc (nothing printed)."""
    env = dict(os.environ, MALLOC_CONF=malloc_conf)
    env.pop("LD_PRELOAD", None)
    run = subprocess.run([program, "--help"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    text = run.stdout + run.stderr
    if "___ Begin jemalloc statistics ___" not in text:
        return {}
    return dict(re.findall(r"^\s+opt\.(\w+): (\S+)", text, re.M))


def test_the_server_allocates_with_jemalloc_and_its_options():
    options = jemalloc_options(SERVER, "stats_print:true")
    assert options, "no jemalloc statistics: the server does not allocate with jemalloc"
    # No separate arena that returns large blocks to the kernel at once (see malloc_conf.cc).
    assert options["oversize_threshold"] == "0"
    # jemalloc's defaults otherwise: a thread cache, decay returning memory, and arenas
    # by core.
    assert options["tcache"] == "true"
    assert options["dirty_decay_ms"] == "10000"
    assert options["narenas"] != "1"


def test_the_worker_allocates_with_jemalloc_and_one_arena():
    options = jemalloc_options(WORKER, "stats_print:true")
    assert options, "no jemalloc statistics: the worker does not allocate with jemalloc"
    assert options["oversize_threshold"] == "0"
    # One arena, so that a chunk's freed frames serve the next chunk's threads.
    assert options["narenas"] == "1"
    assert options["tcache"] == "true"
    assert options["dirty_decay_ms"] == "10000"


def test_an_operators_malloc_conf_overrides_the_programs():
    conf = "stats_print:true,oversize_threshold:16777216,dirty_decay_ms:500"
    for program in (SERVER, WORKER):
        options = jemalloc_options(program, conf)
        assert options["oversize_threshold"] == "16777216", program
        assert options["dirty_decay_ms"] == "500", program
    assert jemalloc_options(WORKER, "stats_print:true,narenas:4")["narenas"] == "4"
