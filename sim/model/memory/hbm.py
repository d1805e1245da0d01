"""HBM timing model, written once: the simulator's DMA and the cocotb AXI memory answer with this model.

Everything comes from ``HwConfig.memory.hbm`` (organisation, timings in ns, pin rate, energy) and
``HwConfig.clock.mhz``; nothing is copied by hand.

Time
----
Results are engine clock cycles. ``HbmTiming.of(cfg)`` converts every timing once from ns to engine cycles,
rounding up (14 ns at 300 MHz = ceil(4.2) = 5 cycles). The model itself runs on a finer integer *tick*
(``ticks_per_cycle`` ticks per engine cycle, 120 by default) so that what is shorter than an engine cycle at
ASIC clocks keeps its length: the data burst of one access (32 B over 32 pins at 9.6 Gb/s = 0.83 ns) and the
column-to-column spacing tCCD_S/L are rounded up to ticks, not to cycles. Every other timing is a whole
number of engine cycles (in ticks: cycles x ticks_per_cycle). A completion is reported as the first engine
cycle at or after the end of the request's last data beat: ``ceil(end_tick / ticks_per_cycle)``.

Address map (``AddressMap``, default ``order=("pseudo_channel", "bank_group", "column", "bank")``)
-----------------------------------------------------------------------------------------------
``interleave`` bytes (default ``access_bytes``) stay together; consecutive interleave chunks rotate over
the pseudo-channels first (all ``stacks x channels x pseudo_channels`` of them), then over the bank groups,
then walk the columns of a row, then the banks of a group; rows are above everything::

    address = ((((row * banks + bank) * col_blocks + col_block) * bank_groups + bank_group)
               * pseudo_channels_total + pseudo_channel) * interleave + offset

``column`` is returned in accesses within the row: ``col_block * (interleave // access_bytes) +
offset // access_bytes``. Columns sit below banks so that a sequential stream keeps one row open in each
bank group and moves to the next bank (whose activate the controller issued long before) every
``row_bytes * bank_groups`` bytes of a pseudo-channel; with banks below columns (``order=(..., "bank",
"column")``) all 16 banks of a pseudo-channel change rows within a few ns and the tFAW window stalls the
stream (default config: 64 % of peak instead of 78 %).

Controller (one per pseudo-channel, independent of the others)
-------------------------------------------------------------
Requests wider than one access are split into ``access_bytes`` accesses of consecutive addresses. The
accesses of one pseudo-channel are served in arrival order (ties: request order, then address order):
column commands (and so data) leave in that order. Open-page policy: a row stays open until another row of
the same bank is needed or a refresh closes every bank. Row commands look ahead: an access enters the
controller queue at ``max(arrival, column command of the access queue_depth places earlier)`` and may
precharge/activate from then on, so activates of later accesses overlap the data of earlier ones.
Activates are issued in queue order (so a row conflict on a busy bank also holds back the activates
behind it: random rows reach ~6 % of peak, below the ~11 % that tFAW alone would allow).

Constraint table (``t`` = the command's issue time; "last" = the last one issued in this pseudo-channel)

========================  ==================================================================================
command                   earliest issue time = max of
========================  ==================================================================================
PRE (row conflict)        enter; ACT(bank) + tRAS; every READ(bank) + tRTP; every WRITE(bank) data end + tWR
ACT                       enter; PRE(bank) + tRP (conflict) ; refresh end; last ACT + tRRD_S;
                          last ACT in the same bank group + tRRD_L; 4th-last ACT + tFAW
READ / WRITE (column)     enter; ACT(bank) + tRCD; last column + tCCD_S; last column in the same bank group
                          + tCCD_L; data bus free - tCL (no two bursts overlap on the data pins)
data                      column + tCL (reads and writes alike) .. + burst (access_bytes*8 / (pc_bits*pin))
REF (every tREFI)         due time k*tREFI; if a bank is open: PRE-all at max(due, every PRE bound above),
                          REF at PRE-all + tRP; the pseudo-channel is busy for tRFC, all banks closed after
========================  ==================================================================================

A refresh is taken before the first access whose first command (PRE, ACT or column) would issue at or after
the refresh's due time; the due times stay on the k*tREFI grid however late a refresh starts.
_S / _L: different / same bank group (JEDEC). With the default config the column cadence, not the pins,
bounds a stream: tCCD_S_ns = 1.0 > the 0.83 ns burst caps a pseudo-channel at 83.3 % of pin bandwidth, and
refresh takes ~7.8 % of that (``HbmTiming.column_limit_bytes_per_cycle``).
Not in the config, so stand-ins (report: add them to ``memory.hbm``): write latency = tCL (no tWL),
tRTP = tCCD_L, no read/write turnaround (tWTR, tRTW), no per-bank refresh, no row count (rows unbounded).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwgen.spec.config import HbmConfig, HwConfig

TIMINGS = ("tRCD", "tCL", "tRP", "tRAS", "tRRD_S", "tRRD_L", "tFAW", "tCCD_S", "tCCD_L", "tWR", "tRFC", "tREFI")
SUB_CYCLE = ("tCCD_S", "tCCD_L")           # kept at tick resolution in the model (see module docstring)
FIELDS = ("pseudo_channel", "bank_group", "column", "bank")
DEFAULT_ORDER = FIELDS
REQUEST_DTYPE = np.dtype([("arrival", "<i8"), ("address", "<i8"), ("is_write", "?"), ("bytes", "<i8")])
NEVER = -(1 << 62)                           # "no earlier command": far enough in the past for every bound


def _ceil(x: float) -> int:
    """Round up, ignoring float noise below 1e-9 (14 ns x 1000 MHz / 1000 must stay 14)."""
    return math.ceil(round(x, 9))


def _hbm(cfg: HwConfig | HbmConfig) -> HbmConfig:
    return cfg if isinstance(cfg, HbmConfig) else cfg.memory.hbm


# ---------------------------------------------------------------------------------------------------
# timings

@dataclass(frozen=True)
class HbmTiming:
    """The HBM timings in engine cycles at ``mhz`` (rounded up), and what follows from them."""

    mhz: float
    ticks_per_cycle: int
    access_bytes: int
    pseudo_channels: int                   # all of them: stacks x channels x pseudo-channels
    bank_groups: int
    banks_per_group: int
    columns: int                           # accesses per row
    burst_ns: float                        # one access on the data pins
    pj_per_bit: float
    tRCD: int
    tCL: int
    tRP: int
    tRAS: int
    tRRD_S: int
    tRRD_L: int
    tFAW: int
    tCCD_S: int
    tCCD_L: int
    tWR: int
    tRFC: int
    tREFI: int
    tCCD_S_ticks: int
    tCCD_L_ticks: int
    burst_ticks: int

    @classmethod
    def of(cls, cfg: HwConfig, ticks_per_cycle: int = 120) -> HbmTiming:
        if ticks_per_cycle < 1:
            raise ValueError(f"ticks_per_cycle: {ticks_per_cycle} is not allowed: must be >= 1")
        h, mhz = cfg.memory.hbm, cfg.clock.mhz
        cycles = {name: _ceil(getattr(h, f"{name}_ns") * mhz / 1000) for name in TIMINGS}
        if cycles["tRFC"] >= cycles["tREFI"]:
            raise ValueError(f"memory.hbm.tRFC_ns: {h.tRFC_ns} is not allowed: must be < tREFI_ns ({h.tREFI_ns})")
        burst_ns = h.access_bytes * 8 / (h.pc_bits * h.pin_gbps)
        ticks = {f"{name}_ticks": _ceil(getattr(h, f"{name}_ns") * mhz / 1000 * ticks_per_cycle)
                 for name in SUB_CYCLE}
        return cls(mhz=mhz, ticks_per_cycle=ticks_per_cycle, access_bytes=h.access_bytes,
                   pseudo_channels=h.pseudo_channels_total, bank_groups=h.bank_groups,
                   banks_per_group=h.banks_per_group, columns=h.row_bytes // h.access_bytes,
                   burst_ns=burst_ns, pj_per_bit=h.pj_per_bit, **cycles, **ticks,
                   burst_ticks=_ceil(burst_ns * mhz / 1000 * ticks_per_cycle))

    @property
    def cycles(self) -> dict[str, int]:
        """Every timing in engine cycles, by JEDEC name."""
        return {name: getattr(self, name) for name in TIMINGS}

    @property
    def banks(self) -> int:
        """Banks per pseudo-channel."""
        return self.bank_groups * self.banks_per_group

    @property
    def burst_cycles(self) -> float:
        """Engine cycles the data pins of one pseudo-channel are busy per access (0.83 at 1 GHz default)."""
        return self.burst_ns * self.mhz / 1000

    @property
    def data_cycles(self) -> int:
        """Whole cycles from the first data beat of a lone access to its completion."""
        return _ceil(self.burst_cycles)

    @property
    def pc_peak_bytes_per_cycle(self) -> float:
        return self.access_bytes / self.burst_cycles

    @property
    def peak_bytes_per_cycle(self) -> float:
        """Pin bandwidth of all pseudo-channels per engine cycle."""
        return self.pseudo_channels * self.pc_peak_bytes_per_cycle

    @property
    def peak_gbytes_per_s(self) -> float:
        return self.peak_bytes_per_cycle * self.mhz / 1000

    @property
    def column_limit_bytes_per_cycle(self) -> float:
        """What a pseudo-channel can reach when column commands alternate bank groups (tCCD_S bound)."""
        ticks = max(self.tCCD_S_ticks, self.burst_ticks)
        return self.pseudo_channels * self.access_bytes * self.ticks_per_cycle / ticks

    @property
    def closed_read_cycles(self) -> int:
        """A lone read to a precharged bank: ACT, tRCD, READ, tCL, data."""
        return self.tRCD + self.tCL + self.data_cycles

    @property
    def hit_read_cycles(self) -> int:
        """A lone read to the open row."""
        return self.tCL + self.data_cycles

    @property
    def conflict_read_cycles(self) -> int:
        """A lone read to another row of an open bank whose tRAS has passed."""
        return self.tRP + self.tRCD + self.tCL + self.data_cycles

    def ticks(self) -> dict[str, int]:
        """Everything the controller loop needs, in ticks."""
        k = self.ticks_per_cycle
        out = {name: getattr(self, name) * k for name in TIMINGS}
        out.update(tCCD_S=self.tCCD_S_ticks, tCCD_L=self.tCCD_L_ticks, burst=self.burst_ticks,
                   tRTP=self.tCCD_L_ticks)
        return out


# ---------------------------------------------------------------------------------------------------
# address map

@dataclass(frozen=True)
class AddressMap:
    """Byte address <-> (pseudo_channel, bank_group, bank, row, column); see the module docstring."""

    access_bytes: int
    interleave: int
    radix: dict[str, int]
    order: tuple[str, ...]

    @classmethod
    def of(cls, cfg: HwConfig | HbmConfig, interleave: int | None = None,
           order: tuple[str, ...] = DEFAULT_ORDER) -> AddressMap:
        h = _hbm(cfg)
        g = h.access_bytes if interleave is None else interleave
        if not isinstance(g, int) or g < h.access_bytes or g > h.row_bytes or g & (g - 1):
            raise ValueError(f"interleave: {g!r} is not allowed: must be a power of two in "
                             f"[access_bytes, row_bytes] = [{h.access_bytes}, {h.row_bytes}]")
        if sorted(order) != sorted(FIELDS):
            raise ValueError(f"order: {order!r} is not allowed: must be a permutation of {FIELDS} "
                             f"(the row is always above them)")
        radix = {"pseudo_channel": h.pseudo_channels_total, "bank_group": h.bank_groups,
                 "column": h.row_bytes // g, "bank": h.banks_per_group}
        return cls(h.access_bytes, g, radix, tuple(order))

    def map(self, address: Any) -> tuple[np.ndarray, ...]:
        """(pseudo_channel, bank_group, bank, row, column) of each address (column in accesses)."""
        a = np.asarray(address, dtype=np.int64)
        if a.size and int(a.min()) < 0:
            raise ValueError(f"address: {int(a.min())} is not allowed: must be >= 0")
        sub = (a % self.interleave) // self.access_bytes
        q = a // self.interleave
        part = {}
        for name in self.order:
            part[name] = q % self.radix[name]
            q = q // self.radix[name]
        column = part["column"] * (self.interleave // self.access_bytes) + sub
        return part["pseudo_channel"], part["bank_group"], part["bank"], q, column

    def map_one(self, address: int) -> tuple[int, int, int, int]:
        """(pseudo_channel, bank_group, bank, row) of one address, in Python integers (the model's inner loop)."""
        q = address // self.interleave
        part = {}
        for name in self.order:
            q, part[name] = divmod(q, self.radix[name])
        return part["pseudo_channel"], part["bank_group"], part["bank"], q

    def unmap(self, pseudo_channel: Any, bank_group: Any, bank: Any, row: Any, column: Any) -> np.ndarray:
        """The (access-aligned) address of each coordinate: ``unmap(*map(a)) == a - a % access_bytes``."""
        per = self.interleave // self.access_bytes
        column = np.asarray(column, dtype=np.int64)
        part = {"pseudo_channel": pseudo_channel, "bank_group": bank_group, "bank": bank, "column": column // per}
        q = np.asarray(row, dtype=np.int64)
        for name in reversed(self.order):
            value = np.asarray(part[name], dtype=np.int64)
            if value.size and (int(value.min()) < 0 or int(value.max()) >= self.radix[name]):
                raise ValueError(f"{name}: values must be in [0, {self.radix[name]})")
            q = q * self.radix[name] + value
        return q * self.interleave + (column % per) * self.access_bytes


def map_address(cfg: HwConfig | HbmConfig, address: Any, interleave: int | None = None,
                order: tuple[str, ...] = DEFAULT_ORDER) -> tuple[np.ndarray, ...]:
    """(pseudo_channel, bank_group, bank, row, column) of byte addresses; see ``AddressMap``."""
    return AddressMap.of(cfg, interleave, order).map(address)


# ---------------------------------------------------------------------------------------------------
# requests

def make_requests(address: Any, nbytes: Any, arrival: Any = 0, is_write: Any = False) -> np.ndarray:
    """A REQUEST_DTYPE array from broadcast columns (``nbytes`` fills the ``bytes`` field)."""
    address, nbytes, arrival, is_write = np.broadcast_arrays(address, nbytes, arrival, is_write)
    out = np.empty(address.shape, dtype=REQUEST_DTYPE).reshape(-1)
    for name, col in (("address", address), ("bytes", nbytes), ("arrival", arrival), ("is_write", is_write)):
        out[name] = col.reshape(-1)
    return out


def _columns(requests: Any) -> dict[str, np.ndarray]:
    """Validated columns of a request array (or mapping of arrays); errors name the field."""
    names = REQUEST_DTYPE.names
    if isinstance(requests, np.ndarray) and requests.dtype.names is not None:
        have = requests.dtype.names
        get = requests.__getitem__
    elif isinstance(requests, dict):
        have = tuple(requests)
        get = requests.__getitem__
    else:
        raise ValueError(f"requests: must be a structured array or a mapping with fields {', '.join(names)}, "
                         f"got {type(requests).__name__}")
    missing = [n for n in names if n not in have]
    if missing:
        raise ValueError(f"requests: missing field {missing[0]!r} (fields: {', '.join(names)})")
    cols = {}
    for name in names:
        col = np.asarray(get(name))
        if col.ndim != 1:
            raise ValueError(f"requests.{name}: must be one-dimensional, got shape {col.shape}")
        allowed = "biu" if name == "is_write" else "iu"
        if col.dtype.kind not in allowed:
            raise ValueError(f"requests.{name}: dtype {col.dtype} is not allowed: must be an integer"
                             f"{' or bool' if name == 'is_write' else ''} type")
        cols[name] = col.astype(bool if name == "is_write" else np.int64)
    n = {len(c) for c in cols.values()}
    if len(n) > 1:
        raise ValueError(f"requests: fields differ in length ({', '.join(f'{k}={len(v)}' for k, v in cols.items())})")
    for name, low in (("arrival", 0), ("address", 0), ("bytes", 1)):
        bad = np.flatnonzero(cols[name] < low)
        if bad.size:
            raise ValueError(f"requests.{name}: {int(cols[name][bad[0]])} (request {int(bad[0])}) is not allowed: "
                             f"must be >= {low}")
    return cols


# ---------------------------------------------------------------------------------------------------
# the model

class _Channel:
    """Controller state of one pseudo-channel (ticks); persists between ``serve`` calls."""

    def __init__(self, t: HbmTiming, queue_depth: int):
        self.open_row = [-1] * t.banks          # -1: precharged
        self.act_t = [NEVER] * t.banks          # last ACT per bank
        self.pre_ok = [NEVER] * t.banks         # earliest PRE per bank (tRAS, tRTP, tWR)
        self.act_bg = [NEVER] * t.bank_groups   # last ACT per bank group
        self.col_bg = [NEVER] * t.bank_groups   # last column command per bank group
        self.faw = [NEVER] * 4                  # the last four ACTs, oldest at faw_i
        self.faw_i = 0
        self.ring = [0] * queue_depth           # column times of the last queue_depth accesses
        self.ring_i = 0
        self.last_act = NEVER
        self.last_col = NEVER
        self.bus = 0                            # data pins free from
        self.pre_max = NEVER                    # max of pre_ok over the banks
        self.n_open = 0
        self.ref_floor = 0                      # end of the last refresh
        self.next_ref = t.tREFI * t.ticks_per_cycle
        self.hits = self.empties = self.conflicts = self.refreshes = self.accesses = 0
        self.refresh_ticks = 0


class HbmModel:
    """``serve(requests) -> completion cycles`` for one HBM (all stacks); state persists between calls.

    ``requests``: a ``REQUEST_DTYPE`` array (``make_requests``) or a mapping with the fields arrival
    (cycle), address (byte), is_write, bytes. The result is the completion cycle of each request, in input
    order. A request given in a later call is queued behind everything served before it."""

    def __init__(self, cfg: HwConfig, interleave: int | None = None, order: tuple[str, ...] = DEFAULT_ORDER,
                 queue_depth: int = 32, ticks_per_cycle: int = 120):
        if queue_depth < 1:
            raise ValueError(f"queue_depth: {queue_depth} is not allowed: must be >= 1")
        self.cfg = cfg
        self.timing = HbmTiming.of(cfg, ticks_per_cycle)
        self.map = AddressMap.of(cfg, interleave, order)
        self.queue_depth = queue_depth
        ticks = self.timing.ticks()
        self._loop_ticks = tuple(ticks[x] for x in ("tRCD", "tCL", "tRP", "tRAS", "tRRD_S", "tRRD_L", "tFAW", "tCCD_S",
                                                    "tCCD_L", "tWR", "tRFC", "tREFI", "burst", "tRTP"))
        self.reset()

    def reset(self) -> None:
        """Every bank precharged, time zero, counters cleared."""
        t = self.timing
        self._pc = [_Channel(t, self.queue_depth) for _ in range(t.pseudo_channels)]
        self._req = {"requests": 0, "bytes_read": 0, "bytes_written": 0, "latency_sum": 0,
                     "first_arrival": None, "last_completion": 0}

    def map_address(self, address: Any) -> tuple[np.ndarray, ...]:
        return self.map.map(address)

    def serve(self, requests: Any) -> np.ndarray:
        cols = _columns(requests)
        t, n = self.timing, len(cols["arrival"])
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        ab = t.access_bytes
        # split into accesses of consecutive addresses
        first = cols["address"] // ab
        count = (cols["address"] + cols["bytes"] - 1) // ab - first + 1
        starts = np.cumsum(count) - count
        req = np.repeat(np.arange(n), count)
        chunk = first[req] + np.arange(int(count.sum())) - starts[req]
        pc, bg, bank, row, _ = self.map.map(chunk * ab)
        bank = bg * t.banks_per_group + bank
        # per pseudo-channel, in arrival order (ties: request order, then address order)
        arrival = cols["arrival"][req]
        write = cols["is_write"][req]
        order = np.lexsort((np.arange(len(req)), arrival, pc))
        bounds = np.searchsorted(pc[order], np.arange(t.pseudo_channels + 1))
        end = np.empty(len(req), dtype=np.int64)
        k = t.ticks_per_cycle
        for p in range(t.pseudo_channels):
            lo, hi = bounds[p], bounds[p + 1]
            if lo == hi:
                continue
            idx = order[lo:hi]
            end[idx] = self._serve_channel(self._pc[p], (arrival[idx] * k).tolist(), bank[idx].tolist(),
                                           bg[idx].tolist(), row[idx].tolist(), write[idx].tolist())
        done = -(-np.maximum.reduceat(end, starts) // k)          # first cycle at or after the last beat
        moved = count * ab
        s = self._req
        s["requests"] += n
        s["bytes_read"] += int(moved[~cols["is_write"]].sum())
        s["bytes_written"] += int(moved[cols["is_write"]].sum())
        s["latency_sum"] += int((done - cols["arrival"]).sum())
        a0 = int(cols["arrival"].min())
        s["first_arrival"] = a0 if s["first_arrival"] is None else min(s["first_arrival"], a0)
        s["last_completion"] = max(s["last_completion"], int(done.max()))
        return done

    def serve_units(self, arrival: int, is_write: bool, addresses: list[int], sizes: list[int]) -> list[int]:
        """``serve`` of requests that all arrive in one cycle and go one way, in plain Python: the same result and
        counters, without the array set-up that dominates a call of a few accesses (an AXI burst, an L3 line).
        The caller has checked its arguments (``axi_port.HbmPorts``)."""
        t, ab, k = self.timing, self.timing.access_bytes, self.timing.ticks_per_cycle
        bpg, map_one = t.banks_per_group, self.map.map_one
        per_pc: dict[int, tuple[list, list, list, list]] = {}
        moved = 0
        for i, (address, size) in enumerate(zip(addresses, sizes, strict=True)):
            first, last = address // ab, (address + size - 1) // ab
            moved += (last - first + 1) * ab
            for chunk in range(first, last + 1):
                pc, bg, bank, row = map_one(chunk * ab)
                banks, bgs, rows, who = per_pc.setdefault(pc, ([], [], [], []))
                banks.append(bg * bpg + bank)
                bgs.append(bg)
                rows.append(row)
                who.append(i)
        end = [0] * len(addresses)
        tick = arrival * k
        for pc in sorted(per_pc):                                   # channels are independent; order kept anyway
            banks, bgs, rows, who = per_pc[pc]
            n = len(banks)
            ends = self._serve_channel(self._pc[pc], [tick] * n, banks, bgs, rows, [is_write] * n)
            for i, e in zip(who, ends, strict=True):
                if e > end[i]:
                    end[i] = e
        done = [-(-e // k) for e in end]
        s = self._req
        s["requests"] += len(addresses)
        s["bytes_written" if is_write else "bytes_read"] += moved
        s["latency_sum"] += sum(done) - arrival * len(done)
        s["first_arrival"] = arrival if s["first_arrival"] is None else min(s["first_arrival"], arrival)
        s["last_completion"] = max(s["last_completion"], max(done))
        return done

    def _serve_channel(self, c: _Channel, arrival: list, bank: list, bg: list, row: list,
                       write: list) -> list:
        """The controller loop of one pseudo-channel (ticks in, data-end ticks out); see the table."""
        tRCD, tCL, tRP, tRAS, tRRD_S, tRRD_L, tFAW, tCCD_S, tCCD_L, tWR, tRFC, tREFI, burst, tRTP = self._loop_ticks
        open_row, act_t, pre_ok, act_bg, col_bg, faw, ring = c.open_row, c.act_t, c.pre_ok, c.act_bg, c.col_bg, \
            c.faw, c.ring
        faw_i, ring_i, last_act, last_col, bus = c.faw_i, c.ring_i, c.last_act, c.last_col, c.bus
        pre_max, n_open, ref_floor, next_ref = c.pre_max, c.n_open, c.ref_floor, c.next_ref
        hits = empties = conflicts = 0
        Q = len(ring)
        out = [0] * len(arrival)
        for j in range(len(arrival)):
            b, g, r = bank[j], bg[j], row[j]
            enter = ring[ring_i]
            if arrival[j] > enter:
                enter = arrival[j]
            while True:
                column_bound = max(last_col + tCCD_S, col_bg[g] + tCCD_L, bus - tCL)
                orow = open_row[b]
                if orow == r:                                   # row hit
                    col = max(enter, column_bound, act_t[b] + tRCD)
                    if col < next_ref:
                        hits += 1
                        break
                else:
                    if orow >= 0:                               # row conflict: PRE, then ACT
                        pre = max(enter, pre_ok[b])
                        act = max(pre + tRP, ref_floor, last_act + tRRD_S, act_bg[g] + tRRD_L, faw[faw_i] + tFAW)
                        first = pre
                    else:                                       # precharged bank: ACT
                        act = max(enter, ref_floor, last_act + tRRD_S, act_bg[g] + tRRD_L, faw[faw_i] + tFAW)
                        first = act
                    if first < next_ref:
                        if orow >= 0:
                            conflicts += 1
                        else:
                            empties += 1
                            n_open += 1
                        open_row[b] = r
                        act_t[b] = act
                        pre_ok[b] = act + tRAS
                        if act + tRAS > pre_max:
                            pre_max = act + tRAS
                        last_act = act_bg[g] = faw[faw_i] = act
                        faw_i = (faw_i + 1) & 3
                        col = max(act + tRCD, column_bound)
                        break
                # a refresh is due before this access's first command: PRE-all (if open), REF, tRFC
                if n_open == 0 and enter - tRFC > next_ref:     # idle: skip refreshes wholly in the past
                    skipped = (enter - next_ref) // tREFI
                    next_ref += skipped * tREFI
                    c.refreshes += skipped
                    c.refresh_ticks += skipped * tRFC
                ref = max(next_ref, pre_max) + tRP if n_open else max(next_ref, ref_floor)
                ref_floor = ref + tRFC
                for i in range(len(open_row)):
                    open_row[i] = -1
                n_open = 0
                next_ref += tREFI
                c.refreshes += 1
                c.refresh_ticks += tRFC
            data_end = col + tCL + burst
            bus = data_end
            v = data_end + tWR if write[j] else col + tRTP
            if v > pre_ok[b]:
                pre_ok[b] = v
                if v > pre_max:
                    pre_max = v
            last_col = col_bg[g] = ring[ring_i] = col
            ring_i += 1
            if ring_i == Q:
                ring_i = 0
            out[j] = data_end
        c.faw_i, c.ring_i, c.last_act, c.last_col, c.bus = faw_i, ring_i, last_act, last_col, bus
        c.pre_max, c.n_open, c.ref_floor, c.next_ref = pre_max, n_open, ref_floor, next_ref
        c.hits += hits
        c.empties += empties
        c.conflicts += conflicts
        c.accesses += len(arrival)
        return out

    @property
    def stats(self) -> dict[str, Any]:
        """Counters since the last reset; per-pseudo-channel lists are indexed by global pseudo-channel."""
        t, s, pcs = self.timing, self._req, self._pc
        span = s["last_completion"] - (s["first_arrival"] or 0) if s["requests"] else 0
        moved = s["bytes_read"] + s["bytes_written"]
        bpc = moved / span if span else 0.0
        return {
            "requests": s["requests"],
            "accesses": sum(c.accesses for c in pcs),
            "row_hits": sum(c.hits for c in pcs),
            "row_misses": sum(c.empties + c.conflicts for c in pcs),
            "row_conflicts": sum(c.conflicts for c in pcs),
            "refreshes": sum(c.refreshes for c in pcs),
            "bytes_read": s["bytes_read"],
            "bytes_written": s["bytes_written"],
            "span_cycles": span,
            "bandwidth_bytes_per_cycle": bpc,
            "bandwidth_gbytes_per_s": bpc * t.mhz / 1000,
            "peak_gbytes_per_s": t.peak_gbytes_per_s,
            "efficiency": bpc / t.peak_bytes_per_cycle,
            "avg_latency_cycles": s["latency_sum"] / s["requests"] if s["requests"] else 0.0,
            "energy_pj": moved * 8 * t.pj_per_bit,
            "per_pc": {
                "row_hits": [c.hits for c in pcs],
                "row_misses": [c.empties + c.conflicts for c in pcs],
                "busy_cycles": [c.accesses * t.burst_cycles for c in pcs],     # data pins busy
                "refresh_cycles": [c.refresh_ticks / t.ticks_per_cycle for c in pcs],
            },
        }


__all__ = ["DEFAULT_ORDER", "REQUEST_DTYPE", "TIMINGS", "AddressMap", "HbmModel", "HbmTiming", "make_requests",
           "map_address"]


# ---------------------------------------------------------------------------------------------------
# benchmark: bench(config.load("default")) -> bandwidth and model speed per access pattern (one run)

def bench(cfg: HwConfig, accesses: int = 1 << 19, seed: int = 0) -> dict[str, dict[str, float]]:
    """Sequential and random-row reads of ``access_bytes`` each, all arriving at cycle 0; the sequential
    stream once more as 4 KiB requests. Per pattern: % of peak, GB/s, requests and accesses per second."""
    import time

    ab = cfg.memory.hbm.access_bytes
    rng = np.random.default_rng(seed)
    span = accesses * ab * 64
    patterns = {
        "sequential": make_requests(np.arange(accesses) * ab, ab),
        "sequential_4KiB": make_requests(np.arange(accesses * ab // 4096) * 4096, 4096),
        "random_row": make_requests(rng.integers(0, span // ab, accesses) * ab, ab),
    }
    out = {}
    for name, requests in patterns.items():
        model = HbmModel(cfg)
        wall = time.perf_counter()
        model.serve(requests)
        wall = time.perf_counter() - wall
        s = model.stats
        out[name] = {"percent_of_peak": 100 * s["efficiency"], "gbytes_per_s": s["bandwidth_gbytes_per_s"],
                     "requests_per_s": s["requests"] / wall, "accesses_per_s": s["accesses"] / wall,
                     "row_hit_rate": s["row_hits"] / s["accesses"]}
    return out

