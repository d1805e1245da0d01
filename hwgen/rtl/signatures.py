"""Shapes and signatures components share, derived from the contract in ``hwgen.spec`` (one place for their
widths): the Amaranth layouts of the field tables, hardware enums of the spec's codes, and the memory ports.

Memory-port signatures are from the memory's side (``Out`` on the memory, ``In`` on a component that uses
the port).
"""
import enum as py_enum
import types

from amaranth.lib import data, enum, memory
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


def l1_read(cfg) -> memory.ReadPort.Signature:
    """One L1 line per read, one cycle of latency."""
    return memory.ReadPort.Signature(addr_width=ceil_log2(cfg.l1_lines), shape=cfg.line_bytes * 8)


def l1_write(cfg, byte_enables: bool = True) -> memory.WritePort.Signature:
    """An L1 line write; with byte enables one bit of ``en`` per byte (the host's fill port has one bit)."""
    return memory.WritePort.Signature(addr_width=ceil_log2(cfg.l1_lines), shape=cfg.line_bytes * 8,
                                      granularity=8 if byte_enables else None)


def out_read(cfg) -> memory.ReadPort.Signature:
    """One output-buffer line (L accumulators) per read, one cycle of latency."""
    return memory.ReadPort.Signature(addr_width=ceil_log2(cfg.out_lines), shape=cfg.out_line_bits)


def out_write(cfg) -> memory.WritePort.Signature:
    return memory.WritePort.Signature(addr_width=ceil_log2(cfg.out_lines), shape=cfg.out_line_bits)


def hbm_axi(cfg, id_width: int | None = None):
    """The AXI4 master port of an engine's DMA toward HBM: one L1 line per beat, addresses as wide as the
    descriptor's ``hbm_addr``; ``id_width`` widens the ID below an arbiter (default: the engine's)."""
    from hwgen.rtl.memory.axi import AxiSignature  # axi imports this module
    return AxiSignature(addr_width=isa.DESCRIPTOR.bits("hbm_addr"), data_width=cfg.beat_bytes * 8,
                        id_width=cfg.axi_id_bits if id_width is None else id_width)
