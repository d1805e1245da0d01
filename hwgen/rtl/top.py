"""The chip: the DSA engine and its memory side, up to the HBM ports.

```
 engine.hbm (one AXI4 master: LOAD reads, STORE writes, TLB walks; hbm_ar_stream: the read-once hint)
     |
 L3Cache (hwgen/rtl/memory/l3_cache.py), when l3.enabled: the shared cache, write-back, MSHRs
     |
 HbmInterleaver (hwgen/rtl/memory/hbm_interleaver.py), when memory.ports > 1: burst at a -> port (a // interleave) % P
     |
 hbm0 .. hbm<P-1> (AXI4 masters, outside the chip; build.top_component names them m_axi_hbm<i>_*)
```

``DsaTop`` has every port of ``DsaEngine`` but ``hbm`` / ``hbm_ar_stream`` under the same name, plus
``hbm0`` .. ``hbm<P-1>`` and, with the L3, ``l3_ready`` (low after reset while the L3 clears its tags: offer
the first task once it is high; the simulator counts a program's cycles from that cycle) and ``l3_flush`` /
``l3_flushing`` (while the engine is idle, a pulse writes every dirty L3 line back to HBM; ``l3_flushing``
is high until the last write-back's response: the host reads results from HBM after that). The interleaver adds
no cycle on any AXI channel (see its timing rule); the L3's timing is ``sim/model/memory/l3.py``'s ``L3Ports``,
which the simulator's DMA model (``sim/model/memory/dma.py``) then talks to instead of ``HbmPorts``.

``chip(cfg)`` is the component the generator wraps in Vivado names: the engine alone while the memory side
is a single wire (one port, no L3), so that configuration's Verilog stays exactly the engine's; ``DsaTop``
otherwise. ``axi_ports(cfg)`` maps its AXI members to the top-level prefixes.
"""
from __future__ import annotations

from amaranth import Module
from amaranth.hdl import ValueCastable
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from hwgen.rtl import signatures
from hwgen.rtl.engine.engine import DsaEngine
from hwgen.rtl.memory.hbm_interleaver import HbmInterleaver
from hwgen.rtl.memory.l3_cache import L3Cache
from hwgen.spec.config import check_memory_side

#: the engine's AXI4 master toward memory and its sideband
ENGINE_HBM = "hbm"
ENGINE_HBM_SIDEBAND = ("hbm_ar_stream",)


def hbm_prefix(port: int) -> str:
    """Vivado-inferable prefix of HBM port ``port``: ``m_axi_hbm<port>``."""
    return f"m_axi_hbm{port}"


class DsaTop(wiring.Component):
    """The engine, the interleaver and ``cfg.memory.ports`` HBM masters ``hbm<i>``; see the module docstring."""

    def __init__(self, cfg):
        self._cfg = cfg
        self._engine = DsaEngine(cfg)
        members = {name: member for name, member in self._engine.signature.members.items()
                   if name not in (ENGINE_HBM, *ENGINE_HBM_SIDEBAND)}
        members.update({f"hbm{i}": Out(signatures.hbm_axi(cfg)) for i in range(cfg.memory.ports)})
        if cfg.l3.enabled:
            members.update(l3_ready=Out(1), l3_flush=In(1), l3_flushing=Out(1))
        super().__init__(members)

    @property
    def engine(self) -> DsaEngine:
        return self._engine

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        m.submodules.engine = engine = self._engine
        for path, member, inner in engine.signature.flatten(engine):
            if path[0] in (ENGINE_HBM, *ENGINE_HBM_SIDEBAND):
                continue
            outer = self
            for name in path:
                outer = getattr(outer, name)
            outer, inner = (x.as_value() if isinstance(x, ValueCastable) else x for x in (outer, inner))
            m.d.comb += outer.eq(inner) if member.flow == Out else inner.eq(outer)

        memory_side(m, cfg, engine.hbm, engine.hbm_ar_stream, self)
        return m


def memory_side(m: Module, cfg, upstream, ar_stream, outer, id_width: int | None = None) -> None:
    """Below ``upstream`` (an AXI4 master): the L3 (``l3.enabled``; its ``ready`` / ``flush`` / ``flushing`` on
    ``outer.l3_*``, the read-once hint from ``ar_stream``), then the interleaver (``memory.ports`` > 1), onto
    ``outer.hbm0`` .. ``hbm<P-1>``. ``id_width``: the ID width of ``upstream`` (default: the engine's)."""
    if cfg.l3.enabled:
        m.submodules.l3 = l3 = L3Cache(cfg, id_width)
        connect(m, upstream, l3.bus)
        m.d.comb += [l3.ar_stream.eq(ar_stream), outer.l3_ready.eq(l3.ready),
                     l3.flush.eq(outer.l3_flush), outer.l3_flushing.eq(l3.flushing)]
        upstream = l3.hbm
    if cfg.memory.ports == 1:
        connect(m, upstream, flipped(outer.hbm0))
    else:
        m.submodules.interleaver = interleaver = HbmInterleaver(cfg, id_width)
        connect(m, upstream, interleaver.bus)
        for i in range(cfg.memory.ports):
            connect(m, getattr(interleaver, f"port{i}"), flipped(getattr(outer, f"hbm{i}")))


def _bare(cfg) -> bool:
    """No memory side to add: one port and no L3."""
    return cfg.memory.ports == 1 and not cfg.l3.enabled


def chip(cfg) -> wiring.Component:
    """The component behind the top-level names: ``DsaEngine`` when the memory side is a wire, else
    ``DsaTop``."""
    check_memory_side(cfg)
    return DsaEngine(cfg) if _bare(cfg) else DsaTop(cfg)


def axi_ports(cfg) -> dict[str, str]:
    """AXI members of ``chip(cfg)`` -> top-level prefix (``hwgen.rtl.memory.axi.VivadoTop``'s map)."""
    if _bare(cfg):
        return {ENGINE_HBM: hbm_prefix(0)}
    return {f"hbm{i}": hbm_prefix(i) for i in range(cfg.memory.ports)}
