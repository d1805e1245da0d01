"""How the command line talks to a person: error lines, progress of long work, and the log of an internal error.

Errors are printed as plain text (no rich markup: ``[a-z]`` or ``[rows, cols]`` in a message stays as written),
one line per problem, prefixed ``error:``. Long work (Verilog generation, Verilator builds, simulations) shows
a spinner with the stage and the seconds spent on a terminal, and one line per stage elsewhere (CI logs).
"""
from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.text import Text

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def error_lines(lines: list[str]) -> None:
    for line in lines:
        err.print(Text.assemble(("error:", "bold red"), " ", str(line)), soft_wrap=True)


def cache_dir() -> Path:
    """The per-user cache: ``$DSA_CACHE`` if set, else ``$XDG_CACHE_HOME/dsa`` (``~/.cache/dsa``)."""
    if os.environ.get("DSA_CACHE"):
        return Path(os.environ["DSA_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dsa"


def crash_log(exc: BaseException) -> Path:
    """Write the traceback of an unexpected error where the user can find it; returns the file."""
    folder = cache_dir() / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    path.write_text(f"dsa {' '.join(sys.argv[1:])}\n\n"
                    + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    return path


class Stages:
    """The stages of one long piece of work, shown as they happen (``stage(what)``), each with its time."""

    def __init__(self, console: Console = err):
        self.console, self.status, self.what, self.t0, self.last = console, None, None, time.perf_counter(), 0

    def __call__(self, what: str) -> None:
        self._close()
        self.what, self.t0, self.last = what, time.perf_counter(), 0
        if self.status is not None:
            self.status.update(f"{what} ...")
        elif not self.console.is_terminal:
            self.console.print(f"... {what}", markup=False, soft_wrap=True)

    def progress(self, done: int, total: int) -> None:
        """How far the current stage is (tasks of a long program): on the status line, or a log line per tenth."""
        if self.status is not None:
            self.status.update(f"{self.what} ({done}/{total} tasks, {time.perf_counter() - self.t0:.0f} s) ...")
        elif total >= 1000 and (10 * done // total) != (10 * self.last // total if total else 0):
            self.console.print(f"... {done}/{total} tasks", markup=False, soft_wrap=True)
        self.last = done

    def detail(self, text: str) -> None:
        """What the current stage is doing now (a tool's pass): on the status line only."""
        if self.status is not None:
            self.status.update(f"{self.what} ({text}) ...")

    def _close(self) -> None:
        if self.what is not None and self.console.is_terminal:
            self.console.print(Text(f"{self.what}: {time.perf_counter() - self.t0:.1f} s", style="dim"))
        self.what = None

    @contextmanager
    def shown(self) -> Iterator[Stages]:
        if self.console.is_terminal:
            with self.console.status("starting ...") as self.status:
                try:
                    yield self
                finally:
                    self._close()
                    self.status = None
        else:
            yield self
