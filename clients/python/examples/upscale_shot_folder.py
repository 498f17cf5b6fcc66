#!/usr/bin/env python3
"""Upscale every plate of a shot folder and wait for all of them.

    upscale_shot_folder.py --storage-root /mnt/farm --shot shots/sh010 --scale 2

Paths sent to the farm are relative to the storage root; each submit carries a request
id, so running the script twice never makes duplicate jobs.
"""
import argparse
import pathlib
import sys

import reelfarm


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default=None, help="host:port (default $REELFARM_SERVER)")
    ap.add_argument("--storage-root", required=True, type=pathlib.Path)
    ap.add_argument("--shot", required=True, help="folder under the storage root")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--model", default="bicubic")
    args = ap.parse_args()

    farm = reelfarm.Client(args.server)
    shot = args.storage_root / args.shot
    plates = sorted(p for p in shot.glob("*") if p.suffix.lower() in (".mp4", ".mov", ".mkv"))
    if not plates:
        sys.exit(f"no movies in {shot}")
    jobs = []
    for plate in plates:
        rel = plate.relative_to(args.storage_root).as_posix()
        out = f"{args.shot}/up_x{args.scale}/{plate.stem}_x{args.scale}.mp4"
        try:
            job = farm.submit_upscale(rel, out, scale=args.scale, model=args.model,
                                      name=plate.stem, request_id=f"upscale:{rel}:{args.scale}")
        except reelfarm.ReelfarmError as err:
            print(f"{rel}: {err}", file=sys.stderr)
            continue
        print(f"submitted job {job.id}: {rel} -> {out}")
        jobs.append(job)
    failed = 0
    for job in jobs:
        final = job.wait(on_progress=lambda j: print(
            f"\rjob {j.id}: {j.frames_done}/{j.frames_total} frames, {j.fps:.1f} fps", end=""))
        print(f"\rjob {final.id}: {final.state} {final.output} {final.error}")
        failed += not final.succeeded
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
