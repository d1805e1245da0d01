"""HBM port interleaver: one AXI4 slave (the engine's ``hbm`` master) in front of ``cfg.memory.ports`` AXI4
masters (``port0`` .. ``port<P-1>``, the chip's ``m_axi_hbm<i>``), with no cycle of latency on any channel.

Routing (the rule of ``sim.model.memory.axi_port.HbmPorts.port_of``): a burst at address ``a`` goes to port
``(a // interleave_bytes) % ports``, i.e. address bits ``[log2(interleave_bytes), + log2(ports))``. The whole
burst goes there: masters must not let a burst cross an interleave boundary (the DMA never does, see
``hwgen/spec/axi.burst_boundary``). Addresses, IDs and data pass unchanged (the ports see physical
addresses, as ``HbmPorts`` and the HBM model do).

Channels (every path is combinational; handshakes on the slave side and on the port happen in the same
cycle):
- AR / AW: VALID goes to the addressed port only; the slave's READY is that port's READY. The port index is
  pushed into an order FIFO on the handshake (AR: ``r_order``; AW: ``w_route`` and ``b_order``). While an
  order FIFO is full the request waits (VALID is withheld from the port, READY low on the slave side).
- W: beats go to the port at the head of ``w_route`` (the port of the oldest AW whose last W beat has not
  passed); WLAST pops it. A W beat whose AW has not been accepted waits (WREADY low) -- legal AXI, since the
  interleaver accepts AW without waiting for W, and never the case for ``DmaStore``, which sends the beats of
  a burst only after its AW handshake.
- R / B: the slave sees the response channel of the port at the head of ``r_order`` / ``b_order`` (RVALID,
  payload) and only that port sees RREADY / BREADY; RLAST / the B handshake pops the FIFO.
  A port's response that is ready before its turn waits at the port (its VALID high, READY low), so the
  slave gets R beats and B responses exactly in request order over all ports.

Timing rule (what ``sim.model.memory.dma.DmaUnits`` computes): with the FIFOs not full, an AR/AW/W handshake on
the slave side is the handshake on the port, in the same cycle; R beat (B response) ``k`` of the merged
request order is handshaken in the cycle ``max(cycle its port presents it, handshake of response k-1 + 1)``
when the master's READY is high -- at 0 % stalls a port presents a beat in ``max(HbmPorts' ready cycle,
its own previous handshake + 1)`` and its own previous handshake is at most the merged one, so this is
``max(ready_k, h_{k-1} + 1)``, one response per cycle in request order. The head of an order FIFO moves
in the cycle after the handshake that pops it, which is where ``h_{k-1} + 1`` puts the next response anyway,
and a pushed entry is visible in the cycle after its request handshake, the first cycle a response may come
(``HbmPorts``: ``ready >= request cycle + 1``).

In-order by construction, whatever the ports do: a port that returns different IDs out of order still
keeps each ID in order (AXI), and the FIFO only counts bursts per port, so the slave side keeps per-ID order.

FIFO depths (``read_depth(cfg)`` / ``write_depth(cfg)``, also properties of the instance): an entry lives from
the request handshake to the response that pops it, never longer than the master counts that burst in flight,
so the depth is the most bursts the engine can have in flight per direction: reads ``memory.outstanding``
(LOAD, ``dma_load``: from AR to the last R beat) + ``TLB_WALKS`` (the TLBs read one page-table entry at a
time, through the LOAD unit, ``hwgen/rtl/engine/engine.py``); writes ``memory.outstanding`` (STORE, ``dma_store``: from
AW to B). Deeper traffic is still correct (the full FIFO holds the request back) but then takes longer than
the simulator's model.

With ``ports == 1`` the interleaver is a plain connection (no FIFO); the chip top does not instantiate it.
"""
from __future__ import annotations

from amaranth import Module
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out, connect, flipped
from amaranth.utils import exact_log2

from hwgen.rtl import signatures

#: page-table reads the engine's TLBs keep in flight at once (hwgen/rtl/engine/engine.py: one walk on the bus at a time)
TLB_WALKS = 1


def read_depth(cfg) -> int:
    """Entries of the R order FIFO: the reads the engine can have in flight (LOAD bursts + TLB walks)."""
    return cfg.memory.outstanding + TLB_WALKS


def write_depth(cfg) -> int:
    """Entries of the W route and B order FIFOs: the writes the engine can have in flight (STORE bursts)."""
    return cfg.memory.outstanding


