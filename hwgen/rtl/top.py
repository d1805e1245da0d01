"""The chip: the DSA engine and its memory side, up to the HBM ports.

```
 engine.hbm (one AXI4 master: LOAD reads, STORE writes, TLB walks; hbm_ar_stream: the read-once hint)
     |
 HbmInterleaver (hwgen/rtl/memory/hbm_interleaver.py), when memory.ports > 1: burst at a -> port (a // interleave) % P
     |            (responses come back in request order over all ports)
 L3Cache (hwgen/rtl/memory/l3_cache.py) per port, when l3.enabled: slice i of the shared cache (l3.bytes / P,
     |            write-back, MSHRs) in front of port i; with one port, the whole cache
 hbm0 .. hbm<P-1> (AXI4 masters, outside the chip; build.top_component names them m_axi_hbm<i>_*)
```

``DsaTop`` has every port of ``DsaEngine`` but ``hbm`` / ``hbm_ar_stream`` under the same name, plus
``hbm0`` .. ``hbm<P-1>`` and, with the L3, ``l3_ready`` (low after reset while the L3 clears its tags: offer
the first task once it is high; the simulator counts a program's cycles from that cycle) and ``l3_flush`` /
``l3_flushing`` (while the engine is idle, a pulse writes every dirty L3 line back to HBM; ``l3_flushing``
is high until the last write-back's response: the host reads results from HBM after that), and the L3's
counters ``l3_hits``, ``l3_misses``, ``l3_evictions``, ``l3_writebacks`` (line accesses, summed over the slices).
With several slices ``l3_ready`` is the AND of theirs (all clear their tags in the same cycles), ``l3_flush``
goes to every slice and ``l3_flushing`` is the OR. The interleaver adds no cycle on any AXI channel (see its
timing rule); the L3's timing is ``sim/model/memory/l3.py``'s ``L3Ports`` (one slice; ``L3Slices`` in
``sim/model/memory/l3_slices.py`` for several), which the simulator's DMA model (``sim/model/memory/dma.py``) then
talks to instead of ``HbmPorts``.

``chip(cfg)`` is the component the generator wraps in Vivado names: the engine alone while the memory side
is a single wire (one port, no L3), so that configuration's Verilog stays exactly the engine's; ``DsaTop``
otherwise. ``axi_ports(cfg)`` maps its AXI members to the top-level prefixes.
"""
from __future__ import annotations

from amaranth import Cat, Module
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
#: the L3 counters DsaTop brings out as ``l3_<name>`` (summed over the slices)
L3_COUNTERS = ("hits", "misses", "evictions", "writebacks")


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
            members.update({f"l3_{name}": Out(32) for name in L3_COUNTERS})
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

        slices = memory_side(m, cfg, engine.hbm, engine.hbm_ar_stream, self)
        for name in L3_COUNTERS if slices else ():
            m.d.comb += getattr(self, f"l3_{name}").eq(sum(getattr(s, name) for s in slices))
        return m


def memory_side(m: Module, cfg, upstream, ar_stream, outer, id_width: int | None = None) -> list[L3Cache]:
    """Below ``upstream`` (an AXI4 master): the interleaver (``memory.ports`` > 1), then per port the L3's slice
    (``l3.enabled``; the read-once hint from ``ar_stream`` to every slice: only the addressed one takes the AR),
    onto ``outer.hbm0`` .. ``hbm<P-1>``; the slices' ``ready`` (all) / ``flush`` / ``flushing`` (any) on
    ``outer.l3_*``. ``id_width``: the ID width of ``upstream`` (default: the engine's). Returns the L3 slices."""
    P = cfg.memory.ports
    if P == 1:
        downs = [upstream]
    else:
        m.submodules.interleaver = interleaver = HbmInterleaver(cfg, id_width)
        connect(m, upstream, interleaver.bus)
        downs = [getattr(interleaver, f"port{i}") for i in range(P)]
    slices = []
    if cfg.l3.enabled:
        for i in range(P):
            l3 = L3Cache(cfg, id_width, port=i)
            m.submodules["l3" if P == 1 else f"l3_{i}"] = l3
            connect(m, downs[i], l3.bus)
            m.d.comb += [l3.ar_stream.eq(ar_stream), l3.flush.eq(outer.l3_flush)]
            downs[i] = l3.hbm
            slices.append(l3)
        m.d.comb += [outer.l3_ready.eq(Cat(*(s.ready for s in slices)).all()),
                     outer.l3_flushing.eq(Cat(*(s.flushing for s in slices)).any())]
    for i in range(P):
        connect(m, downs[i], flipped(getattr(outer, f"hbm{i}")))
    return slices


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
