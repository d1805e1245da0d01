"""Where a sweep's results live: an Optuna study in a journal file (``study.journal``), one trial per design point,
written by the sweep's main process alone as each point finishes (append, flush, fsync), so a sweep killed at any
moment loses nothing it had finished. Every strategy stores its points there: grid and random ones as whole
trials (``add``), the samplers' through ``ask`` / ``tell``. A point's record (metrics, per-workload results, the
config digest, its error if the config refused it) is the trial's user attributes; an invalid point is a FAIL
trial, so a sampler learns from it without counting it.

On a restart in the same folder: a last line torn by the kill is cut off, finished points are skipped, and a
sampler's trials that were running when the sweep died are run again with their own parameters (``stale``).
A second sweep on the same folder at once is refused (an advisory lock the kernel drops when the process dies).
"""
from __future__ import annotations

import fcntl
import json
import math
import os
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import TrialState

from sim.sweep.metrics import METRICS
from sim.sweep.spec import Plan, SweepError

JOURNAL, META = "study.journal", "sweep.json"
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _storage(journal: Path) -> JournalStorage:
    """The journal with Optuna's file lock. The folder lock makes this process its only writer, so a lock file
    found now was left by a killed sweep: removed (Optuna would wait 30 seconds for it)."""
    lock = Path(f"{journal}.lock")
    lock.unlink(missing_ok=True)
    return JournalStorage(JournalFileBackend(str(journal), lock_obj=JournalFileOpenLock(str(journal))))


def distributions(plan: Plan) -> dict[str, Any]:
    """Optuna's distribution of each axis: a list is categorical, a range an int or float range."""
    out = {}
    for a in plan.axes:
        if a.values is not None:
            out[a.path] = CategoricalDistribution(a.values)
        elif a.is_int:
            out[a.path] = IntDistribution(a.low, a.high, step=a.step or 1)
        else:
            out[a.path] = FloatDistribution(a.low, a.high, step=a.step)
    return out


