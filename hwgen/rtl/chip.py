"""The whole chip: the host's AXI4-Lite CSR block, the ASA scheduler, ``scheduler.engines`` DSA engines and the
memory side (L3, interleaver, HBM ports), as the design brief draws it::

 s_axi_ctrl (host) ── CsrBlock (hwgen/spec/csr_map.py; irq = irq.done & irq_enable)
                          │ start, program_base, policy        ▲ status, errors, counters
                      ┌───▼────┐
                      │  Asa   │ loads the program over its own AXI master, feeds task<e> to engine e
                      └─┬────┬─┘
                  DsaEngine 0 .. N-1 (each its L1, output buffer, DMA units and TLBs)
      AxiArbiter: master 0 = the scheduler, 1 + e = engine e (ID = master << engine ID bits | ID)
                           │
                memory side (hwgen/top.memory_side): L3 -> interleaver -> m_axi_hbm<i>

The host: wait for ``status.l3_ready``, write ``program_base`` (and ``policy``), write 1 to ``control.start``;
``irq`` rises (if ``irq_enable``) when the program is done; then ``control.l3_flush`` and wait for
``status.l3_flushing`` to fall before reading results from HBM. Counters are cleared at start. The engines
take their page table from the program's header (through the scheduler); ``control.tlb_flush`` empties their
TLBs. The CSR map is written once (``hwgen/spec/csr_map.py``) and exported beside the Verilog as Markdown, JSON
and a C header.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, connect

from hwgen.rtl import signatures
from hwgen.rtl.engine.engine import DsaEngine
from hwgen.rtl.memory.axi import AxiLiteSignature
from hwgen.rtl.memory.axi_arbiter import AxiArbiter
from hwgen.rtl.scheduler.asa import Asa
from hwgen.rtl.scheduler.csr import CsrBlock
from hwgen.rtl.top import hbm_prefix, memory_side
from hwgen.spec.config import check_memory_side
from hwgen.spec.csr_map import COUNTERS, VERSION, csr_map


class Chip(wiring.Component):
    """See the module docstring. Members: ``ctrl`` (AXI4-Lite slave), ``hbm0`` .. ``hbm<P-1>`` (AXI4 masters),
    ``irq`` and the scheduler's trace ``trace_*`` (``trace_widths``)."""

    def __init__(self, cfg):
        check_memory_side(cfg)
        self._cfg = cfg
        self.csr_map = csr_map(cfg)
        self._arbiter = AxiArbiter(cfg, masters=cfg.scheduler.engines + 1)
        self.mem_id_bits = self._arbiter.id_width + self._arbiter.sel_bits
        members = {"ctrl": In(AxiLiteSignature(addr_width=self.csr_map.address_bits, data_width=32)),
                   "irq": Out(1)}
        # the scheduler's trace, for testbenches and logic analysers: a task issued (or skipped) in this cycle,
        # a completion popped in this cycle
        members.update({f"trace_{name}": Out(width) for name, width in trace_widths(cfg).items()})
        members.update({f"hbm{i}": Out(signatures.hbm_axi(cfg, self.mem_id_bits)) for i in range(cfg.memory.ports)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        E = cfg.scheduler.engines
        m.submodules.csr = csr = CsrBlock(self.csr_map)
        m.submodules.asa = asa = Asa(cfg)
        m.submodules.arbiter = arb = self._arbiter
        engines = [DsaEngine(cfg) for _ in range(E)]
        connect(m, wiring.flipped(self.ctrl), csr.bus)

        # the memory side, and its L3 controls on local signals the CSRs read and drive
        side = SimpleNamespace(l3_ready=Signal(), l3_flush=Signal(), l3_flushing=Signal(),
                               **{f"hbm{i}": getattr(self, f"hbm{i}") for i in range(cfg.memory.ports)})
        memory_side(m, cfg, arb.bus, _stream_hint(m, arb, engines), side, self.mem_id_bits)

        connect(m, asa.bus, arb.m0)
        for e, eng in enumerate(engines):
            m.submodules[f"engine{e}"] = eng
            connect(m, asa.tasks(e), eng.task)
            connect(m, eng.hbm, getattr(arb, f"m{e + 1}"))
            m.d.comb += [asa.idle[e].eq(eng.idle), eng.clear.eq(csr.control[0]),
                         eng.page_table_base.eq(asa.page_table_base),
                         eng.page_table_entries.eq(asa.page_table_entries), eng.tlb_flush.eq(csr.control[2])]

        # control and status
        done_prev = Signal()
        m.d.sync += done_prev.eq(asa.done)
        idle_all = Signal()
        m.d.comb += idle_all.eq(sum(eng.idle for eng in engines) == E)
        l3_ready = side.l3_ready if cfg.l3.enabled else 1
        l3_flushing = side.l3_flushing if cfg.l3.enabled else 0
        m.d.comb += [
            asa.start.eq(csr.control[0]), asa.program_base.eq(csr.program_base), asa.policy.eq(csr.policy),
            side.l3_flush.eq(csr.control[1]),
            csr.version.eq(VERSION),
            csr.status.eq(Cat(asa.busy, asa.done, l3_ready, l3_flushing, idle_all)),
            csr.irq_set.eq(asa.done & ~done_prev),
            self.irq.eq(csr.irq & csr.irq_enable),
            csr.error.eq(asa.error.as_value()),
            csr.page_fault.eq(Cat(*(eng.page_fault.as_value() for eng in engines))),
            csr.dma_error.eq(Cat(*(eng.dma_error for eng in engines))),
            csr.predicates.eq(asa.predicates[:len(csr.predicates)]),
        ]
        for name in trace_widths(cfg):
            m.d.comb += getattr(self, f"trace_{name}").eq(getattr(asa, name))
        for name in COUNTERS:
            m.d.comb += getattr(csr, name).eq(getattr(asa, name))
        m.d.comb += [csr.lane_macs.eq(sum(eng.elems for eng in engines) * cfg.engine.lanes),
                     csr.gated_macs.eq(sum(eng.gated for eng in engines))]

        # bytes per level: beats handshaken at the arbiter (above the L3) and on the HBM ports, cleared at start. A
        # cycle's beats are registered before they are added (a handshake is the end of a path across components,
        # not the start of a 64-bit add); the counts are read after a run, many cycles after its last beat
        B = cfg.beat_bytes
        below = [getattr(self, f"hbm{i}") for i in range(cfg.memory.ports)]
        for name, buses, channel in (("l3_read_bytes", [arb.bus], "r"), ("l3_write_bytes", [arb.bus], "w"),
                                     ("hbm_read_bytes", below, "r"), ("hbm_write_bytes", below, "w")):
            count = Signal(64, name=name)
            beats = Signal(range(len(buses) + 1), name=f"{name}_beats")
            m.d.sync += beats.eq(sum((getattr(b, channel).valid & getattr(b, channel).ready) for b in buses))
            with m.If(csr.control[0]):
                m.d.sync += count.eq(0)
            with m.Else():
                m.d.sync += count.eq(count + beats * B)
            m.d.comb += getattr(csr, name).eq(count)
        return m


def trace_widths(cfg) -> dict[str, int]:
    """The scheduler's trace outputs the chip brings out as ``trace_<name>``."""
    from hwgen.spec.task_table import HEADER
    task_bits = HEADER.bits("tasks")
    return {"picked": 1, "picked_task": task_bits, "picked_engine": max(1, (cfg.scheduler.engines - 1).bit_length()),
            "picked_skip": 1, "released": 1, "released_task": task_bits}


def _stream_hint(m: Module, arb: AxiArbiter, engines) -> Signal:
    """The read-once hint of the AR on the arbiter's bus: the granted engine's ``hbm_ar_stream`` (the
    scheduler's reads: 0). The arbiter shows the granted master's ID in the top bits of ARID."""
    hint = Signal()
    master = arb.bus.ar.payload.id >> arb.id_width
    for e, eng in enumerate(engines):
        with m.If(master == e + 1):
            m.d.comb += hint.eq(eng.hbm_ar_stream)
    return hint


def axi_ports(cfg) -> dict[str, str]:
    """AXI members of ``Chip`` -> top-level prefix (``hwgen.rtl.memory.axi.VivadoTop``'s map)."""
    return {"ctrl": "s_axi_ctrl", **{f"hbm{i}": hbm_prefix(i) for i in range(cfg.memory.ports)}}
