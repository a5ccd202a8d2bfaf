"""Where a dataset build runs its clip tasks: a local process pool (the default) or Ray tasks on
a cluster. Either yields each :class:`~talkingface.dataset.clip.ClipResult` as soon as its
clip is done, in completion order; a task that dies becomes a ``failed`` result (retried by the
next build), never a crash of the whole build.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

from talkingface.dataset.clip import ClipResult, ClipTask, run_task
from talkingface.pipeline.errors import InputError

EXECUTORS = ("process", "ray")


def _failed(task: ClipTask, where: str, exc: BaseException) -> ClipResult:
    return ClipResult(
        task.id,
        task.source,
        "failed",
        reason=f"{where}: {type(exc).__name__}: {' '.join(str(exc).split())}",
    )


class ProcessPool:
    """Clip tasks on ``workers`` local processes (spawned, so each has its own MediaPipe and
    torch state); the CPUs are shared out as torch threads. ``workers=1`` runs the tasks one
    after another in this process (no start-up cost)."""

    def __init__(self, workers: int | None = None) -> None:
        cpus = os.cpu_count() or 1
        self.workers = workers if workers is not None else min(4, cpus)
        if self.workers < 1:
            raise InputError(f"--workers must be at least 1, got {self.workers}")
        self.threads = max(1, cpus // self.workers)

    def __call__(self, tasks: Sequence[ClipTask]) -> Iterator[ClipResult]:
        if self.workers == 1 or len(tasks) <= 1:
            for task in tasks:
                yield run_task(task)
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        pool = ProcessPoolExecutor(
            min(self.workers, len(tasks)), mp_context=multiprocessing.get_context("spawn")
        )
        try:
            futures = {pool.submit(run_task, task): task for task in tasks}
            for future in as_completed(futures):
                try:
                    yield future.result()
                except Exception as exc:  # noqa: BLE001 - a worker died (killed, out of memory)
                    yield _failed(futures[future], "worker process", exc)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


class RayTasks:
    """Clip tasks as Ray tasks (one CPU each) on the cluster at ``address`` (``auto``: the one
    this machine belongs to; ``ray://host:10001``: a remote one), or on a local Ray started
    with ``workers`` CPUs when ``address`` is None. At most two tasks per CPU are in flight, so
    finished clips flow back while the rest wait. Every node must read the videos at the same
    path and have talkingface installed; only this process writes the dataset."""

    threads = 1

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise InputError("--executor ray needs Ray: pip install 'talkingface[ray]'") from None
        self.address, self.workers = address, workers

    def __call__(self, tasks: Sequence[ClipTask]) -> Iterator[ClipResult]:
        import ray

        started = not ray.is_initialized()
        if started:
            options = {"include_dashboard": False, "logging_level": "ERROR", "log_to_driver": False}
            if self.address is None and self.workers is not None:
                options["num_cpus"] = self.workers
            ray.init(address=self.address, **options)
        try:
            remote = ray.remote(num_cpus=1)(run_task)
            limit = 2 * max(1, int(ray.cluster_resources().get("CPU", 1)))
            queue, pending = list(reversed(tasks)), {}
            while queue or pending:
                while queue and len(pending) < limit:
                    task = queue.pop()
                    pending[remote.remote(task)] = task
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                task = pending.pop(ref)
                try:
                    yield ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - the task's worker or node died
                    yield _failed(task, "ray task", exc)
        finally:
            if started:
                ray.shutdown()


def executor_for(name: str, *, workers: int | None = None, address: str | None = None):
    """The executor called ``name`` (see :data:`EXECUTORS`)."""
    if name == "process":
        if address is not None:
            raise InputError("--address is for --executor ray")
        return ProcessPool(workers)
    if name == "ray":
        return RayTasks(address, workers)
    raise InputError(f"--executor must be one of {', '.join(EXECUTORS)}, got {name!r}")