def _repair(path: Path) -> None:
    """Cut a last line a kill left without its newline (Optuna would refuse everything written after it)."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        data = f.read()
        if not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


def _key(point: dict[str, Any]) -> str:
    return json.dumps(point, sort_keys=True)


class Store:
    def __init__(self, folder: Path, plan: Plan, sampler: optuna.samplers.BaseSampler | None = None):
        self.folder, self.plan = folder, plan
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = open(folder / ".lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SweepError([f"--out: {str(folder)!r} is in use by another sweep (allowed: a folder no running "
                              "sweep writes)"]) from None
        meta = {"name": plan.name, "digest": plan.digest(), "strategy": plan.sweep.strategy,
                "objectives": plan.objectives, "axes": [a.path for a in plan.axes],
                "workloads": [w.label() for w in plan.workloads], "base": plan.base.name,
                "sweep": plan.sweep.model_dump(mode="json")}
        meta_path = folder / META
        if meta_path.exists():
            old = json.loads(meta_path.read_text())
            if old.get("digest") != meta["digest"]:
                raise SweepError([f"--out: {str(folder)!r} holds the results of another sweep ({old.get('name')!r}, "
                                  f"digest {old.get('digest')}; this one is {meta['digest']}) (allowed: a new folder, "
                                  "or the same sweep file to resume)"])
        else:
            meta_path.write_text(json.dumps(meta, indent=1) + "\n")
        journal = folder / JOURNAL
        _repair(journal)
        storage = _storage(journal)
        self.distributions = distributions(plan)
        self.study = optuna.create_study(study_name=plan.name, storage=storage, sampler=sampler,
                                         directions=[METRICS[o].direction for o in plan.objectives],
                                         load_if_exists=True)

    # ---- what is there ----
    def trials(self) -> list[optuna.trial.FrozenTrial]:
        return self.study.get_trials(deepcopy=False)

    def finished_keys(self) -> set[str]:
        return {_key(t.params) for t in self.trials() if t.state.is_finished()}

    def stale(self) -> list[optuna.trial.FrozenTrial]:
        """Trials a killed sweep had started and not finished."""
        return [t for t in self.trials() if t.state == TrialState.RUNNING]

    # ---- writing ----
    def _values(self, record: dict[str, Any]) -> list[float] | None:
        if record["status"] != "ok":
            return None
        values = [float(record["metrics"][o]) for o in self.plan.objectives]
        return values if all(math.isfinite(v) for v in values) else None

    def _attrs(self, record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if k != "point"}

    def add(self, record: dict[str, Any]) -> None:
        """A grid or random point, finished."""
        values = self._values(record)
        system = {f"constraints:{k}": v for k, v in (record.get("constraints") or {}).items()}
        trial = optuna.trial.create_trial(params=record["point"], distributions=self.distributions, values=values,
                                          user_attrs=self._attrs(record), system_attrs=system,
                                          state=TrialState.COMPLETE if values else TrialState.FAIL)
        self.study.add_trial(trial)

    def ask(self) -> optuna.trial.Trial:
        """A new point from the sampler (a RUNNING trial until ``tell``)."""
        return self.study.ask(self.distributions)

    def tell(self, number: int, record: dict[str, Any]) -> None:
        trial = optuna.trial.Trial(self.study, self.study._storage.get_trial_id_from_study_id_trial_number(
            self.study._study_id, number))
        for k, v in self._attrs(record).items():
            trial.set_user_attr(k, v)
        for k, v in (record.get("constraints") or {}).items():
            trial.set_constraint(k, v)
        values = self._values(record)
        self.study.tell(trial, values, state=TrialState.COMPLETE if values else TrialState.FAIL)

    def close(self) -> None:
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()


def records(folder: Path) -> list[dict[str, Any]]:
    """Every finished point of a results folder, as flat rows (for CSV / Parquet and the report)."""
    meta = json.loads((folder / META).read_text())
    storage = JournalStorage(JournalFileBackend(str(folder / JOURNAL), lock_obj=JournalFileOpenLock(
        str(folder / JOURNAL))))
    study = optuna.load_study(study_name=meta["name"], storage=storage)
    rows = []
    for t in study.get_trials(deepcopy=False):
        if not t.state.is_finished():
            continue
        a = t.user_attrs
        row: dict[str, Any] = {"trial": t.number, "status": a.get("status"), "feasible": a.get("feasible"),
                               "config_digest": a.get("config_digest"), "error": a.get("error")}
        row.update({f"axis.{k}": v for k, v in t.params.items()})
        row.update({f"metric.{k}": v for k, v in (a.get("metrics") or {}).items()})
        for label, run in (a.get("workloads") or {}).items():
            row.update({f"{label}.{k}": v for k, v in run.items()})
        row["wall_s"] = a.get("wall_s")
        row["finished_at"] = t.datetime_complete.isoformat() if t.datetime_complete else None
        rows.append(row)
    return rows


def pareto(rows: list[dict[str, Any]], objectives: list[str]) -> list[bool]:
    """Which rows are non-dominated among the feasible ok ones, on ``objectives`` (each in its direction)."""
    import numpy as np
    ok = [i for i, r in enumerate(rows) if r["status"] == "ok" and r.get("feasible", True)]
    flags = [False] * len(rows)
    if not ok:
        return flags
    sign = np.array([1.0 if METRICS[o].direction == "minimize" else -1.0 for o in objectives])
    x = np.array([[rows[i][f"metric.{o}"] for o in objectives] for i in ok], dtype=float) * sign
    for j, i in enumerate(ok):
        dominated = np.any(np.all(x <= x[j], axis=1) & np.any(x < x[j], axis=1))
        flags[i] = not bool(dominated)
    return flags


def export(folder: Path, plan: Plan) -> tuple[dict[str, Path], list[dict[str, Any]]]:
    """``points.csv`` and ``points.parquet``: one row per finished point, with its Pareto flag; the Pareto points'
    configs as ``configs/<digest>.yaml`` (``dsa generate --config`` and ``dsa fpga build`` take them). Returns the
    files and the rows."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    rows = records(folder)
    for row, flag in zip(rows, pareto(rows, plan.objectives), strict=True):
        row["pareto"] = flag
    configs = folder / "configs"
    configs.mkdir(exist_ok=True)
    for row in rows:
        if row["pareto"]:
            point = {k.removeprefix("axis."): v for k, v in row.items() if k.startswith("axis.")}
            row["config_file"] = str(configs / f"{row['config_digest']}.yaml")
            plan.config(point).save(row["config_file"])
    columns = list(dict.fromkeys(k for r in rows for k in r))
    table = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows]) if rows else pa.table({})
    paths = {"csv": folder / "points.csv", "parquet": folder / "points.parquet"}
    tmp = {k: p.with_suffix(p.suffix + ".tmp") for k, p in paths.items()}
    pacsv.write_csv(table, tmp["csv"])
    pq.write_table(table, tmp["parquet"])
    for k in paths:
        os.replace(tmp[k], paths[k])
    return paths, rows


__all__ = ["Store", "distributions", "export", "pareto", "records"]
