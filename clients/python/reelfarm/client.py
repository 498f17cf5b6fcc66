"""Client and Job: thin, typed wrappers over reelfarm's gRPC JobService."""

from __future__ import annotations

import json
import os
import pathlib
import time
from typing import (Any, AsyncIterator, Callable, Iterable, Iterator, List, Mapping, Optional,
                    Sequence, Union)

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
_TASK_STATES = {
    jobs_pb2.TASK_STATE_PENDING: "pending",
    jobs_pb2.TASK_STATE_LEASED: "leased",
    jobs_pb2.TASK_STATE_SUCCEEDED: "succeeded",
    jobs_pb2.TASK_STATE_FAILED: "failed",
    jobs_pb2.TASK_STATE_CANCELLED: "cancelled",
}
_TASK_KINDS = {
    jobs_pb2.TASK_KIND_CHUNK: "chunk",
    jobs_pb2.TASK_KIND_ASSEMBLE: "assemble",
    jobs_pb2.TASK_KIND_TAKE: "take",
}


def _spurious_connect_failure(err: grpc.RpcError) -> bool:
    """Whether a call failed on a connection that did not fail: gRPC 1.51 (Debian 12's
    grpcio) reads errno a few calls after a non-blocking TCP connect, so an attempt still
    in progress now and then reads as failed with errno 2, "No such file or directory"
    (grpc/grpc#35064). Nothing reached the server; the call is made again, waiting for
    the channel (wait_for_ready). A refused or unreachable server reads otherwise."""
    details = err.details() or ""
    return (err.code() == grpc.StatusCode.UNAVAILABLE and "failed to connect" in details
            and "No such file or directory" in details and "unix:" not in details)


def _take_output(output: str, take_name: str) -> str:
    """A take's output, named as the server names it: "{take}" in `output` replaced by
    the take's name, else the file's stem (up to its first '.')."""
    if "{take}" in output:
        return output.replace("{take}", take_name)
    folder, _, file = output.rpartition("/")
    rest = file[file.index("."):] if "." in file else ""
    return (folder + "/" if folder else "") + take_name + rest


class Task:
    """One task of a job (a chunk, the assembly, or a take of a wedge), as GetJob sent it."""

    def __init__(self, proto: jobs_pb2.Task):
        self.proto = proto

    @property
    def index(self) -> int:
        return self.proto.index

    @property
    def kind(self) -> str:
        """"chunk", "assemble" or "take"."""
        return _TASK_KINDS.get(self.proto.kind, "unknown")

    @property
    def state(self) -> str:
        """"pending", "leased", "succeeded", "failed" or "cancelled"."""
        return _TASK_STATES.get(self.proto.state, "unknown")

    @property
    def frames(self) -> range:
        """The frames of a chunk task (empty for the others)."""
        return range(self.proto.frame_begin, self.proto.frame_end)

    @property
    def attempts(self) -> int:
        return self.proto.attempts

    @property
    def worker(self) -> str:
        """The worker of the current or last attempt."""
        return self.proto.worker

    @property
    def workers(self) -> list[str]:
        """Every worker that attempted it, in order."""
        return list(self.proto.workers)

    @property
    def error(self) -> str:
        return self.proto.error

    @property
    def frames_done(self) -> int:
        return self.proto.frames_done

    def __repr__(self) -> str:
        return (f"Task(index={self.index}, kind={self.kind!r}, state={self.state!r}, "
                f"attempts={self.attempts}, worker={self.worker!r})")


