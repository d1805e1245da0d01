"""Shapes and signatures components share, derived from the contract in ``hwgen.spec`` (one place for their
widths): the Amaranth layouts of the field tables, hardware enums of the spec's codes, and the memory ports.

Memory-port signatures are from the memory's side (``Out`` on the memory, ``In`` on a component that uses
the port).
"""
import enum as py_enum
import types

from amaranth.lib import data, enum, memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from hwgen.spec import isa
from hwgen.spec.fields import FieldTable
from hwgen.spec.page_table import PTE


def struct_layout(table: FieldTable) -> data.StructLayout:
    """A field table (``hwgen.spec.fields``) as the Amaranth layout the RTL decodes: fields LSB-first."""
    return data.StructLayout({f.name: f.bits for f in table.fields})


def descriptor_layout() -> data.StructLayout:
    return struct_layout(isa.DESCRIPTOR)


def pte_layout() -> data.StructLayout:
    return struct_layout(PTE)


def hw_enum(codes: type[py_enum.IntEnum], bits: int) -> type[enum.Enum]:
    """An Amaranth enum of ``bits`` bits with the members and values of a spec enum (the one encoding)."""
    return types.new_class(codes.__name__, (enum.Enum,), {"shape": bits},
                           lambda ns: ns.update({c.name: c.value for c in codes}))


def registered_read(addr_width: int, shape) -> wiring.Signature:
    """A block RAM read port whose data comes from a register: ``en`` in cycle t reads ``addr`` into the RAM's
    output (held while ``en`` is low), ``take`` in a later cycle loads that output into ``data``. Both default
    high, so an address in t gives its data in t + 2 (``timing.REGISTERED_READ_LATENCY``). Nothing but a
    register follows the RAM: on an ECP5 a DP16KD's clock-to-output alone (5.83 ns) is most of an 8 ns cycle.
    A reader that stalls lowers ``take`` while the RAM's output waits for room, and ``en`` until it moves."""
    return wiring.Signature({"en": In(1, init=1), "take": In(1, init=1), "addr": In(addr_width),
                             "data": Out(shape)})


def l1_read(cfg) -> wiring.Signature:
    """One L1 line per read, two cycles of latency (``registered_read``)."""
    return registered_read(ceil_log2(cfg.l1_lines), cfg.line_bytes * 8)


def l1_write(cfg, byte_enables: bool = True) -> memory.WritePort.Signature:
    """An L1 line write; with byte enables one bit of ``en`` per byte (the host's fill port has one bit)."""
    return memory.WritePort.Signature(addr_width=ceil_log2(cfg.l1_lines), shape=cfg.line_bytes * 8,
                                      granularity=8 if byte_enables else None)


def out_read(cfg) -> wiring.Signature:
    """One output-buffer line (L accumulators) per read, two cycles of latency (``registered_read``)."""
    return registered_read(ceil_log2(cfg.out_lines), cfg.out_line_bits)


def out_write(cfg) -> memory.WritePort.Signature:
    return memory.WritePort.Signature(addr_width=ceil_log2(cfg.out_lines), shape=cfg.out_line_bits)


def hbm_axi(cfg, id_width: int | None = None):
    """The AXI4 master port of an engine's DMA toward HBM: one L1 line per beat, addresses as wide as the
    descriptor's ``hbm_addr``; ``id_width`` widens the ID below an arbiter (default: the engine's)."""
    from hwgen.rtl.memory.axi import AxiSignature  # axi imports this module
    return AxiSignature(addr_width=isa.DESCRIPTOR.bits("hbm_addr"), data_width=cfg.beat_bytes * 8,
                        id_width=cfg.axi_id_bits if id_width is None else id_width)
