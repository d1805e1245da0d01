"""Shared fixtures: configs used across the suite, and one RTL build root for the whole session."""
from pathlib import Path

import pytest

from hwgen import config

ROOT = Path(__file__).resolve().parent.parent
BUILD_ROOT = ROOT / "build" / "rtl"   # reused across tests and runs: one Verilator build per config digest

# Small engines that differ in every timing-relevant parameter, and narrow accumulators that overflow.
VARIANTS = {
    "tiny": {"base": "tiny"},
    "odd": {"base": "tiny", "name": "odd", "engine": {"rows": 3, "lanes": 4, "scan_bytes": 8}, "l1": {"banks": 1}},
    "wrap16": {"base": "tiny", "name": "wrap16", "engine": {"acc_bits": 16, "overflow": "wrap"}},
    "sat16": {"base": "tiny", "name": "sat16", "engine": {"acc_bits": 16, "overflow": "saturate", "rows": 1}},
}


def variant(name: str) -> config.HwConfig:
    return config.from_dict(VARIANTS[name])


@pytest.fixture(scope="session")
def build_root() -> Path:
    return BUILD_ROOT
