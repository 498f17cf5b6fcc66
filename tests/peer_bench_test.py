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


def summaries(submit_p50=0.7, submit_p99=0.95, restart=0.5, dispatch1=17000.0, wall=0.93,
              u=0.31, v=0.39, memory=1.11):
    """A queue and an ffmpeg summary line as peer_bench.py prints them."""
    queue = {"summary": "queue",
             "submit_p50_ms": {"ratio": submit_p50}, "submit_p99_ms": {"ratio": submit_p99},
             "restart": {"ratio": restart}, "dispatch1": {"reelfarm": dispatch1, "ratio": 29.0}}
    ffmpeg = {"summary": "ffmpeg", "seconds": {"ratio": wall}, "peak_bytes": {"ratio": memory},
              "psnr_y_db": {"difference_db": 0.35}, "psnr_u_db": {"difference_db": u},
              "psnr_v_db": {"difference_db": v}}
    return queue, ffmpeg


def test_targets_all_met_when_every_point_is():
    out = peer_bench.targets(*summaries())
    assert out["all_met"] is True
    assert sorted(out["points"]) == sorted([
        "submit_p50_ms_ratio", "submit_p99_ms_ratio", "restart_ratio", "dispatch1_tasks_per_s",
        "filter_wall_ratio", "chroma_psnr_difference_db", "peak_memory_ratio"])
    assert out["points"]["chroma_psnr_difference_db"]["value"] == 0.31  # the worse of U, V
    # A ratio of exactly 1 is "at or below".
    assert peer_bench.targets(*summaries(submit_p99=1.0, wall=1.0))["all_met"] is True


def test_targets_name_the_point_that_is_missed():
    for change, point in [({"submit_p99": 1.04}, "submit_p99_ms_ratio"),
                          ({"submit_p50": 1.2}, "submit_p50_ms_ratio"),
                          ({"restart": 1.01}, "restart_ratio"),
                          ({"dispatch1": 9999.0}, "dispatch1_tasks_per_s"),
                          ({"wall": 1.03}, "filter_wall_ratio"),
                          ({"v": -1.2}, "chroma_psnr_difference_db"),
                          ({"memory": 1.21}, "peak_memory_ratio")]:
        out = peer_bench.targets(*summaries(**change))
        assert out["all_met"] is False, change
        assert [k for k, p in out["points"].items() if not p["met"]] == [point], change
    # Chroma better than ffmpeg's by any amount, or worse by less than 1 dB, is within.
    assert peer_bench.targets(*summaries(u=-0.9, v=2.5))["all_met"] is True


def test_targets_of_a_run_that_measured_only_part_are_not_met():
    queue, _ = summaries()
    out = peer_bench.targets(queue, None)
    assert out["all_met"] is False
    assert {k for k, p in out["points"].items() if not p["met"]} == {
        "filter_wall_ratio", "chroma_psnr_difference_db", "peak_memory_ratio"}
    assert out["points"]["filter_wall_ratio"]["value"] is None
