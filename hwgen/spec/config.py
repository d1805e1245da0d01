"""HwConfig: the single description of the accelerator.

Everything else (RTL generator, simulator, golden model, CLI) reads hardware parameters from here and
nowhere else. The object is frozen and validated at construction; errors name the dotted field, the
value and what is allowed. This module imports neither Amaranth nor torch so anything can read it.

Presets are YAML files in ``hwgen/spec/presets`` written as differences from the base (the defaults below);
a user file may start from a preset with ``base: NAME``.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hwgen.spec.isa import THRESHOLD_MAX

PRESET_DIR = "presets"
#: scheduling policies of the ASA scheduler, in the order of their CSR code (``policy_code``)
POLICIES = ("in_order", "static_list", "adaptive")


class ConfigError(ValueError):
    """One or more problems in a configuration; ``problems`` has one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def _power_of_two(value: int, low: int, high: int) -> int:
    if value < low or value > high or value & (value - 1):
        raise ValueError(f"{value} is not allowed: must be a power of two in [{low}, {high}]")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class EngineConfig(_Section):
    """One DSA engine: R row units x L MAC lanes fed by a zero-detecting scanner."""

    rows: int = Field(4, ge=1, le=16, description="row units R; rows go to whichever unit is free")
    lanes: int = Field(16, description="MAC lanes L per row unit (columns of C per job)")
    scan_bytes: int = Field(64, description="A elements zero-detected per cycle per row unit (one L1 line)")
    operand_bits: Literal[8] = Field(8, description="A and B element width (int8; int4 is a later mode)")
    acc_bits: int = Field(32, ge=16, le=64, description="accumulator width of C")
    overflow: Literal["wrap", "saturate"] = Field("wrap", description="what the accumulator does past its range")
    threshold: int = Field(0, ge=0, le=THRESHOLD_MAX, description="default |a| below which A counts as zero")

    @field_validator("lanes")
    @classmethod
    def _lanes(cls, v: int) -> int:
        return _power_of_two(v, 2, 64)

    @field_validator("scan_bytes")
    @classmethod
    def _scan(cls, v: int) -> int:
        return _power_of_two(v, 8, 256)

    @model_validator(mode="after")
    def _scan_covers_lanes(self) -> EngineConfig:
        if self.scan_bytes < self.lanes:
            raise ValueError(f"scan_bytes: {self.scan_bytes} is not allowed: must be >= lanes "
                             f"({self.lanes}), since one L1 line holds a whole B segment")
        return self


class L1Config(_Section):
    """Per-engine scratchpad for operands, plus the output buffer that holds C."""

    bytes: int = Field(65536, description="operand scratchpad capacity")
    banks: int = Field(4, description="memories each read port's copy of the scratchpad is split into, interleaved "
                                      "by line (every read port has its own copy, so ports never conflict; "
                                      "1: one memory per copy, the fewest block RAMs)")
    out_bytes: int = Field(65536, description="output (accumulator) buffer capacity")

    @field_validator("banks")
    @classmethod
    def _banks(cls, v: int) -> int:
        return _power_of_two(v, 1, 16)

    @field_validator("bytes", "out_bytes")
    @classmethod
    def _size(cls, v: int) -> int:
        return _power_of_two(v, 256, 1 << 26)


class AttentionConfig(_Section):
    """The top-k + integer-softmax unit of the engine (top-k sparse attention)."""

    topk_max: int = Field(16, ge=1, le=64, description="largest k per query row the unit can keep")
    frac_bits: int = Field(8, ge=4, le=10, description="fractional bits of the scores fed to the softmax")


