"""benchmarks/peer_bench.py's statistics, on made-up blocks of latencies (no farm, no
Celery): the submit comparison's ratio interval resamples each pair of blocks (block i
of both farms ran in the same minute) as one, so a drift that both farms share does not
widen it, and a difference between the farms shows in it."""

import importlib.util
import os
import random

SOURCE = os.environ.get("REELFARM_SOURCE_DIR",
                        os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
spec = importlib.util.spec_from_file_location(
    "peer_bench", os.path.join(SOURCE, "benchmarks", "peer_bench.py"))
peer_bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(peer_bench)


def blocks(seed, count=30, per_block=100, drift=None):
    """COUNT blocks of PER_BLOCK latencies around 1 ms; block i scaled by DRIFT[i]."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        scale = drift[i] if drift else 1.0
        out.append([scale * rng.lognormvariate(0, 0.3) for _ in range(per_block)])
    return out


def test_the_same_blocks_give_exactly_one():
    ours = blocks(1)
    assert peer_bench.ratio_interval(ours, ours, 0.5) == (1.0, 1.0)
    assert peer_bench.ratio_interval(ours, ours, 0.99) == (1.0, 1.0)


def test_a_farm_half_again_as_slow_gives_one_and_a_half():
    peer = blocks(2)
    ours = [[1.5 * x for x in row] for row in peer]
    lo, hi = peer_bench.ratio_interval(ours, peer, 0.99)
    assert abs(lo - 1.5) < 1e-9 and abs(hi - 1.5) < 1e-9


def test_a_drift_both_farms_share_does_not_widen_it():
    # Minutes of a slow disk: block i of both farms is up to 3x slower.
    rng = random.Random(3)
    drift = [rng.choice([1.0, 1.0, 1.0, 3.0]) for _ in range(30)]
    ours, peer = blocks(4, drift=drift), blocks(5, drift=drift)
    lo, hi = peer_bench.ratio_interval(ours, peer, 0.5)
    # Resampling the farms' blocks apart would put the slow minutes in one farm's
    # sample and not the other's: an interval of 0.7..1.4 and more.
    assert 0.9 < lo <= hi < 1.1
    unpaired = sorted(
        peer_bench.percentile([x for i in rng.choices(range(30), k=30) for x in ours[i]], 0.5) /
        peer_bench.percentile([x for i in rng.choices(range(30), k=30) for x in peer[i]], 0.5)
        for _ in range(400))
    assert unpaired[-20] - unpaired[20] > 2 * (hi - lo)


def test_a_tail_in_a_few_blocks_shows_as_a_wide_interval_around_the_ratio():
    peer = blocks(6)
    ours = blocks(7)
    for i in (3, 11, 25):  # three blocks with a slow first submit and a stall
        ours[i][0] += 4.0
        ours[i][50] += 8.0
    values_ours = [x for row in ours for x in row]
    values_peer = [x for row in peer for x in row]
    ratio = peer_bench.percentile(values_ours, 0.99) / peer_bench.percentile(values_peer, 0.99)
    lo, hi = peer_bench.ratio_interval(ours, peer, 0.99)
    assert lo <= ratio <= hi
    assert hi - lo > 0.05
    # The same seed, the same interval (a run's summary can be reproduced from its blocks).
    assert peer_bench.ratio_interval(ours, peer, 0.99) == (lo, hi)
