"""The chip: the DSA engine and its memory side, up to the HBM ports.

```
 engine.hbm (one AXI4 master: LOAD reads, STORE writes, TLB walks)
     |
   [ L3 cache: goes here, between the engine's master and the interleaver's slave ]
     |
 HbmInterleaver (hwgen/hbm_interleaver.py): burst at address a -> port (a // interleave_bytes) % ports
     |
 hbm0 .. hbm<P-1> (AXI4 masters, outside the chip; build.top_component names them m_axi_hbm<i>_*)
```

``DsaTop`` has every port of ``DsaEngine`` but ``hbm`` under the same name, plus ``hbm0`` .. ``hbm<P-1>``.
The memory side adds no cycle on any AXI channel (see the interleaver's timing rule), so the engine's timing
and the simulator's model (``sim/memory/dma.py``) hold unchanged.

``chip(cfg)`` is the component the generator wraps in Vivado names: the engine alone while the memory side
is a single wire (one port, no L3), so that configuration's Verilog stays exactly the engine's; ``DsaTop``
otherwise. ``axi_ports(cfg)`` maps its AXI members to the top-level prefixes.
"""
from __future__ import annotations

from amaranth import Module
from amaranth.hdl import ValueCastable
from amaranth.lib import wiring
from amaranth.lib.wiring import Out, connect, flipped

from . import signatures
from .engine import DsaEngine
from .hbm_interleaver import HbmInterleaver

#: the engine's AXI4 master toward memory
ENGINE_HBM = "hbm"


def hbm_prefix(port: int) -> str:
    """Vivado-inferable prefix of HBM port ``port``: ``m_axi_hbm<port>``."""
    return f"m_axi_hbm{port}"


class DsaTop(wiring.Component):
    """The engine, the interleaver and ``cfg.memory.ports`` HBM masters ``hbm<i>``; see the module docstring."""

    def __init__(self, cfg):
        self._cfg = cfg
        self._engine = DsaEngine(cfg)
        members = {name: member for name, member in self._engine.signature.members.items() if name != ENGINE_HBM}
        members.update({f"hbm{i}": Out(signatures.hbm_axi(cfg)) for i in range(cfg.memory.ports)})
        super().__init__(members)

    @property
    def engine(self) -> DsaEngine:
        return self._engine

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        m.submodules.engine = engine = self._engine
        for path, member, inner in engine.signature.flatten(engine):
            if path[0] == ENGINE_HBM:
                continue
            outer = self
            for name in path:
                outer = getattr(outer, name)
            outer, inner = (x.as_value() if isinstance(x, ValueCastable) else x for x in (outer, inner))
            m.d.comb += outer.eq(inner) if member.flow == Out else inner.eq(outer)

        # the master the memory side serves; an L3 cache would sit here: engine.hbm -> L3 -> interleaver.bus
        upstream = engine.hbm

        m.submodules.interleaver = interleaver = HbmInterleaver(cfg)
        connect(m, upstream, interleaver.bus)
        for i in range(cfg.memory.ports):
            connect(m, getattr(interleaver, f"port{i}"), flipped(getattr(self, f"hbm{i}")))
        return m


def chip(cfg) -> wiring.Component:
    """The component behind the top-level names: ``DsaEngine`` for one port (no memory side to add),
    else ``DsaTop``."""
    return DsaEngine(cfg) if cfg.memory.ports == 1 else DsaTop(cfg)


def axi_ports(cfg) -> dict[str, str]:
    """AXI members of ``chip(cfg)`` -> top-level prefix (``hwgen.axi.VivadoTop``'s map)."""
    if cfg.memory.ports == 1:
        return {ENGINE_HBM: hbm_prefix(0)}
    return {f"hbm{i}": hbm_prefix(i) for i in range(cfg.memory.ports)}
