"""Client and Job: thin, typed wrappers over reelfarm's gRPC JobService."""

import json
import os
import time

import grpc
from google.protobuf import json_format

from reelfarm import errors
from reelfarm.v1 import jobs_pb2, jobs_pb2_grpc

_STATES = {
    jobs_pb2.JOB_STATE_QUEUED: "queued",
    jobs_pb2.JOB_STATE_RUNNING: "running",
    jobs_pb2.JOB_STATE_SUCCEEDED: "succeeded",
    jobs_pb2.JOB_STATE_FAILED: "failed",
    jobs_pb2.JOB_STATE_CANCELLED: "cancelled",
    jobs_pb2.JOB_STATE_PAUSED: "paused",
    jobs_pb2.JOB_STATE_WAITING: "waiting",
}
_TERMINAL = {"succeeded", "failed", "cancelled"}


class Job:
    """A snapshot of a job. ``refresh()`` and ``wait()`` return newer snapshots."""

    def __init__(self, client, proto):
        self._client = client
        self.proto = proto

    id = property(lambda self: self.proto.id)
    state = property(lambda self: _STATES.get(self.proto.state, "unknown"))
    error = property(lambda self: self.proto.error)
    output = property(lambda self: self.proto.output)
    frames_done = property(lambda self: self.proto.frames_done)
    frames_total = property(lambda self: self.proto.frames_total)
    tasks_done = property(lambda self: self.proto.tasks_done)
    tasks_total = property(lambda self: self.proto.tasks_total)
    fps = property(lambda self: self.proto.fps)
    eta_seconds = property(lambda self: self.proto.eta_seconds)
    done = property(lambda self: self.state in _TERMINAL)
    succeeded = property(lambda self: self.state == "succeeded")

    def __repr__(self):
        return (f"Job(id={self.id}, state={self.state!r}, frames={self.frames_done}/"
                f"{self.frames_total}, output={self.output!r})")

    def refresh(self):
        return self._client.get(self.id)

    def wait(self, timeout=None, on_progress=None, raise_on_failure=False):
        """Follows the job until it ends and returns the final snapshot.

        on_progress(job) is called for each progress event. Raises TimeoutError after
        ``timeout`` seconds, and JobFailed when raise_on_failure and the job did not
        succeed.
        """
        last = self
        for job in self._client.watch(self.id, timeout=timeout):
            last = job
            if on_progress:
                on_progress(job)
        if not last.done:
            last = last.refresh()
        if not last.done:
            raise TimeoutError(f"job {self.id} still {last.state} after {timeout} s")
        if raise_on_failure and not last.succeeded:
            raise errors.JobFailed(grpc.StatusCode.ABORTED,
                                   f"job {last.id} {last.state}: {last.error}")
        return last