class HbmConfig(_Section):
    """HBM outside the chip (HBM3e defaults: one stack, 16 channels x 2 pseudo-channels, ~1.2 TB/s).

    Timings in ns (JEDEC-style names); the timing model in sim/model/memory/hbm.py is the one user."""

    stacks: int = Field(1, ge=1, le=8)
    channels: int = Field(16, description="channels per stack")
    pseudo_channels: int = Field(2, description="pseudo-channels per channel")
    bank_groups: int = Field(4, description="bank groups per pseudo-channel")
    banks_per_group: int = Field(4)
    row_bytes: int = Field(1024, description="row (page) size of one pseudo-channel bank")
    access_bytes: int = Field(32, description="bytes of one pseudo-channel access (one burst)")
    pin_gbps: float = Field(9.6, gt=0, le=20, description="data rate per pin")
    pc_bits: int = Field(32, description="data pins per pseudo-channel (1024 per stack)")
    tRCD_ns: float = Field(14.0, gt=0)
    tCL_ns: float = Field(14.0, gt=0)
    tRP_ns: float = Field(14.0, gt=0)
    tRAS_ns: float = Field(33.0, gt=0)
    tRRD_S_ns: float = Field(2.0, gt=0)
    tRRD_L_ns: float = Field(3.0, gt=0)
    tFAW_ns: float = Field(30.0, gt=0)
    tCCD_S_ns: float = Field(0.833, gt=0, description="= one 32-byte burst at 9.6 Gb/s on 32 pins")
    tCCD_L_ns: float = Field(2.0, gt=0)
    tWR_ns: float = Field(16.0, gt=0)
    tRFC_ns: float = Field(260.0, gt=0)
    tREFI_ns: float = Field(3900.0, gt=0)
    pj_per_bit: float = Field(5.0, gt=0, description="energy per bit moved (vendor figures span 4-7)")
    controller_ns: float = Field(20.0, ge=0, description="PHY + controller + interconnect latency added to "
                                 "every access (on top of the DRAM timings)")

    @field_validator("channels", "pseudo_channels", "bank_groups", "banks_per_group")
    @classmethod
    def _counts(cls, v: int) -> int:
        return _power_of_two(v, 1, 64)

    @field_validator("row_bytes", "access_bytes")
    @classmethod
    def _bytes(cls, v: int) -> int:
        return _power_of_two(v, 16, 1 << 16)

    @field_validator("pc_bits")
    @classmethod
    def _pins(cls, v: int) -> int:
        return _power_of_two(v, 8, 1024)

    @model_validator(mode="after")
    def _shape(self) -> "HbmConfig":
        if self.access_bytes > self.row_bytes:
            raise ValueError(f"access_bytes: {self.access_bytes} is not allowed: must be <= row_bytes "
                             f"({self.row_bytes})")
        if self.tRAS_ns < self.tRCD_ns:
            raise ValueError(f"tRAS_ns: {self.tRAS_ns} is not allowed: must be >= tRCD_ns ({self.tRCD_ns})")
        return self

    @property
    def pseudo_channels_total(self) -> int:
        return self.stacks * self.channels * self.pseudo_channels

    @property
    def peak_gbytes_per_s(self) -> float:
        """Pin bandwidth: pseudo-channels x pins x Gb/s / 8."""
        return self.pseudo_channels_total * self.pc_bits * self.pin_gbps / 8


class MemoryConfig(_Section):
    """The memory hierarchy beyond L1: HBM, and the pages tensors live in (hwgen/spec/page_table.py).

    The TLB has ``tlb_entries`` entries in ``tlb_sets`` sets of ``tlb_entries // tlb_sets`` ways (LRU within
    a set; the set is the low bits of the virtual page number); the default, one set, is fully associative."""

    hbm: HbmConfig = HbmConfig()
    ports: int = Field(1, description="AXI4 master ports to HBM (m_axi_hbm<i>_*), one data beat = one L1 line")
    interleave_bytes: int = Field(4096, description="address granularity rotated over the ports; no burst "
                                  "crosses it")
    burst_beats: int = Field(16, description="longest INCR burst the DMA issues (AXI4 allows 256)")
    outstanding: int = Field(4, description="bursts in flight per direction per engine (AXI IDs)")
    page_bytes: int = Field(65536, description="page size; tensors start on a page and own whole pages")
    tlb_entries: int = Field(32, description="translations the TLB holds")
    tlb_sets: int = Field(1, description="TLB sets (1: fully associative)")

    @field_validator("page_bytes")
    @classmethod
    def _page(cls, v: int) -> int:
        return _power_of_two(v, 4096, 1 << 30)

    @field_validator("ports", "outstanding")
    @classmethod
    def _ports(cls, v: int) -> int:
        return _power_of_two(v, 1, 32)

    @field_validator("interleave_bytes")
    @classmethod
    def _interleave(cls, v: int) -> int:
        return _power_of_two(v, 64, 1 << 30)

    @field_validator("burst_beats")
    @classmethod
    def _burst(cls, v: int) -> int:
        return _power_of_two(v, 1, 256)

    @field_validator("tlb_entries", "tlb_sets")
    @classmethod
    def _tlb(cls, v: int) -> int:
        return _power_of_two(v, 1, 1024)

    @model_validator(mode="after")
    def _tlb_shape(self) -> "MemoryConfig":
        if self.tlb_sets > self.tlb_entries:
            raise ValueError(f"tlb_sets: {self.tlb_sets} is not allowed: must be <= tlb_entries "
                             f"({self.tlb_entries})")
        return self

    @property
    def tlb_ways(self) -> int:
        return self.tlb_entries // self.tlb_sets


