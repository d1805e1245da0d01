"""The job loop the job-driven testbenches share: jobs from a pickle (``<PREFIX>_JOBS``), one result per job and
the first error to a pickle (``<PREFIX>_RESULTS``: {"results": [...], "error": str | None}), written even when a
job fails or the test is cancelled, so the runner reports what happened.

Anything that ends the loop early is an error: an exception in the job, and also a ``BaseException`` such as the
``CancelledError`` cocotb throws into the test when another task of the run (an AXI monitor, a responder)
raised. The runner then reads the failing task's message from cocotb's results XML.
"""
from __future__ import annotations

import os
import pickle
from collections.abc import Awaitable, Callable


def load_jobs(prefix: str = "DSA_TB") -> list[dict]:
    with open(os.environ[f"{prefix}_JOBS"], "rb") as fh:
        return pickle.load(fh)


async def run_all(jobs: list[dict], run_one: Callable[[dict], Awaitable[dict]], prefix: str = "DSA_TB") -> None:
    results, error = [], None
    try:
        for job in jobs:
            results.append(await run_one(job))
    except BaseException as exc:     # noqa: B036 -- re-raised: cocotb must still see the failure
        error = f"program {len(results) + 1} of {len(jobs)}: {type(exc).__name__}: {exc}".rstrip(": ")
        raise
    finally:
        with open(os.environ[f"{prefix}_RESULTS"], "wb") as fh:
            pickle.dump({"results": results, "error": error}, fh)