class Job:
    """A snapshot of a job. ``refresh()`` and ``wait()`` return newer snapshots."""

    def __init__(self, client: Client, proto: jobs_pb2.Job):
        self._client = client
        self.proto = proto

    @property
    def id(self) -> int:
        return self.proto.id

    @property
    def state(self) -> str:
        """"queued", "running", "succeeded", "failed", "cancelled", "paused" or "waiting"."""
        return _STATES.get(self.proto.state, "unknown")

    @property
    def error(self) -> str:
        return self.proto.error

    @property
    def output(self) -> str:
        """The output path, relative to the storage root."""
        return self.proto.output

    @property
    def frames_done(self) -> int:
        return self.proto.frames_done

    @property
    def frames_total(self) -> int:
        return self.proto.frames_total

    @property
    def tasks_done(self) -> int:
        return self.proto.tasks_done

    @property
    def tasks_total(self) -> int:
        return self.proto.tasks_total

    @property
    def fps(self) -> float:
        return self.proto.fps

    @property
    def eta_seconds(self) -> float:
        """Estimated seconds to finish; < 0 when unknown."""
        return self.proto.eta_seconds

    @property
    def done(self) -> bool:
        return self.state in _TERMINAL

    @property
    def succeeded(self) -> bool:
        return self.state == "succeeded"

    @property
    def tasks(self) -> list[Task]:
        """The job's tasks with their state, attempts and workers. Snapshots from get()
        (and refresh()) carry them; one from list(), a submit or a watch event may not,
        in which case the job is fetched again."""
        proto = self.proto
        if not proto.tasks and proto.tasks_total:
            proto = self._client.get(self.id).proto
        return [Task(t) for t in proto.tasks]

    def sidecar(self, storage_root: Union[str, os.PathLike, None] = None,
                take: Optional[int] = None) -> dict[str, Any]:
        """The provenance sidecar of the job's output (`<output>.json`: the spec, the
        input as probed, the model and its digest, the workers and software versions; for
        a generate take its seed, prompt, steps, guidance and sampler) as a dict.

        A generate job writes one output per take: `take` (1-based) picks it, and may be
        left out when the job has one take. Read from the storage root as this machine
        mounts it: `storage_root`, else $REELFARM_STORAGE_ROOT. Raises FileNotFoundError
        while the output is not on disk (the job not finished, or failed)."""
        root = storage_root if storage_root is not None else os.environ.get(
            "REELFARM_STORAGE_ROOT")
        if not root:
            raise ValueError("Job.sidecar() reads the storage root: give storage_root= or set "
                             "$REELFARM_STORAGE_ROOT to where this machine mounts it")
        job = self if self.output else self.refresh()
        output = job.output
        if job.proto.spec.WhichOneof("kind") == "generate":
            takes = job.tasks_total
            if take is None and takes == 1:
                take = 1
            if take is None or not 1 <= take <= takes:
                raise ValueError(f"job {job.id} has {takes} takes; give take=1..{takes}")
            output = _take_output(output, f"{job.proto.spec.name}_take{take:03d}")
        elif take is not None:
            raise ValueError(f"job {job.id} is not a generate job; it has no takes")
        if not output:
            raise FileNotFoundError(f"job {self.id} ({job.state}) has no output yet")
        with open(pathlib.Path(root) / (output + ".json"), encoding="utf-8") as f:
            return json.load(f)

    def __repr__(self) -> str:
        return (f"Job(id={self.id}, state={self.state!r}, frames={self.frames_done}/"
                f"{self.frames_total}, output={self.output!r})")

    def refresh(self) -> Job:
        return self._client.get(self.id)

    def wait(self, timeout: float | None = None,
             on_progress: Callable[[Job], Any] | None = None,
             raise_on_failure: bool = False) -> Job:
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

    def __init__(self, address: Union[str, Sequence[str], None] = None,
                 token: Optional[str] = None, timeout: float = 30.0,
                 tls_ca: Optional[str] = None, insecure: Optional[bool] = None):
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

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _call(self, method, request):
        """Calls the JobService method named ``method`` on the leader."""
        tries = 3 * len(self._addresses) + 2
        wait = False
        for attempt in range(tries):
            try:
                return getattr(self._stub, method)(request, timeout=self._timeout,
                                                  metadata=self._metadata, wait_for_ready=wait)
            except grpc.RpcError as err:
                wait = _spurious_connect_failure(err)
                if wait and attempt + 1 < tries:
                    continue  # the same server, once the channel connects
                if (err.code() != grpc.StatusCode.UNAVAILABLE or attempt + 1 == tries
                        or not self._follow_leader(err)):
                    raise errors.from_rpc_error(err) from None
                if not dict(err.trailing_metadata() or ()).get("reelfarm-leader"):
                    time.sleep(0.2)  # a takeover in progress

    # Submitting.
    def submit_upscale(self, input: str, output: str, scale: int = 2, model: str = "bicubic",
                       chunk_frames: Optional[int] = None, crf: Optional[int] = None,
                       overwrite: bool = False, name: str = "", project: str = "",
                       priority: Optional[int] = None, depends_on: Iterable[int] = (),
                       requirements: Optional[Mapping[str, str]] = None, request_id: str = "",
                       max_attempts: Optional[int] = None, webhooks: Iterable[str] = (),
                       qc: str = "") -> Job:
        """Upscales the movie ``input`` into ``output`` (paths relative to the storage root).

        ``scale`` (default 2) must be one the model was made for. None leaves a value to
        the server: ``chunk_frames`` (default 48) frames per chunk task, ``crf`` (default
        18; 0..51) for H.264/H.265 outputs, ``priority`` (default 50; 0..100),
        ``max_attempts`` (default 3; 1..10) per task. ``webhooks``: http(s) URLs the
        server POSTs a JSON body to when the job ends (README "Notifications"). ``qc``:
        "warn" (default) keeps QC flags on the tasks; "fail" fails a flagged chunk."""
        spec = jobs_pb2.JobSpec(name=name, project=project, request_id=request_id,
                                depends_on=list(depends_on),
                                requirements=dict(requirements or {}),
                                webhooks=list(webhooks))
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
        up.qc = qc
        return self._submit(spec)

    def submit_generate(self, model: str, prompt: Union[str, Sequence[str]], output: str,
                        seeds: Iterable[int] = (1,),
                        steps: Union[int, Sequence[int], None] = None,
                        guidance_scale: Union[float, Sequence[float], None] = None,
                        sampler: Union[str, Sequence[str], None] = None,
                        width: Optional[int] = None, height: Optional[int] = None,
                        frames: Optional[int] = None, fps: Optional[float] = None,
                        negative_prompt: str = "", init: str = "",
                        strength: Optional[float] = None, overwrite: bool = False,
                        name: str = "", project: str = "",
                        webhooks: Iterable[str] = ()) -> Job:
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
        submit(). `webhooks`: http(s) URLs called when the job ends."""
        spec = jobs_pb2.JobSpec(name=name, project=project, webhooks=list(webhooks))
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

    def submit(self, spec: Union[Mapping[str, Any], str, os.PathLike]) -> Job:
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

    def _submit(self, spec: jobs_pb2.JobSpec) -> Job:
        resp = self._call("SubmitJob", jobs_pb2.SubmitJobRequest(spec=spec))
        return Job(self, resp.job)

    # Reading and control.
    def get(self, job_id: int) -> Job:
        return Job(self, self._call("GetJob", jobs_pb2.GetJobRequest(job_id=job_id)))

    def list(self, states: Optional[Iterable[str]] = None, limit: int = 100) -> List[Job]:
        by_name = {v: k for k, v in _STATES.items()}
        req = jobs_pb2.ListJobsRequest(limit=limit,
                                       states=[by_name[s] for s in (states or [])])
        return [Job(self, j) for j in self._call("ListJobs", req).jobs]

    def cancel(self, job_id: int) -> Job:
        return Job(self, self._call("CancelJob",
                                    jobs_pb2.CancelJobRequest(job_id=job_id)))

    def pause(self, job_id: int) -> Job:
        return Job(self, self._call("PauseJob", jobs_pb2.PauseJobRequest(job_id=job_id)))

    def resume(self, job_id: int) -> Job:
        return Job(self, self._call("ResumeJob",
                                    jobs_pb2.ResumeJobRequest(job_id=job_id)))

    def retry(self, job_id: int) -> Job:
        return Job(self, self._call("RetryJob", jobs_pb2.RetryJobRequest(job_id=job_id)))

    def set_priority(self, job_id: int, priority: int) -> Job:
        return Job(self, self._call("SetPriority",
                                    jobs_pb2.SetPriorityRequest(job_id=job_id,
                                                                priority=priority)))

    def workers(self) -> List[jobs_pb2.Worker]:
        return list(self._call("ListWorkers", jobs_pb2.ListWorkersRequest()).workers)

    def watch(self, job_id: int, timeout: Optional[float] = None) -> Iterator[Job]:
        """Yields a Job snapshot for each progress event until the job ends. With several
        servers, a watch cut by a change of leader goes on with the new leader."""
        tries = 3 * len(self._addresses) + 2
        wait = False
        while True:
            try:
                for event in self._stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id),
                                                 timeout=timeout, metadata=self._metadata,
                                                 wait_for_ready=wait):
                    tries = 3 * len(self._addresses) + 2
                    yield Job(self, event.job)
                return
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED and timeout is not None:
                    return
                tries -= 1
                wait = _spurious_connect_failure(err)
                if wait and tries > 0:
                    continue  # the same server, once the channel connects
                if (err.code() != grpc.StatusCode.UNAVAILABLE or tries <= 0
                        or not self._follow_leader(err)):
                    raise errors.from_rpc_error(err) from None
                if not dict(err.trailing_metadata() or ()).get("reelfarm-leader"):
                    time.sleep(0.2)  # a takeover in progress

    def wait_all(self, jobs: Iterable[Union[Job, int]], timeout: Optional[float] = None,
                 raise_on_failure: bool = False) -> List[Job]:
        """Waits until every job (a Job or a job id) has ended and returns their final
        snapshots in the order given. Raises TimeoutError when some are still going
        after ``timeout`` seconds in all, and JobFailed (naming every job that did not
        succeed) when raise_on_failure."""
        deadline = None if timeout is None else time.monotonic() + timeout
        finals = []
        for job in jobs:
            job_id = job.id if isinstance(job, Job) else int(job)
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            last = self.get(job_id)
            if not last.done:
                for event in self.watch(job_id, timeout=left):
                    last = event
                if not last.done:
                    last = self.get(job_id)
            if not last.done:
                raise TimeoutError(f"job {job_id} still {last.state} after {timeout} s")
            finals.append(last)
        failed = [j for j in finals if not j.succeeded]
        if raise_on_failure and failed:
            raise errors.JobFailed(grpc.StatusCode.ABORTED, "; ".join(
                f"job {j.id} {j.state}: {j.error}" for j in failed))
        return finals

    def _aio_channel(self) -> grpc.aio.Channel:
        if self._insecure:
            return grpc.aio.insecure_channel(self.address)
        return grpc.aio.secure_channel(
            self.address, grpc.ssl_channel_credentials(root_certificates=self._roots))

    async def watch_async(self, job_id: int,
                          timeout: Optional[float] = None) -> AsyncIterator[Job]:
        """watch() for code that runs an asyncio event loop (grpc.aio): an async
        iterator of Job snapshots, one per progress event, until the job ends.

            async for job in farm.watch_async(job_id):
                print(job.frames_done, "/", job.frames_total)

        The loop is never blocked. With several servers, a watch cut by a change of
        leader goes on with the new leader."""
        import asyncio  # only callers of the async API need it

        tries = 3 * len(self._addresses) + 2
        wait = False
        while True:
            async with self._aio_channel() as channel:
                stub = jobs_pb2_grpc.JobServiceStub(channel)
                call = stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id), timeout=timeout,
                                     metadata=self._metadata, wait_for_ready=wait)
                try:
                    async for event in call:
                        tries = 3 * len(self._addresses) + 2
                        yield Job(self, event.job)
                    return
                except grpc.aio.AioRpcError as err:
                    if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED and timeout is not None:
                        return
                    tries -= 1
                    wait = _spurious_connect_failure(err)
                    if wait and tries > 0:
                        continue  # the same server, once a new channel connects
                    leader = dict(err.trailing_metadata() or ()).get("reelfarm-leader", "")
                    if (err.code() != grpc.StatusCode.UNAVAILABLE or tries <= 0
                            or not self._follow_leader(err)):
                        raise errors.from_rpc_error(err) from None
                if not leader:
                    await asyncio.sleep(0.2)  # a takeover in progress
