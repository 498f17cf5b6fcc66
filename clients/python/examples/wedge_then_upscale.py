#!/usr/bin/env python3
"""Run a seed wedge, then upscale the chosen take.

    wedge_then_upscale.py --model shapes --prompt "red circle moving right" --seeds 1-8
        --pick 3 --output renders/wedge/take.mp4

The upscale job depends on the wedge job and takes the chosen take as its input: the
farm starts it when the wedge succeeds. Generation jobs need a server that runs them;
one that does not answers reelfarm.Unimplemented, which this script reports.
"""
import argparse
import sys

import reelfarm


def seeds(text):
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default=None)
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--seeds", type=seeds, default=[1])
    ap.add_argument("--pick", type=int, default=None, help="seed of the take to upscale")
    ap.add_argument("--output", required=True, help="e.g. renders/wedge/take.mp4")
    args = ap.parse_args()

    farm = reelfarm.Client(args.server)
    try:
        wedge = farm.submit_generate(args.model, args.prompt, args.output, seeds=args.seeds)
    except reelfarm.Unimplemented as err:
        sys.exit(f"this farm does not run generation jobs yet: {err.message}")
    pick = args.pick if args.pick is not None else args.seeds[0]
    take = args.output.replace(".mp4", f"_take{args.seeds.index(pick) + 1:03d}.mp4")
    up = farm.submit_upscale(take, take.replace(".mp4", "_x2.mp4"), depends_on=[wedge.id])
    print(f"wedge job {wedge.id}, upscale job {up.id} (waits for it)")
    final = up.wait(on_progress=lambda j: print(f"\rupscale {j.state} {j.frames_done}", end=""))
    print(f"\n{final.state}: {final.output} {final.error}")
    sys.exit(0 if final.succeeded else 1)


if __name__ == "__main__":
    main()
