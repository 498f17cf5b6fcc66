"""reelfarm-server allocates with jemalloc, with the options server/malloc_conf.cc gives
it, and an operator's MALLOC_CONF still overrides them: what `MALLOC_CONF=stats_print:true
reelfarm-server --help` shows an operator (jemalloc prints its options at exit)."""

import os
import re
import subprocess

SERVER = os.environ["REELFARM_SERVER_BIN"]


def jemalloc_options(malloc_conf):
    """jemalloc's option lines ("name: value") printed at the server's exit, or {} when
    the server did not allocate with jemalloc (nothing printed)."""
    env = dict(os.environ, MALLOC_CONF=malloc_conf)
    env.pop("LD_PRELOAD", None)
    run = subprocess.run([SERVER, "--help"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    text = run.stdout + run.stderr
    if "___ Begin jemalloc statistics ___" not in text:
        return {}
    return dict(re.findall(r"^\s+opt\.(\w+): (\S+)", text, re.M))


def test_the_server_allocates_with_jemalloc_and_its_options():
    options = jemalloc_options("stats_print:true")
    assert options, "no jemalloc statistics: the server does not allocate with jemalloc"
    # No separate arena that returns large blocks to the kernel at once (see malloc_conf.cc).
    assert options["oversize_threshold"] == "0"
    # jemalloc's defaults otherwise: a thread cache, and decay returning memory.
    assert options["tcache"] == "true"
    assert options["dirty_decay_ms"] == "10000"


def test_an_operators_malloc_conf_overrides_the_servers():
    options = jemalloc_options("stats_print:true,oversize_threshold:16777216,dirty_decay_ms:500")
    assert options["oversize_threshold"] == "16777216"
    assert options["dirty_decay_ms"] == "500"
