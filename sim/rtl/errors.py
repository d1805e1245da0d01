"""What running the generated Verilog can fail with; light to import (the CLI catches these before it has
imported Amaranth or cocotb)."""
from __future__ import annotations

from pathlib import Path


class ToolchainError(RuntimeError):
    """Verilator, cocotb or a C++ toolchain is missing; the message says what to install."""


class RtlError(RuntimeError):
    """The build or simulation failed (timeout, crash, a failed check); the message names the program and the
    log."""

    def __init__(self, message: str, log: Path | None = None):
        super().__init__(message)
        self.log = log  # kept on disk for a look; its folder may be deleted