class L3Config(_Section):
    """The cache shared by the engines, between their DMA and the HBM ports (hwgen/rtl/memory/l3_cache.py, timed by
    sim/model/memory/l3.py).

    ``bytes / (line_bytes x ways)`` sets, interleaved over ``banks`` RAMs by set (low set bits); a miss takes
    an MSHR until its line is back (a later access to a line still in flight is a hit)."""

    enabled: bool = Field(True, description="false: the DMA talks to HBM directly")
    bytes: int = Field(128 << 20, description="capacity")
    line_bytes: int = Field(64, description="line (block) size; a multiple of one DMA beat")
    ways: int = Field(16, description="associativity")
    banks: int = Field(16, description="tag and data RAMs per array, interleaved by set (set % banks), each "
                       "sets / banks rows deep; the tag stage still takes one access per cycle, so banking only "
                       "shortens the reset clear of the tags to sets / banks cycles")
    mshrs: int = Field(64, ge=1, le=256, description="misses in flight (non-blocking cache)")
    replacement: Literal["lru", "random"] = Field("lru", description="victim choice within a set")
    write_policy: Literal["write_back", "write_through"] = Field("write_back")
    bypass: Literal["none", "streaming"] = Field("none", description="streaming: loads marked read-once skip "
                                                 "allocation (they still hit lines already present)")
    hit_cycles: int | None = Field(None, ge=1, le=256, description="tag + data access of a hit; unset: derived from "
                                   "one slice's size and the clock (a big SRAM is far away: hwgen/spec/costs.py)")

    @field_validator("bytes")
    @classmethod
    def _l3_size(cls, v: int) -> int:
        return _power_of_two(v, 1024, 1 << 32)

    @field_validator("line_bytes")
    @classmethod
    def _line(cls, v: int) -> int:
        return _power_of_two(v, 16, 1 << 16)

    @field_validator("ways", "banks")
    @classmethod
    def _assoc(cls, v: int) -> int:
        return _power_of_two(v, 1, 256)

    @model_validator(mode="after")
    def _shape(self) -> "L3Config":
        if self.bytes < self.line_bytes * self.ways * self.banks:
            raise ValueError(f"bytes: {self.bytes} is too small: must hold at least one set per bank "
                             f"(line_bytes x ways x banks = {self.line_bytes * self.ways * self.banks})")
        return self

    @property
    def sets(self) -> int:
        return self.bytes // (self.line_bytes * self.ways)


class EnergyConfig(_Section):
    """Energy per operation and per access, for the stats (defaults: Horowitz ISSCC 2014, 45 nm; HBM energy
    is ``memory.hbm.pj_per_bit``)."""

    mac_pj: float = Field(0.3, ge=0, description="int8 multiply (0.2) + int32 accumulate (0.1)")
    l1_pj_per_64b: float = Field(20.0, ge=0, description="64-bit read or write of a 32 KB SRAM bank")
    out_pj_per_64b: float = Field(20.0, ge=0, description="64-bit access of the output buffer")
    l3_pj_per_64b: float | None = Field(None, ge=0, description="64-bit access of the L3's array; unset: derived "
                                        "from one slice's size (hwgen/spec/costs.py, Horowitz's SRAM figures)")