class HbmInterleaver(wiring.Component):
    """``bus`` (slave, ``signatures.hbm_axi(cfg)`` flipped) -> ``port0`` .. ``port<P-1>`` (masters); see the
    module docstring for the routing and the timing rule."""

    def __init__(self, cfg, id_width: int | None = None):
        self._cfg = cfg
        self.ports = cfg.memory.ports
        sig = signatures.hbm_axi(cfg, id_width)
        super().__init__({"bus": In(sig), **{f"port{i}": Out(sig) for i in range(self.ports)}})

    @property
    def read_depth(self) -> int:
        return read_depth(self._cfg)

    @property
    def write_depth(self) -> int:
        return write_depth(self._cfg)

    def port_select(self, addr):
        """The port index of a byte address (a slice of it): ``HbmPorts.port_of`` in hardware."""
        lo = exact_log2(self._cfg.memory.interleave_bytes)
        return addr[lo:lo + exact_log2(self.ports)]

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        ports = [getattr(self, f"port{i}") for i in range(self.ports)]
        if self.ports == 1:
            connect(m, flipped(bus), flipped(ports[0]))
            return m
        width = exact_log2(self.ports)
        m.submodules.r_order = r_order = fifo.SyncFIFO(width=width, depth=self.read_depth)
        m.submodules.w_route = w_route = fifo.SyncFIFO(width=width, depth=self.write_depth)
        m.submodules.b_order = b_order = fifo.SyncFIFO(width=width, depth=self.write_depth)

        # AR: to the addressed port; its index joins the R order
        self._request(m, bus.ar, [p.ar for p in ports], r_order.w_rdy)
        m.d.comb += [r_order.w_data.eq(self.port_select(bus.ar.payload.addr)),
                     r_order.w_en.eq(bus.ar.valid & bus.ar.ready)]

        # AW: to the addressed port; its index joins the W route and the B order
        self._request(m, bus.aw, [p.aw for p in ports], w_route.w_rdy & b_order.w_rdy)
        aw_take = bus.aw.valid & bus.aw.ready
        aw_port = self.port_select(bus.aw.payload.addr)
        m.d.comb += [w_route.w_data.eq(aw_port), w_route.w_en.eq(aw_take),
                     b_order.w_data.eq(aw_port), b_order.w_en.eq(aw_take)]

        # W: to the port of the oldest AW with beats to come; WLAST moves on
        w_port = w_route.r_data
        for i, port in enumerate(ports):
            m.d.comb += [port.w.payload.eq(bus.w.payload),
                         port.w.valid.eq(bus.w.valid & w_route.r_rdy & (w_port == i))]
        with m.Switch(w_port):
            for i, port in enumerate(ports):
                with m.Case(i):
                    m.d.comb += bus.w.ready.eq(w_route.r_rdy & port.w.ready)
        m.d.comb += w_route.r_en.eq(bus.w.valid & bus.w.ready & bus.w.payload.last)

        # R / B: from the port at the head of the order; RLAST / B moves on
        self._response(m, bus.r, [p.r for p in ports], r_order)
        m.d.comb += r_order.r_en.eq(bus.r.valid & bus.r.ready & bus.r.payload.last)
        self._response(m, bus.b, [p.b for p in ports], b_order)
        m.d.comb += b_order.r_en.eq(bus.b.valid & bus.b.ready)
        return m

    def _request(self, m: Module, up, downs, room) -> None:
        """An address channel: ``up`` (from the master) to the port its address selects, while ``room``."""
        select = self.port_select(up.payload.addr)
        for i, down in enumerate(downs):
            m.d.comb += [down.payload.eq(up.payload), down.valid.eq(up.valid & room & (select == i))]
        with m.Switch(select):
            for i, down in enumerate(downs):
                with m.Case(i):
                    m.d.comb += up.ready.eq(room & down.ready)

    @staticmethod
    def _response(m: Module, up, downs, order: fifo.SyncFIFO) -> None:
        """A response channel: ``up`` (to the master) shows the port at the head of ``order``."""
        head = order.r_data
        for i, down in enumerate(downs):
            m.d.comb += down.ready.eq(up.ready & order.r_rdy & (head == i))
        with m.Switch(head):
            for i, down in enumerate(downs):
                with m.Case(i):
                    m.d.comb += [up.valid.eq(order.r_rdy & down.valid), up.payload.eq(down.payload)]
