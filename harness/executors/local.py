"""``--executor local --jobs N``: the jobs of a run in N worker processes on this machine, one GPU each where
there are at least N GPUs. Stage jobs go first and the jobs that share their stages are started when they end,
as on Slurm; every job is the same `worker.run_job` call, so the records are those of a sequential run.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from tqdm import tqdm

from .jobs import Job
from .worker import JobRequest, run_job


def _pin_device(devices) -> None:
    """Worker initializer: one GPU per worker process (before torch is imported there)."""
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(devices.get())


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def run_local(jobs: list[Job], requests: list[JobRequest], workers: int, progress: bool, log=print,
              ) -> dict[str, str]:
    """Run ``requests[i]`` (the cells of ``jobs[i]``) in ``workers`` processes; returns {cell id: status}."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no torch state copied by fork
    devices = None
    if workers > 1 and _gpu_count() >= workers:
        devices = context.Manager().Queue()
        for index in range(workers):
            devices.put(index)
    statuses: dict[str, str] = {}
    waiting: dict[int, list[int]] = {}
    ready: list[int] = []
    for index, job in enumerate(jobs):
        (waiting.setdefault(job.after, []) if job.after is not None else ready).append(index)
    bar = tqdm(total=sum(len(job.cells) for job in jobs), unit="cell", desc=f"local x{workers}",
               disable=not progress)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_pin_device, initargs=(devices,)) as pool:
        running: dict[Future, int] = {pool.submit(run_job, requests[i]): i for i in ready}
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                index = running.pop(future)
                statuses.update(_statuses(future, jobs[index], log))
                bar.update(len(jobs[index].cells))
                for follower in waiting.pop(index, []):
                    running[pool.submit(run_job, requests[follower])] = follower
    bar.close()
    return statuses


def _statuses(future: Future, job: Job, log) -> dict[str, Any]:
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - a worker that died: its cells have no record, re-running retries
        log(f"job {job.name} failed outside its cells: {type(exc).__name__}: {exc}")
        return {cell_id: "failed" for cell_id in job.ids}
