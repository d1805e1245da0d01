"""Where a sweep's points run: a local process pool (default, one worker per core) or a Ray cluster. Both run the
same function (``sim.sweep.evaluate.evaluate``) on the same plan; a backend only distributes it. Each is used
as ``submit(tag, point)`` then ``wait()`` -> finished ``(tag, record)`` pairs.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any

BACKENDS = ("local", "ray")
_PLAN = None


def _init(plan) -> None:
    global _PLAN
    _PLAN = plan


def _evaluate(point: dict[str, Any]) -> dict[str, Any]:
    from sim.sweep.evaluate import evaluate
    return evaluate(_PLAN, point)


class LocalPool:
    """Worker processes on this machine (forkserver: a clean interpreter, no threads inherited from the parent)."""

    def __init__(self, plan, jobs: int | None = None):
        self.jobs = jobs or os.cpu_count() or 1
        self._pool = ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("forkserver"),
                                         initializer=_init, initargs=(plan,))
        self._tags: dict[Future, Any] = {}

    def submit(self, tag: Any, point: dict[str, Any]) -> None:
        self._tags[self._pool.submit(_evaluate, point)] = tag

    @property
    def in_flight(self) -> int:
        return len(self._tags)

    def wait(self) -> list[tuple[Any, dict[str, Any]]]:
        done, _ = wait_futures(list(self._tags), return_when=FIRST_COMPLETED)
        return [(self._tags.pop(f), f.result()) for f in done]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class RayPool:
    """Tasks on a Ray cluster (``address``: ``HOST:PORT`` of a running head, or ``auto``); one CPU each."""

    def __init__(self, plan, address: str, jobs: int | None = None):
        import ray
        self._ray = ray
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        self.jobs = jobs or max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._plan = ray.put(plan)
        self._remote = ray.remote(num_cpus=1)(_evaluate_on_ray)
        self._tags: dict[Any, Any] = {}

    def submit(self, tag: Any, point: dict[str, Any]) -> None:
        self._tags[self._remote.remote(self._plan, point)] = tag

    @property
    def in_flight(self) -> int:
        return len(self._tags)

    def wait(self) -> list[tuple[Any, dict[str, Any]]]:
        done, _ = self._ray.wait(list(self._tags), num_returns=1)
        return [(self._tags.pop(ref), self._ray.get(ref)) for ref in done]

    def close(self) -> None:
        for ref in self._tags:
            self._ray.cancel(ref, force=True)
        self._ray.shutdown()


def _evaluate_on_ray(plan, point: dict[str, Any]) -> dict[str, Any]:
    from sim.sweep.evaluate import evaluate
    return evaluate(plan, point)


def open_backend(name: str, plan, jobs: int | None = None, address: str | None = None):
    if name == "ray":
        return RayPool(plan, address or "auto", jobs)
    return LocalPool(plan, jobs)


__all__ = ["BACKENDS", "LocalPool", "RayPool", "open_backend"]
