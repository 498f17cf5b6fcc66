"""wait_all, Job.tasks, Job.sidecar and watch_async against a real server with a local
worker."""
import asyncio
import json
import time

import pytest

import reelfarm


def test_wait_all_returns_every_final_snapshot_in_order(farm):
    client = reelfarm.Client(farm.address, insecure=True)
    src = farm.clip("plates/wa.mp4", frames=24)
    first = client.submit_upscale(src, "renders/wa1.mp4", chunk_frames=12)
    second = client.submit_upscale(src, "renders/wa2.mp4", chunk_frames=24)
    # A job that does not succeed: one chained to a job cancelled before it ran.
    blocker = client.submit_upscale(src, "renders/wa3.mp4", chunk_frames=24)
    chained = client.submit_upscale("renders/wa3.mp4", "renders/wa4.mp4",
                                    depends_on=[blocker.id])
    client.cancel(blocker.id)
    finals = client.wait_all([second, first.id, chained], timeout=180)
    assert [j.id for j in finals] == [second.id, first.id, chained.id]
    assert [j.state for j in finals[:2]] == ["succeeded", "succeeded"]
    assert finals[2].done and not finals[2].succeeded
    assert all(j.frames_done == 24 for j in finals[:2])
    with pytest.raises(reelfarm.JobFailed) as err:
        client.wait_all([first, chained], raise_on_failure=True)
    assert f"job {chained.id}" in err.value.message and f"job {first.id}" not in err.value.message


def test_wait_all_times_out_on_a_job_that_cannot_run(small_queue_farm):
    client = reelfarm.Client(small_queue_farm.address, insecure=True)  # no workers
    job = client.submit_upscale(small_queue_farm.clip("plates/wt.mp4", frames=2),
                                "renders/wt.mp4")
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=f"job {job.id} still queued"):
        client.wait_all([job], timeout=1.5)
    assert 1.0 < time.monotonic() - started < 15
    client.cancel(job.id)


def test_tasks_are_the_jobs_chunks_and_assembly(farm):
    client = reelfarm.Client(farm.address, insecure=True)
    job = client.submit_upscale(farm.clip("plates/t.mp4", frames=30), "renders/t.mp4",
                                chunk_frames=10)
    final = job.wait(timeout=180, raise_on_failure=True)
    tasks = final.tasks  # a watch event: fetched again when it carries no tasks
    assert [t.index for t in tasks] == [0, 1, 2, 3]
    assert [t.kind for t in tasks] == ["chunk", "chunk", "chunk", "assemble"]
    assert [t.frames for t in tasks[:3]] == [range(0, 10), range(10, 20), range(20, 30)]
    assert all(t.state == "succeeded" and t.attempts == 1 for t in tasks)
    workers = {w.name for w in client.workers()}
    assert all(t.worker in workers and t.workers == [t.worker] for t in tasks)
    assert [t.index for t in client.get(job.id).tasks] == [0, 1, 2, 3]


def test_sidecar_is_the_outputs_provenance(farm, monkeypatch):
    client = reelfarm.Client(farm.address, insecure=True)
    src = farm.clip("plates/sc.mp4", frames=12)
    job = client.submit_upscale(src, "renders/sc.mp4")
    with pytest.raises(ValueError, match="REELFARM_STORAGE_ROOT"):
        monkeypatch.delenv("REELFARM_STORAGE_ROOT", raising=False)
        job.sidecar()
    final = job.wait(timeout=120, raise_on_failure=True)
    side = final.sidecar(storage_root=farm.storage)
    on_disk = json.loads((farm.storage / "renders/sc.mp4.json").read_text())
    assert side == on_disk
    # The provenance: this job, its input as probed, the model and the worker that ran it.
    assert side["job_id"] == job.id and side["output"] == "renders/sc.mp4"
    assert side["spec"]["input"] == src
    assert (side["input_info"]["width"], side["input_info"]["frame_count"]) == (160, 12)
    assert side["model"]["name"] == "bicubic" and side["model"]["scale"] == 2
    assert side["assembled_by"] in {w.name for w in client.workers()}
    monkeypatch.setenv("REELFARM_STORAGE_ROOT", str(farm.storage))
    assert client.get(job.id).sidecar() == on_disk
    pending = client.submit_upscale(src, "renders/sc_none.mp4")
    client.cancel(pending.id)
    with pytest.raises(FileNotFoundError):
        client.get(pending.id).sidecar()


def test_watch_async_follows_a_job_without_blocking_the_loop(farm):
    client = reelfarm.Client(farm.address, insecure=True)
    job = client.submit_upscale(farm.clip("plates/as.mp4", frames=48), "renders/as.mp4",
                                chunk_frames=12)

    async def main():
        ticks = 0
        stop = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        tick_task = asyncio.create_task(ticker())
        events = [j async for j in client.watch_async(job.id)]
        stop.set()
        await tick_task
        return events, ticks

    events, ticks = asyncio.run(main())
    assert events and all(isinstance(e, reelfarm.Job) for e in events)
    assert events[-1].state == "succeeded" and events[-1].frames_done == 48
    done = [e.frames_done for e in events]
    assert done == sorted(done)
    assert ticks > 5, "the event loop ran other tasks while the watch waited"


def test_watch_async_errors_are_typed(farm):
    client = reelfarm.Client(farm.address, insecure=True)

    async def main():
        return [j async for j in client.watch_async(987654)]

    with pytest.raises(reelfarm.NotFound):
        asyncio.run(main())
