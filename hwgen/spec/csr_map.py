"""The host's view of the chip, written once: the CSR map behind ``s_axi_ctrl`` (``csr_map(cfg)``), the register
table it is made of (``Register``, ``Access``, ``CsrMap``), the constants it names and its C header
(``c_header``). Pure Python, so hosts, drivers and testbenches read it without Amaranth; the RTL's CSR block
(``hwgen/rtl/scheduler/csr.py``) is built from the same table and the chip (``hwgen/rtl/chip.py``) drives it.

Every register is one or two 32-bit words: bits 31..0 at ``offset``, the rest (above 32 bits) at
``offset + 4``. Where hardware changes the value (RO, W1C), reading the low word latches the high word, so a host
that reads low then high sees one 64-bit value of a running counter. ``Register.fields`` names bit fields of a
register (for the C header and drivers; the Markdown and JSON exports list the registers only).
"""
from __future__ import annotations

import enum
import keyword
import re
from dataclasses import dataclass

from hwgen.spec.config import POLICIES, policy_code
from hwgen.spec.page_table import FAULT_BITS, PAGE_FAULT_UNITS, Fault
from hwgen.spec.task_table import ERROR_BITS, AsaError

WORD_BITS = 32
WORD_BYTES = 4
MAX_WIDTH = 64
MIN_ADDRESS_BITS = 4
#: member names the RTL block (``CsrBlock``) uses itself (a register of that name would hide them)
RESERVED = frozenset({"bus", "csr_map", "signature", "metadata", "elaborate"})
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

VERSION = 0x44534105    # "DSA", format 5: the chip with the scheduler
CONTROL_BITS = ("start", "l3_flush", "tlb_flush")
STATUS_BITS = ("busy", "done", "l3_ready", "l3_flushing", "engines_idle")
COUNTERS = ("cycles", "issued", "skipped", "stall_no_engine", "stall_not_ready")
BYTE_COUNTERS = ("l3_read_bytes", "l3_write_bytes", "hbm_read_bytes", "hbm_write_bytes", "lane_macs", "gated_macs")


class Access(enum.Enum):
    RW = "rw"    # host writes, hardware reads
    RO = "ro"    # hardware drives, host reads
    W1P = "w1p"  # write-1-pulse: one-cycle pulse per bit written 1; reads 0
    W1C = "w1c"  # hardware sets (``<name>_set``), host writes 1 to clear; reads the sticky bits


@dataclass(frozen=True)
class BitField:
    """Bits ``lsb`` .. ``lsb + width - 1`` of a register."""
    name: str
    lsb: int
    width: int = 1

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb


@dataclass(frozen=True)
class Register:
    name: str
    offset: int          # byte address of the (low) word, a multiple of 4
    width: int           # 1..64 bits; above 32 the register takes two words
    access: Access
    description: str = ""
    reset: int = 0       # RW only
    fields: tuple[BitField, ...] = ()

    @property
    def words(self) -> int:
        return -(-self.width // WORD_BITS) if isinstance(self.width, int) and self.width > 0 else 1

    @property
    def end(self) -> int:
        """One past the register's last byte."""
        return self.offset + WORD_BYTES * self.words

    @property
    def latched(self) -> bool:
        """Whether reading the low word latches the high word (hardware changes the value)."""
        return self.words > 1 and self.access in (Access.RO, Access.W1C)

    def problems(self) -> list[str]:
        """What is wrong with this register on its own, one line each."""
        out, who = [], f"register {self.name!r}"
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name) or keyword.iskeyword(self.name):
            out.append(f"{who}: name is not an identifier (allowed: a letter, then letters, digits or _; "
                       "not a Python keyword)")
        elif self.name in RESERVED:
            out.append(f"{who}: name is reserved (not allowed: {', '.join(sorted(RESERVED))})")
        if not isinstance(self.access, Access):
            out.append(f"{who}: access {self.access!r} is not an Access (allowed: "
                       f"{', '.join(a.name for a in Access)})")
        if not isinstance(self.offset, int) or self.offset < 0 or self.offset % WORD_BYTES:
            out.append(f"{who}: offset {_hex(self.offset)} is not word aligned "
                       f"(allowed: a non-negative multiple of {WORD_BYTES})")
        if not isinstance(self.width, int) or not 1 <= self.width <= MAX_WIDTH:
            out.append(f"{who}: width {self.width!r} is not allowed (allowed: 1..{MAX_WIDTH})")
            return out
        if self.reset and isinstance(self.access, Access) and self.access is not Access.RW:
            out.append(f"{who}: reset {_hex(self.reset)} on a {self.access.name} register "
                       "(allowed: a reset value on RW registers only)")
        elif not isinstance(self.reset, int) or not 0 <= self.reset < 1 << self.width:
            out.append(f"{who}: reset {_hex(self.reset)} does not fit {self.width} bits "
                       f"(allowed: 0..{_hex((1 << self.width) - 1)})")
        placed: list[BitField] = []
        for f in self.fields:
            where = f"{who}: field {f.name!r}"
            if not isinstance(f.name, str) or not _NAME.fullmatch(f.name):
                out.append(f"{where}: name is not an identifier (allowed: a letter, then letters, digits or _)")
            elif not isinstance(f.lsb, int) or not isinstance(f.width, int) or f.lsb < 0 or f.width < 1 \
                    or f.lsb + f.width > self.width:
                out.append(f"{where}: bits {f.lsb}, width {f.width} leave the register (allowed: within bits "
                           f"0..{self.width - 1})")
            else:
                for g in placed:
                    if g.name == f.name or g.mask & f.mask:
                        out.append(f"{where}: {'name' if g.name == f.name else 'bits'} taken by field {g.name!r} "
                                   "(allowed: unique names, disjoint bits)")
                        break
                else:
                    placed.append(f)
        return out