class ClockConfig(_Section):
    mhz: float = Field(1000.0, gt=0, le=5000, description="clock used to turn cycles into time")


class BoardConfig(_Section):
    """What a board build adds around the chip (``hwgen/rtl/board/``): on-chip RAM standing in for HBM behind the
    AXI port(s), and the UART host link. Only board builds (``dsa fpga build``) and their testbenches use it."""

    target: Literal["none", "ulx3s", "icebreaker", "u55c"] = Field(
        "none", description="the board the preset is sized for (none: a model, not built for a board)")
    memory_bytes: int = Field(131072, description="on-chip RAM behind the HBM port(s) on a board without HBM")
    uart_baud: int = Field(115200, ge=1200, le=3_000_000, description="host link bit rate")

    @field_validator("memory_bytes")
    @classmethod
    def _memory(cls, v: int) -> int:
        return _power_of_two(v, 4096, 1 << 30)


class SchedulerConfig(_Section):
    """The ASA task scheduler and the engines it feeds (``hwgen/rtl/scheduler/asa.py``, modelled by
    ``sim/model/chip.py``).

    A program is a DAG of tasks (kernel tiles); the table, successor lists and descriptors are read from HBM
    into on-chip RAMs of the sizes below, so a program larger than any of them is refused by the compiler."""

    engines: int = Field(4, ge=1, le=16, description="DSA engines the scheduler issues tasks to")
    policy: Literal[POLICIES] = Field(
        "adaptive", description="in_order: table order; static_list: compiler's critical-path rank; adaptive: "
                                "rank rescaled by the measured/estimated time of the task that released it")
    window: int = Field(16, description="tasks held at once (loaded in table order, freed on completion)")
    tasks: int = Field(256, description="task-table entries")
    successors: int = Field(1024, description="successor-list entries, over the whole program")
    descriptors: int = Field(2048, description="engine descriptors, over the whole program")
    predicates: int = Field(64, description="predicate bits gate tasks write and predicated tasks read")

    @field_validator("window")
    @classmethod
    def _window(cls, v: int) -> int:
        return _power_of_two(v, 2, 64)

    @field_validator("tasks", "successors", "descriptors")
    @classmethod
    def _tables(cls, v: int) -> int:
        return _power_of_two(v, 16, 65536)

    @field_validator("predicates")
    @classmethod
    def _predicates(cls, v: int) -> int:
        return _power_of_two(v, 8, 256)


