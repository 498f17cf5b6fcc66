"""A Nuke-style callback: upscale the file of the selected Read node on the farm.

In Nuke's menu.py:

    import nuke_submit_selected
    nuke.menu("Nuke").addCommand("reelfarm/Upscale selected x2",
                                 lambda: nuke_submit_selected.submit_selected(nuke))

STORAGE_ROOT is where this workstation mounts the farm's storage root.
"""
import os

import reelfarm

STORAGE_ROOT = os.environ.get("REELFARM_STORAGE_ROOT", "/mnt/farm")


def submit_selected(nuke, scale=2, model="bicubic"):
    """Submits one upscale job per selected Read node; returns the jobs."""
    farm = reelfarm.Client()
    jobs = []
    for node in nuke.selectedNodes("Read"):
        path = node["file"].value()
        rel = os.path.relpath(path, STORAGE_ROOT)
        if rel.startswith(".."):
            nuke.message(f"{path} is not under the farm storage {STORAGE_ROOT}")
            continue
        out = os.path.splitext(rel)[0] + f"_x{scale}.mp4"
        try:
            job = farm.submit_upscale(rel, out, scale=scale, model=model, name=node.name(),
                                      request_id=f"nuke:{rel}:{scale}:{model}")
        except reelfarm.ReelfarmError as err:
            nuke.message(f"{node.name()}: {err.message}")
            continue
        jobs.append(job)
    if jobs:
        nuke.message("Submitted jobs " + ", ".join(str(j.id) for j in jobs))
    return jobs
