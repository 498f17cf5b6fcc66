"""reelfarm: the Python SDK for pipeline TDs.

    import reelfarm
    farm = reelfarm.Client()    # $REELFARM_SERVER, $REELFARM_TOKEN, $REELFARM_INSECURE=1
    job = farm.submit_upscale("plates/sh010.mp4", "renders/sh010_x2.mp4", scale=2)
    job = job.wait(on_progress=lambda j: print(j.frames_done, "/", j.frames_total))
    print(job.state, job.output)
"""

from reelfarm.client import Client, Job, Task
from reelfarm.errors import (AlreadyExists, FailedPrecondition, InvalidSpec, JobFailed,
                             NotFound, PermissionDenied, QueueFull, ReelfarmError,
                             Unauthenticated, Unavailable, Unimplemented)

__all__ = [
    "Client", "Job", "Task", "ReelfarmError", "InvalidSpec", "NotFound", "AlreadyExists",
    "PermissionDenied", "FailedPrecondition", "QueueFull", "Unavailable", "Unimplemented",
    "Unauthenticated", "JobFailed",
]