class HwConfig(_Section):
    """The whole accelerator."""

    name: str = Field("base", pattern=r"^[a-z][a-z0-9_]{0,31}$")
    engine: EngineConfig = EngineConfig()
    l1: L1Config = L1Config()
    attention: AttentionConfig = AttentionConfig()
    memory: MemoryConfig = MemoryConfig()
    l3: L3Config = L3Config()
    scheduler: SchedulerConfig = SchedulerConfig()
    energy: EnergyConfig = EnergyConfig()
    clock: ClockConfig = ClockConfig()
    board: BoardConfig = BoardConfig()

    @model_validator(mode="after")
    def _cross_checks(self) -> HwConfig:
        problems = []
        min_l1 = self.l1.banks * self.line_bytes * 2
        if self.l1.bytes < min_l1:
            problems.append(f"l1.bytes: {self.l1.bytes} is too small: must hold one double-buffered tile, "
                            f">= banks x line x 2 = {min_l1}")
        if self.memory.interleave_bytes < self.line_bytes:
            problems.append(f"memory.interleave_bytes: {self.memory.interleave_bytes} is not allowed: must be >= "
                            f"one L1 line ({self.line_bytes}), the AXI beat")
        if self.l3.line_bytes < self.line_bytes:
            problems.append(f"l3.line_bytes: {self.l3.line_bytes} is not allowed: must be >= one L1 line "
                            f"({self.line_bytes}), the DMA beat")
        if self.l3.line_bytes < self.memory.hbm.access_bytes:
            problems.append(f"l3.line_bytes: {self.l3.line_bytes} is not allowed: must be >= "
                            f"memory.hbm.access_bytes ({self.memory.hbm.access_bytes})")
        if self.memory.page_bytes % self.l3.line_bytes:
            problems.append(f"memory.page_bytes: {self.memory.page_bytes} is not allowed: must be a multiple of "
                            f"l3.line_bytes ({self.l3.line_bytes})")
        if self.l1.out_bytes * 8 < self.out_line_bits * 2:
            problems.append(f"l1.out_bytes: {self.l1.out_bytes} is too small: must hold >= 2 output lines "
                            f"of {self.out_line_bits // 8} bytes")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # ---- derived values: never store these, always ask the config ----
    @property
    def line_bytes(self) -> int:
        """L1 line: one scan word of A, or scan_bytes/lanes B segments."""
        return self.engine.scan_bytes

    @property
    def l1_lines(self) -> int:
        return self.l1.bytes // self.line_bytes

    @property
    def lines_per_bank(self) -> int:
        return self.l1_lines // self.l1.banks

    @property
    def l1_read_ports(self) -> int:
        """An engine's L1 read ports: 3 per row unit (A, values / indices, B), 2 for the result writer (requant
        multipliers and shifts), 1 for the STORE. The scratchpad keeps one copy of its banks per port."""
        return 3 * self.engine.rows + 3

    @property
    def out_line_bits(self) -> int:
        """One output line = one job's result: L accumulators."""
        return self.engine.lanes * self.engine.acc_bits

    @property
    def out_lines(self) -> int:
        return self.l1.out_bytes * 8 // self.out_line_bits

    @property
    def beat_bytes(self) -> int:
        """AXI data width of the DMA and the HBM ports: one L1 line per beat."""
        return self.line_bytes

    @property
    def axi_id_bits(self) -> int:
        return max(1, (self.memory.outstanding - 1).bit_length())

    @property
    def l3_slice_bytes(self) -> int:
        """The capacity of one L3 slice (one per HBM port): the array one request reaches."""
        return self.l3.bytes // self.memory.ports

    @property
    def l3_hit_cycles(self) -> int:
        """``l3.hit_cycles``, or where it is unset the SRAM latency of one slice at this clock
        (``costs.sram_latency_ns``), at least the RTL cache's shortest path."""
        if self.l3.hit_cycles is not None:
            return self.l3.hit_cycles
        from hwgen.spec.costs import sram_latency_ns
        from hwgen.spec.l3 import MIN_HIT_CYCLES
        return max(MIN_HIT_CYCLES, math.ceil(round(sram_latency_ns(self.l3_slice_bytes) * self.clock.mhz / 1000, 9)))

    @property
    def l3_pj_per_64b(self) -> float:
        """``energy.l3_pj_per_64b``, or where it is unset the energy of a 64-bit access to one slice's array
        (``costs.sram_pj_per_64b``)."""
        if self.energy.l3_pj_per_64b is not None:
            return self.energy.l3_pj_per_64b
        from hwgen.spec.costs import sram_pj_per_64b
        return sram_pj_per_64b(self.l3_slice_bytes)

    @property
    def macs_per_cycle(self) -> int:
        return self.engine.rows * self.engine.lanes

    @property
    def acc_min(self) -> int:
        return -(1 << (self.engine.acc_bits - 1))

    @property
    def acc_max(self) -> int:
        return (1 << (self.engine.acc_bits - 1)) - 1

    @property
    def build_name(self) -> str:
        return f"{self.name}-{self.digest()}"

    def digest(self) -> str:
        """Short content hash naming builds and results; the same config always gives the same digest."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:10]

    def numeric(self) -> dict[str, Any]:
        """The numbers the golden model needs, as plain values."""
        return {"acc_bits": self.engine.acc_bits, "overflow": self.engine.overflow}

    # ---- YAML in/out ----
    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml())


# ---------------------------------------------------------------------------------------------------
# construction with readable errors

def _format_errors(err: ValidationError) -> list[str]:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-after"))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            parent = loc.rpartition(".")[0]
            allowed = _allowed_keys(parent)
            lines.append(f"{loc}: unknown key (allowed: {', '.join(allowed)})")
        elif e["type"] == "literal_error":
            hint = " (YAML 1.1 reads unquoted yes/no/on/off as booleans: quote the value)" \
                if isinstance(e["input"], bool) else ""
            lines.append(f"{loc}: {e['input']!r} is not allowed: {msg}{hint}")
        elif e["type"] == "value_error" and re.match(r"^[A-Za-z0-9_.]+: ", msg):
            # model-level checks name their own field(s) relative to the section they live in
            lines.extend(f"{loc}.{part}" if loc else part for part in msg.split("; "))
        elif e["type"] == "value_error":
            lines.append(f"{loc}: {e['input']!r} {msg}" if "is not allowed" not in msg else f"{loc}: {msg}")
        else:
            lines.append(f"{loc}: {e['input']!r} is not allowed: {msg}")
    return lines


def _allowed_keys(dotted: str) -> list[str]:
    model: type[BaseModel] = HwConfig
    for part in filter(None, dotted.split(".")):
        model = model.model_fields[part].annotation  # type: ignore[assignment]
    return list(model.model_fields)


def from_dict(data: dict[str, Any]) -> HwConfig:
    """A config from plain data; ``base: PRESET`` starts from that preset instead of the defaults."""
    if not isinstance(data, dict):
        raise ConfigError([f"config: top level must be a mapping, got {type(data).__name__}"])
    data = _resolve(dict(data), "config") if "base" in data else data
    try:
        return HwConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(err)) from None


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of keeping the last one."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    keys = [loader.construct_object(k, deep=True) for k, _ in node.value]
    for index, (key_node, _) in enumerate(node.value):
        if keys[index] in keys[:index]:
            where = f"{key_node.start_mark.name}, line {key_node.start_mark.line + 1}"
            raise ConfigError([f"{_path_to(loader, node, keys[index])}: duplicate key ({where})"])
    return {key: loader.construct_object(v, deep=deep) for key, (_, v) in zip(keys, node.value, strict=True)}


def _path_to(loader: _StrictLoader, target: yaml.MappingNode, key: Any) -> str:
    """Dotted path of ``key`` inside ``target``, searched from the document root."""
    def walk(node, prefix):
        if node is target:
            return prefix + [str(key)]
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                found = walk(v, prefix + [str(k.value)])
                if found:
                    return found
        return None
    return ".".join(walk(loader._root, []) or [str(key)])


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def read_yaml(text: str, origin: str) -> dict[str, Any]:
    loader = _StrictLoader(text)
    loader.name = origin
    try:
        loader._root = loader.get_single_node()
        data = loader.construct_document(loader._root) if loader._root is not None else None
    except yaml.YAMLError as err:   # one line: where, and what the parser expected
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1} column {mark.column + 1}" if mark else ""
        what = " ".join(str(x) for x in (getattr(err, "context", None), getattr(err, "problem", None)) if x) or err
        raise ConfigError([f"{origin}{where}: not valid YAML ({what})"]) from None
    finally:
        loader.dispose()
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{origin}: top level must be a mapping, got {type(data).__name__}"])
    return data


def merge(base: dict[str, Any], diff: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in diff.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def changed(cfg: HwConfig, diff: dict[str, Any]) -> HwConfig:
    """``cfg`` with the fields of ``diff`` (nested by section, e.g. ``{"clock": {"mhz": 50}}``) changed, validated
    again: a bad value raises ``ConfigError`` naming the field."""
    return from_dict(merge(cfg.model_dump(), diff))


def preset_names() -> list[str]:
    return sorted(p.name.removesuffix(".yaml")
                  for p in resources.files(__package__).joinpath(PRESET_DIR).iterdir() if p.name.endswith(".yaml"))


def _resolve(data: dict[str, Any], origin: str, depth: int = 0) -> dict[str, Any]:
    """Apply ``base: PRESET`` chains; the innermost base is the defaults of HwConfig."""
    base_name = data.pop("base", None)
    if base_name is None:
        return data
    if depth > 8:
        raise ConfigError([f"{origin}: base chain deeper than 8 presets (a loop?)"])
    if base_name not in preset_names():
        raise ConfigError([f"base: {base_name!r} is not a preset (allowed: {', '.join(preset_names())})"])
    text = resources.files(__package__).joinpath(PRESET_DIR, f"{base_name}.yaml").read_text()
    return merge(_resolve(read_yaml(text, base_name), base_name, depth + 1), data)


def load(name_or_path: str | Path) -> HwConfig:
    """A preset name (``tiny``, ``default``) or a YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.exists():
            raise ConfigError([f"config: file {str(path)!r} does not exist"])
        if not path.is_file():
            raise ConfigError([f"config: {str(path)!r} is not a file"])
        try:
            data = read_yaml(path.read_text(), str(path))
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError([f"config: cannot read {str(path)!r} ({getattr(e, 'strerror', None) or e})"]) from None
        if not data:
            raise ConfigError([f"config: {str(path)!r} is empty (allowed: differences from a preset, e.g. "
                               "'base: tiny', or the fields to set)"])
        origin = str(path)
    elif str(name_or_path) in preset_names():
        data = {"base": str(name_or_path)}
        origin = str(name_or_path)
    else:
        raise ConfigError([f"config: {str(name_or_path)!r} is neither a preset "
                           f"(allowed: {', '.join(preset_names())}) nor a YAML file"])
    return from_dict(_resolve(data, origin))  # base already applied