def _hex(value) -> str:
    return f"0x{value:x}" if isinstance(value, int) and value >= 0 else repr(value)


class CsrMap:
    """An ordered, validated tuple of Registers. Every problem is reported, one line each, in a ValueError."""

    def __init__(self, registers):
        self.registers: tuple[Register, ...] = tuple(registers)
        problems = [p for r in self.registers for p in r.problems()]
        if not problems:
            problems = self._clashes()
        if problems:
            raise ValueError("\n".join(problems))

    def _clashes(self) -> list[str]:
        """Names used twice (a W1C's ``<name>_set`` member counts) and byte ranges that overlap."""
        out, owner = [], {}                           # member name -> (index, register) it belongs to
        for i, r in enumerate(self.registers):
            for name in (r.name, f"{r.name}_set") if r.access is Access.W1C else (r.name,):
                j, other = owner.setdefault(name, (i, r))
                if j == i:
                    continue
                mine = "name" if name == r.name else f"set input {name!r}"
                theirs = "register" if name == other.name else "the set input of W1C register"
                out.append(f"register {r.name!r} at {_hex(r.offset)}: {mine} is taken by {theirs} {other.name!r} "
                           f"at {_hex(other.offset)} (allowed: unique names; a W1C register also takes <name>_set)")
        last = None                                   # the register reaching furthest so far
        for r in sorted(self.registers, key=lambda r: r.offset):
            if last is not None and r.offset < last.end:
                out.append(f"register {r.name!r}: offset {_hex(r.offset)} overlaps register {last.name!r} "
                           f"at {_hex(last.offset)}..{_hex(last.end - 1)} (allowed: offsets from {_hex(last.end)})")
            if last is None or r.end > last.end:
                last = r
        return out

    def __iter__(self):
        return iter(self.registers)

    def __len__(self) -> int:
        return len(self.registers)

    def __getitem__(self, name: str) -> Register:
        for r in self.registers:
            if r.name == name:
                return r
        raise KeyError(name)

    @property
    def address_bits(self) -> int:
        """Byte-address bits that reach the highest word (at least 4)."""
        end = max((r.end for r in self.registers), default=0)
        return max(MIN_ADDRESS_BITS, (end - 1).bit_length())

    def to_json(self) -> list[dict]:
        """One dict per register, in table order (JSON-serialisable)."""
        return [{"name": r.name, "offset": r.offset, "width": r.width, "access": r.access.name,
                 "reset": r.reset, "description": r.description} for r in self.registers]

    def to_markdown(self) -> str:
        """The table for a README: offset (hex), name, access, width, reset, description."""
        digits = max(4, -(-self.address_bits // 4))
        lines = ["| Offset | Name | Access | Width | Reset | Description |",
                 "|---|---|---|---|---|---|"]
        for r in self.registers:
            reset = f"0x{r.reset:x}" if r.access is Access.RW else "-"
            text = r.description.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| 0x{r.offset:0{digits}x} | {r.name} | {r.access.name} | {r.width} | {reset} | {text} |")
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------
# the chip's map

def _bits_doc(names) -> str:
    return ", ".join(f"bit {i} {n}" for i, n in enumerate(names))


def _bits(names) -> tuple[BitField, ...]:
    return tuple(BitField(n, i) for i, n in enumerate(names))


def csr_map(cfg) -> CsrMap:
    """The chip's registers, in address order (offsets follow from the widths: 64-bit ones take two words)."""
    E = cfg.scheduler.engines
    fault_bits = FAULT_BITS * len(PAGE_FAULT_UNITS)
    rows = [
        ("version", 32, Access.RO, f"{VERSION:#010x}: 'DSA' and the register format", 0, ()),
        ("control", len(CONTROL_BITS), Access.W1P, _bits_doc(CONTROL_BITS), 0, _bits(CONTROL_BITS)),
        ("status", len(STATUS_BITS), Access.RO, _bits_doc(STATUS_BITS), 0, _bits(STATUS_BITS)),
        ("irq", 1, Access.W1C, "bit 0: the program is done (write 1 to clear)", 0, _bits(["done"])),
        ("irq_enable", 1, Access.RW, "bit 0: drive the irq pin from irq.done", 0, _bits(["done"])),
        ("error", ERROR_BITS, Access.RO, "scheduler error: " + ", ".join(f"{e.value} {e.name}" for e in AsaError),
         0, ()),
        ("page_fault", fault_bits * E, Access.RO, f"per engine e, bits {fault_bits}e..: its page_fault "
                                                  "(hwgen/spec/page_table.py: LOAD bits 0-1, STORE bits 2-3)", 0,
         tuple(BitField(f"engine{e}_{unit}", fault_bits * e + FAULT_BITS * u, FAULT_BITS)
               for e in range(E) for u, unit in enumerate(PAGE_FAULT_UNITS))),
        ("dma_error", 2 * E, Access.RO, "per engine e, bit 2e: a LOAD beat, 2e+1: a STORE response was not OKAY", 0,
         tuple(BitField(f"engine{e}_{unit}", 2 * e + u) for e in range(E) for u, unit in enumerate(("load", "store")))),
        ("policy", 2, Access.RW, "scheduling policy, taken at start: " + ", ".join(
            f"{i} {p}" for i, p in enumerate(POLICIES)), policy_code(cfg.scheduler.policy), ()),
        ("program_base", 40, Access.RW, "physical HBM byte address of the program header "
                                        "(hwgen/spec/task_table.py)", 0, ()),
        *[(name, 32, Access.RO, doc, 0, ()) for name, doc in zip(COUNTERS, (
            "cycles from start to done", "tasks issued to engines", "tasks skipped by a clear predicate",
            "cycles a picked task waited for a free engine", "cycles no window task was ready"), strict=True)],
        *[(name, 64, Access.RO, doc, 0, ()) for name, doc in zip(BYTE_COUNTERS, (
            "bytes read through the L3 side (scheduler + engines, R beats)", "bytes written toward the L3 (W beats)",
            "bytes read on the HBM ports", "bytes written on the HBM ports",
            "lane-MACs the engines performed (elements x lanes)", "lane-MACs gated by a zero in B"), strict=True)],
        ("predicates", min(64, cfg.scheduler.predicates), Access.RO, "predicate bits 0..63 the gates wrote", 0, ()),
    ]
    regs, offset = [], 0
    for name, width, access, doc, reset, fields in rows:
        step = 8 if width > 32 else 4
        offset = -(-offset // step) * step
        regs.append(Register(name, offset, width, access, doc, reset, fields))
        offset += step
    return CsrMap(tuple(regs))


def codes() -> dict[str, dict[str, int]]:
    """The encodings the map's registers carry: {group: {name: value}} (``error``, ``policy``, and ``fault``: each
    field of ``page_fault``)."""
    return {"error": {e.name: e.value for e in AsaError},
            "policy": {p.upper(): policy_code(p) for p in POLICIES},
            "fault": {f.name: f.value for f in Fault}}


# ---------------------------------------------------------------------------------------------------
# C header

def c_header_name(cfg) -> str:
    return f"{cfg.name}_csr.h"


def _c_comment(text: str) -> str:
    return text.replace("*/", "* /").replace("\n", " ")


def c_header(cfg, csrs: CsrMap | None = None) -> str:
    """The CSR map (default: ``csr_map(cfg)``) as a C header: per register its byte offset (``<P>_<REG>_OFFSET``;
    two words: ``_LO`` and ``_HI``), ``_WIDTH``, ``_RESET`` (registers the host can write), and per bit field
    ``_SHIFT``, ``_WIDTH``, ``_MASK`` (of the register's value: 64-bit for two words); the version constant and the
    codes. ``<P>`` is ``DSA_<NAME>``."""
    csrs = csr_map(cfg) if csrs is None else csrs
    p = f"DSA_{cfg.name.upper()}"
    guard = f"{p}_CSR_H"
    defines: list[tuple[str, str, str]] = []           # (macro, value, comment)

    def define(name: str, value: str, comment: str = ""):
        defines.append((f"{p}_{name}".upper(), value, comment))

    define("CSR_VERSION", f"0x{VERSION:08x}u", "the value of the version register")
    define("CSR_ADDRESS_BITS", f"{csrs.address_bits}u", "byte-address bits of s_axi_ctrl")
    blocks = []
    for r in csrs:
        start = len(defines)
        reg = r.name.upper()
        if r.words == 1:
            define(f"{reg}_OFFSET", f"0x{r.offset:04x}u")
        else:
            define(f"{reg}_LO", f"0x{r.offset:04x}u", "bits 31..0")
            define(f"{reg}_HI", f"0x{r.offset + WORD_BYTES:04x}u", f"bits {r.width - 1}..32")
        define(f"{reg}_WIDTH", f"{r.width}u")
        suffix = "ull" if r.words > 1 else "u"            # a two-word register's values are 64-bit
        if r.access is not Access.RO:
            define(f"{reg}_RESET", f"0x{r.reset:x}{suffix}")
        for f in r.fields:
            define(f"{reg}_{f.name}_SHIFT", f"{f.lsb}u")
            define(f"{reg}_{f.name}_WIDTH", f"{f.width}u")
            define(f"{reg}_{f.name}_MASK", f"0x{f.mask:x}{suffix}")
        bits = "bit" if r.width == 1 else "bits"
        blocks.append((f"{r.name} ({r.access.name}, {r.width} {bits}): {r.description}", start, len(defines)))
    code_start = len(defines)
    for group, values in codes().items():
        for name, value in values.items():
            define(f"{group}_{name}", f"{value}u")
    blocks.append(("codes: error (the error register), policy (the policy register), fault (each page_fault "
                   "field; hwgen/spec/page_table.py)", code_start, len(defines)))

    names = [d[0] for d in defines]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"C header of {cfg.name}: macro names used twice: {', '.join(twice)}")
    width = max(len(n) for n in names) + 1

    def lines(lo: int, hi: int) -> list[str]:
        out = []
        for name, value, comment in defines[lo:hi]:
            text = f"#define {name:<{width}}{value}"
            out.append(f"{text:<{width + 20}}/* {comment} */" if comment else text)
        return out

    top = [f"/* {c_header_name(cfg)}: the CSR map of dsa_{cfg.name}_chip ({cfg.build_name}), port s_axi_ctrl "
           "(AXI4-Lite, 32-bit words).",
           f" * Generated by `dsa generate --config {cfg.name}` from hwgen/spec/csr_map.py; do not edit.",
           " *",
           " * Offsets are bytes from the port's base address; access one aligned 32-bit word at a time. A register",
           " * wider than 32 bits is two words: bits 31..0 at <REG>_LO, the rest at <REG>_HI. For RO and W1C",
           " * registers read _LO first: it latches _HI, so the two halves are one value.",
           " * RW: the host writes, hardware reads. RO: hardware drives (writes are ignored). W1P: writing 1 to a",
           " * bit pulses it for one cycle (reads 0). W1C: hardware sets bits, writing 1 clears them.",
           " */",
           f"#ifndef {guard}",
           f"#define {guard}",
           "",
           *lines(0, blocks[0][1] if blocks else len(defines))]
    for comment, lo, hi in blocks:
        top += ["", f"/* {_c_comment(comment)} */", *lines(lo, hi)]
    return "\n".join([*top, "", f"#endif /* {guard} */", ""])