class Client:
    """A connection to a reelfarm server.

    address: "host:port"; default $REELFARM_SERVER, else 127.0.0.1:7700. Servers that
        share one PostgreSQL database (a leader and its standbys) are given as a list,
        "host:port,host:port" or a Python list: calls go to the leader, and follow it
        when a standby takes over (a standby's UNAVAILABLE answer names the leader).
    token: sent as "authorization: Bearer <token>" metadata (default $REELFARM_TOKEN).
    timeout: seconds for each unary call.
    tls_ca: PEM file of the CAs trusted for the server's certificate (default
        $REELFARM_TLS_CA, else the system's CAs).
    insecure: plaintext instead of TLS, for a server started with --insecure (default:
        $REELFARM_INSECURE == "1").
    """

    def __init__(self, address=None, token=None, timeout=30.0, tls_ca=None, insecure=None):
        address = address or os.environ.get("REELFARM_SERVER", "127.0.0.1:7700")
        if isinstance(address, str):
            address = address.split(",")
        self._addresses = [a.strip() for a in address]
        if not self._addresses or not all(self._addresses):
            raise ValueError(f"server list {address!r} has an empty address; "
                             "give HOST:PORT[,HOST:PORT...]")
        token = token if token is not None else os.environ.get("REELFARM_TOKEN")
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._timeout = timeout
        if insecure is None:
            insecure = os.environ.get("REELFARM_INSECURE") == "1"
        self._insecure = insecure
        tls_ca = tls_ca if tls_ca is not None else os.environ.get("REELFARM_TLS_CA")
        self._roots = None
        if tls_ca:
            with open(tls_ca, "rb") as f:
                self._roots = f.read()
        self._channel = None
        self._connect(self._addresses[0])

    def _connect(self, address):
        if self._channel is not None:
            self._channel.close()
        self.address = address
        if self._insecure:
            self._channel = grpc.insecure_channel(address)
        else:
            self._channel = grpc.secure_channel(
                address, grpc.ssl_channel_credentials(root_certificates=self._roots))
        self._stub = jobs_pb2_grpc.JobServiceStub(self._channel)

    def _follow_leader(self, err):
        """After UNAVAILABLE: to the leader a standby named, else the next server."""
        leader = dict(err.trailing_metadata() or ()).get("reelfarm-leader", "")
        if leader:
            if leader not in self._addresses:
                self._addresses.append(leader)
            self._connect(leader)
        elif len(self._addresses) > 1:
            i = self._addresses.index(self.address) if self.address in self._addresses else -1
            self._connect(self._addresses[(i + 1) % len(self._addresses)])
        return bool(leader) or len(self._addresses) > 1

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method, request):
        """Calls the JobService method named ``method`` on the leader."""
        tries = 3 * len(self._addresses) + 2
        for attempt in range(tries):
            try:
                return getattr(self._stub, method)(request, timeout=self._timeout,
                                                  metadata=self._metadata)
            except grpc.RpcError as err:
                if (err.code() != grpc.StatusCode.UNAVAILABLE or attempt + 1 == tries
                        or not self._follow_leader(err)):
                    raise errors.from_rpc_error(err) from None
                if not dict(err.trailing_metadata() or ()).get("reelfarm-leader"):
                    time.sleep(0.2)  # a takeover in progress

    # Submitting.
    def submit_upscale(self, input, output, scale=2, model="bicubic", chunk_frames=None,
                       crf=None, overwrite=False, name="", project="", priority=None,
                       depends_on=(), requirements=None, request_id="", max_attempts=None):
        """Upscales the movie ``input`` into ``output`` (paths relative to the storage root).

        ``scale`` (default 2) must be one the model was made for. None leaves a value to
        the server: ``chunk_frames`` (default 48) frames per chunk task, ``crf`` (default
        18; 0..51) for H.264/H.265 outputs, ``priority`` (default 50; 0..100),
        ``max_attempts`` (default 3; 1..10) per task."""
        spec = jobs_pb2.JobSpec(name=name, project=project, request_id=request_id,
                                depends_on=list(depends_on),
                                requirements=dict(requirements or {}))
        if priority is not None:
            spec.priority = priority
        if max_attempts is not None:
            spec.max_attempts = max_attempts
        up = spec.upscale
        up.input, up.output, up.model, up.scale, up.overwrite = (input, output, model, scale,
                                                                 overwrite)
        if chunk_frames is not None:
            up.chunk_frames = chunk_frames
        if crf is not None:
            up.crf = crf
        return self._submit(spec)

    def submit_generate(self, model, prompt, output, seeds=(1,), steps=None,
                        guidance_scale=None, sampler=None, width=None, height=None, frames=None,
                        fps=None, negative_prompt="", init="", strength=None, overwrite=False,
                        name="", project=""):
        """Generates takes with a denoiser model (see models/README.md), as image
        sequences or movies at `output` (each take's name replaces "{take}", else the
        file's stem: "gen/sh010.####.png" -> "gen/sh010_take001.####.png").

        A wedge: `prompt`, `steps`, `guidance_scale` and `sampler` each take one value or
        a list of values, and `seeds` a list; every combination is one take, prompts
        outermost and seeds innermost. None leaves a parameter to the model's default.
        None leaves the size and length to the server: `width` and `height` (default 256,
        rounded to the model's stride), `frames` (default 16, at most the model's
        max_frames), `fps` (default 24; 1..240). `init` (a path under the storage root)
        starts each take from that image, noised to `strength` (default 0.6). The
        samplers are "euler" and "ddim". For explicit takes, give a spec dict to
        submit()."""
        spec = jobs_pb2.JobSpec(name=name, project=project)
        g = spec.generate
        g.model, g.negative_prompt, g.output = model, negative_prompt, output
        g.seeds.extend(seeds)
        for field, value in (("width", width), ("height", height), ("frames", frames),
                             ("fps", fps)):
            if value is not None:
                setattr(g, field, value)
        g.init, g.overwrite = init, overwrite
        if strength is not None:
            g.strength = strength

        def axis(value, single, many):
            if value is None:
                return
            if isinstance(value, (list, tuple)):
                getattr(g, many).extend(value)
            else:
                setattr(g, single, value)

        axis(prompt, "prompt", "prompts")
        axis(steps, "steps", "step_counts")
        axis(guidance_scale, "guidance_scale", "guidance_scales")
        axis(sampler, "sampler", "samplers")
        return self._submit(spec)

    def submit(self, spec):
        """Submits a spec given as a dict (the JobSpec's fields, snake_case or camelCase)
        or as the path of a .json (or .yaml, with PyYAML) file holding one."""
        if isinstance(spec, (str, os.PathLike)):
            path = os.fspath(spec)
            with open(path, encoding="utf-8") as f:
                if path.endswith((".yaml", ".yml")):
                    import yaml  # optional: python3-yaml
                    spec = yaml.safe_load(f)
                else:
                    spec = json.load(f)
        try:
            message = json_format.ParseDict(spec, jobs_pb2.JobSpec())
        except json_format.ParseError as err:
            raise errors.InvalidSpec(grpc.StatusCode.INVALID_ARGUMENT, str(err)) from None
        return self._submit(message)

    def _submit(self, spec):
        resp = self._call("SubmitJob", jobs_pb2.SubmitJobRequest(spec=spec))
        return Job(self, resp.job)

    # Reading and control.
    def get(self, job_id):
        return Job(self, self._call("GetJob", jobs_pb2.GetJobRequest(job_id=job_id)))

    def list(self, states=None, limit=100):
        by_name = {v: k for k, v in _STATES.items()}
        req = jobs_pb2.ListJobsRequest(limit=limit,
                                       states=[by_name[s] for s in (states or [])])
        return [Job(self, j) for j in self._call("ListJobs", req).jobs]

    def cancel(self, job_id):
        return Job(self, self._call("CancelJob",
                                    jobs_pb2.CancelJobRequest(job_id=job_id)))

    def pause(self, job_id):
        return Job(self, self._call("PauseJob", jobs_pb2.PauseJobRequest(job_id=job_id)))

    def resume(self, job_id):
        return Job(self, self._call("ResumeJob",
                                    jobs_pb2.ResumeJobRequest(job_id=job_id)))

    def retry(self, job_id):
        return Job(self, self._call("RetryJob", jobs_pb2.RetryJobRequest(job_id=job_id)))

    def set_priority(self, job_id, priority):
        return Job(self, self._call("SetPriority",
                                    jobs_pb2.SetPriorityRequest(job_id=job_id,
                                                                priority=priority)))

    def workers(self):
        return list(self._call("ListWorkers", jobs_pb2.ListWorkersRequest()).workers)

    def watch(self, job_id, timeout=None):
        """Yields a Job snapshot for each progress event until the job ends. With several
        servers, a watch cut by a change of leader goes on with the new leader."""
        tries = 3 * len(self._addresses) + 2
        while True:
            try:
                for event in self._stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id),
                                                 timeout=timeout, metadata=self._metadata):
                    tries = 3 * len(self._addresses) + 2
                    yield Job(self, event.job)
                return
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED and timeout is not None:
                    return
                tries -= 1
                if (err.code() != grpc.StatusCode.UNAVAILABLE or tries <= 0
                        or not self._follow_leader(err)):
                    raise errors.from_rpc_error(err) from None
                if not dict(err.trailing_metadata() or ()).get("reelfarm-leader"):
                    time.sleep(0.2)  # a takeover in progress