def policy_code(name: str) -> int:
    """The CSR encoding of a scheduling policy."""
    return POLICIES.index(name)


def check_memory_side(cfg: HwConfig) -> None:
    """Refuse what the memory side cannot build (the generator and the simulator both ask; the CLI when it loads a
    config): raises ``ConfigError`` with one line per problem.

    With the L3 and ``memory.ports`` P > 1 the cache is cut into P slices, one in front of each HBM port
    (``hwgen/rtl/top.py``): address ``a`` lives in slice ``(a // interleave_bytes) % P``, each slice holds
    ``l3.bytes / P`` with the same ways, line and banks. So an interleave chunk must hold whole L3 lines, a slice
    one set per bank, and each port must own its HBM pseudo-channels (the HBM model puts consecutive
    ``access_bytes`` on consecutive pseudo-channels, ``sim/model/memory/hbm.py``): the slices then share nothing
    down to the DRAM, which is what lets the simulator time each slice on its own, cycle for cycle."""
    P = cfg.memory.ports
    if not cfg.l3.enabled or P == 1:
        return
    c3, mem = cfg.l3, cfg.memory
    problems = []
    if mem.interleave_bytes < c3.line_bytes:
        problems.append(f"memory.interleave_bytes: {mem.interleave_bytes} is not allowed with the L3 on {P} ports: "
                        f"must be >= l3.line_bytes ({c3.line_bytes}), so that a line lives in one port's L3 slice")
    per_slice, one_set = c3.bytes // P, c3.line_bytes * c3.ways * c3.banks
    if per_slice < one_set:
        problems.append(f"l3.bytes: {c3.bytes} is too small for {P} slices (memory.ports): each slice (l3.bytes / "
                        f"ports = {per_slice}) must hold one set per bank (line_bytes x ways x banks = {one_set})")
    group = mem.hbm.access_bytes * mem.hbm.pseudo_channels_total
    if mem.interleave_bytes * P > group:
        problems.append(f"memory.interleave_bytes: {mem.interleave_bytes} is not allowed with the L3 on {P} ports: "
                        f"must be <= {group // P} (memory.hbm.access_bytes x pseudo-channels / ports = {group} / {P}), "
                        "so that each port and its L3 slice own their HBM pseudo-channels")
    if problems:
        raise ConfigError(problems)
