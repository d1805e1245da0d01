"""The memory-port signatures components share, derived from the config (one place for their widths).

Signatures are from the memory's side (``Out`` on the memory, ``In`` on a component that uses the port).
"""
from amaranth.lib import memory
from amaranth.utils import ceil_log2


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
    from . import isa
    from .axi import AxiSignature
    return AxiSignature(addr_width=isa.DESCRIPTOR.bits("hbm_addr"), data_width=cfg.beat_bytes * 8,
                        id_width=cfg.axi_id_bits if id_width is None else id_width)
