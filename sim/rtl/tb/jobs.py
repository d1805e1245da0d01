"""The job loop the job-driven testbenches share: jobs from a pickle (``<PREFIX>_JOBS``), one result per job and
the first error to a pickle (``<PREFIX>_RESULTS``: {"results": [...], "error": str | None}), written even when a
job fails, so the runner reports what happened."""
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
    except Exception as exc:
        error = f"program {len(results)} of {len(jobs)}: {exc}"
        raise
    finally:
        with open(os.environ[f"{prefix}_RESULTS"], "wb") as fh:
            pickle.dump({"results": results, "error": error}, fh)
