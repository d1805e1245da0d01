"""AXI4 arbiter: ``masters`` AXI4 masters (slave ports ``m0`` .. ``m<n-1>``: the chip's scheduler and its DSA
engines) joined into one AXI4 master ``bus`` (toward the shared L3 / HBM side), with no cycle of latency on
any channel.

IDs: ``bus`` IDs are ``S = max(1, ceil_log2(masters))`` bits wider than the masters' ``I``. A request of master
``i`` with ID ``x`` goes out with ID ``(i << I) | x``; an R beat / B response with ID ``y`` goes back to master
``y >> I`` with ID ``y & (2**I - 1)``. Responses whose top bits name no master (only possible with a slave that
invents IDs) are accepted and dropped, so they cannot hang the bus.

Channels (every data path is combinational; a registered grant state decides only which master is shown):

- AR: let ``last`` be the master of the most recent AR handshake on ``bus`` (``masters - 1`` after reset, so
  master 0 goes first). In a cycle in which no AR is *held* (``bus`` ARVALID was low, or handshaken, in the
  cycle before), ``bus`` shows the AR of the first master with ARVALID in the order ``last + 1, last + 2, ..,
  last + masters`` (mod ``masters``): round robin, the last granted master has the lowest priority. Once shown
  it is held, unchanged, until ARREADY, even if a master of higher priority raises ARVALID meanwhile. The
  shown master's ARREADY is ``bus`` ARREADY; every other master sees ARREADY low.
- AW: the same, with its own ``last`` and hold, and one more condition: a new AW is shown only while the W
  order FIFO (``outstanding`` entries) is not full at the start of the cycle.
- W: the FIFO holds the master of every AW handshaken on ``bus`` whose last W beat has not passed, in ``bus``
  order. ``bus`` carries the W channel of the master at the head of the FIFO until WLAST, which pops it; with
  the FIFO empty it carries the W channel of the master whose AW is being shown on ``bus`` (so W beats may
  pass before or with their AW handshake, as AXI allows, and a slave that waits for WVALID before AWREADY
  does not deadlock). A W burst completed ahead of its AW handshake is remembered (``w_ahead``), so that AW
  is not queued. Every other master sees WREADY low.
- R / B: ``bus`` RVALID/BVALID and payload go to the master named by the ID's top bits; ``bus`` RREADY/BREADY
  is that master's RREADY/BREADY.

Timing rule (what a Python model of the arbiter computes): an AR presented by master ``i`` in cycle ``t`` with
no competitor (no other master's ARVALID in cycle ``t``, no AR held on ``bus``) appears on ``bus`` in cycle
``t`` (X = 0), and its handshake on ``m<i>`` is its handshake on ``bus``, in the same cycle; with competitors it
appears in the first cycle the rule above picks it, after at most ``masters - 1`` other bursts. AW likewise
(X = 0), given the FIFO is not full. A W beat of master ``i`` passes in the cycle it is presented once its
AW is at the head of the W order (or shown on ``bus`` with the FIFO empty), and ``bus`` WREADY is high. R and B
handshakes on ``bus`` are the handshakes on the addressed master, in the same cycle. Response order per
master and ID is the slave's order (the arbiter never reorders).

No combinational path runs from a READY to a VALID: ``bus`` VALIDs depend on the masters' VALIDs and on
registers (hold, ``last``, FIFO level, ``w_ahead``) only, and READYs go the other way.

With ``masters == 1`` the arbiter is a plain connection (no FIFO, no register): ``bus`` IDs are the master's
IDs with a top bit 0, and every response goes to ``m0`` whatever its top ID bit.
"""
from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from hwgen.rtl.memory.axi import AxiSignature

#: default depth of the W order FIFO: AWs accepted on ``bus`` whose W beats have not all passed
OUTSTANDING = 8


class AxiArbiter(wiring.Component):
    """``m0`` .. ``m<masters-1>`` (slave ports, ``In(AxiSignature(A, D, I))``) -> ``bus`` (master,
    ``Out(AxiSignature(A, D, I + S))``); see the module docstring for the rules.

    ``cfg_or_params``: a chip config (the masters get ``signatures.hbm_axi(cfg)``: ``isa`` hbm_addr bits,
    ``cfg.beat_bytes * 8``, ``cfg.axi_id_bits``), an ``AxiSignature`` (the masters' signature) or ``None``;
    ``addr_width`` / ``data_width`` / ``id_width`` override it (all three are needed with ``None``).
    ``outstanding``: depth of the W order FIFO.
    """

    def __init__(self, cfg_or_params=None, masters: int = 2, *, addr_width: int | None = None,
                 data_width: int | None = None, id_width: int | None = None, outstanding: int = OUTSTANDING):
        if isinstance(cfg_or_params, AxiSignature):
            base = cfg_or_params
        elif cfg_or_params is not None:
            from hwgen.rtl import signatures
            base = signatures.hbm_axi(cfg_or_params)
        else:
            base = None
        params = {"addr_width": addr_width, "data_width": data_width, "id_width": id_width}
        for name, value in params.items():
            if value is None:
                if base is None:
                    raise TypeError(f"AxiArbiter: {name} is needed without a config or signature")
                params[name] = getattr(base, name)
        if not isinstance(masters, int) or not 1 <= masters <= 256:
            raise ValueError(f"masters: must be an integer in [1, 256], not {masters!r}")
        if not isinstance(outstanding, int) or not 1 <= outstanding <= 1024:
            raise ValueError(f"outstanding: must be an integer in [1, 1024], not {outstanding!r}")
        self.masters = masters
        self.outstanding = outstanding
        self.sel_bits = max(1, ceil_log2(masters))
        self.id_width = params["id_width"]
        self.up_signature = AxiSignature(**params)
        self.bus_signature = AxiSignature(addr_width=params["addr_width"], data_width=params["data_width"],
                                          id_width=self.id_width + self.sel_bits)
        super().__init__({**{f"m{i}": In(self.up_signature) for i in range(masters)},
                          "bus": Out(self.bus_signature)})

    def tag(self, master: int, id_: int) -> int:
        """The ``bus`` ID of master ``master``'s ID ``id_``."""
        return master << self.id_width | id_

    def untag(self, bus_id: int) -> tuple[int, int]:
        """(master, ID) of a ``bus`` ID."""
        return bus_id >> self.id_width, bus_id & ((1 << self.id_width) - 1)

    def elaborate(self, platform):
        m = Module()
        ups = [getattr(self, f"m{i}") for i in range(self.masters)]
        bus = self.bus
        if self.masters == 1:
            up = ups[0]
            for ch in ("ar", "aw", "w"):
                self._forward(m, getattr(up, ch), getattr(bus, ch), 0)
                m.d.comb += [getattr(bus, ch).valid.eq(getattr(up, ch).valid),
                             getattr(up, ch).ready.eq(getattr(bus, ch).ready)]
            for ch in ("r", "b"):
                down, back = getattr(bus, ch), getattr(up, ch)
                self._copy(m, down, back)
                m.d.comb += [back.valid.eq(down.valid), down.ready.eq(back.ready)]
            return m

        self._arbitrate(m, "ar", [u.ar for u in ups], bus.ar, Const(1))

        # AW: a new AW needs room in the W order FIFO
        m.submodules.w_order = w_order = fifo.SyncFIFO(width=self.sel_bits, depth=self.outstanding)
        aw_sel, aw_take = self._arbitrate(m, "aw", [u.aw for u in ups], bus.aw, w_order.w_rdy)

        # W: the head of the order, or the AW on show when the order is empty (W may pass ahead of its AW)
        w_ahead = Signal()        # the shown AW's W burst already passed: do not queue it, do not pass more
        bypass = ~w_order.r_rdy & ~w_ahead & bus.aw.valid
        w_on = w_order.r_rdy | bypass
        w_sel = Signal(self.sel_bits)
        m.d.comb += w_sel.eq(Mux(w_order.r_rdy, w_order.r_data, aw_sel))
        with m.Switch(w_sel):
            for i, up in enumerate(ups):
                with m.Case(i):
                    m.d.comb += [bus.w.payload.eq(up.w.payload), bus.w.valid.eq(w_on & up.w.valid)]
        for i, up in enumerate(ups):
            m.d.comb += up.w.ready.eq(w_on & (w_sel == i) & bus.w.ready)
        w_last = bus.w.valid & bus.w.ready & bus.w.payload.last
        early_done = bypass & w_last
        m.d.comb += [w_order.r_en.eq(w_order.r_rdy & w_last),
                     w_order.w_data.eq(aw_sel),
                     w_order.w_en.eq(aw_take & ~w_ahead & ~early_done)]
        with m.If(aw_take):
            m.d.sync += w_ahead.eq(0)
        with m.Elif(early_done):
            m.d.sync += w_ahead.eq(1)

        self._route(m, bus.r, [u.r for u in ups])
        self._route(m, bus.b, [u.b for u in ups])
        return m

    def _forward(self, m: Module, up, down, master: int) -> None:
        """``down``'s payload = ``up``'s (AR/AW: the ID tagged with ``master``)."""
        if "id" in dict(up.payload.shape()):
            for name, _ in up.payload.shape():
                value = getattr(up.payload, name)
                if name == "id":
                    value = Cat(value, Const(master, self.sel_bits))
                m.d.comb += getattr(down.payload, name).eq(value)
        else:
            m.d.comb += down.payload.eq(up.payload)

    @staticmethod
    def _copy(m: Module, down, up) -> None:
        """A response payload field by field (the layouts differ in the ID's width, so not as one value):
        the ID is truncated to the master's bits."""
        for name, _ in up.payload.shape():
            m.d.comb += getattr(up.payload, name).eq(getattr(down.payload, name))

    def _arbitrate(self, m: Module, name: str, ups, down, room):
        """An address channel: round robin with hold (module docstring). Returns (selected master,
        handshake on ``down``)."""
        n = self.masters
        held = Signal(name=f"{name}_held")            # shown and not accepted: keep showing it (AXI)
        held_sel = Signal(range(n), name=f"{name}_held_sel")
        last = Signal(range(n), init=n - 1, name=f"{name}_last")   # lowest priority next time
        sel = Signal(range(n), name=f"{name}_sel")
        any_valid = Signal(name=f"{name}_any")
        with m.If(held):
            m.d.comb += [sel.eq(held_sel), any_valid.eq(1)]
        with m.Else():
            with m.Switch(last):
                for lo in range(n):
                    with m.Case(lo):
                        # later assignments win: walk from lowest to highest priority
                        for k in reversed(range(1, n + 1)):
                            i = (lo + k) % n
                            with m.If(ups[i].valid):
                                m.d.comb += [sel.eq(i), any_valid.eq(1)]
        with m.Switch(sel):
            for i, up in enumerate(ups):
                with m.Case(i):
                    self._forward(m, up, down, i)
        m.d.comb += down.valid.eq(any_valid & room)
        for i, up in enumerate(ups):
            m.d.comb += up.ready.eq(any_valid & room & (sel == i) & down.ready)
        take = down.valid & down.ready
        with m.If(take):
            m.d.sync += [held.eq(0), last.eq(sel)]
        with m.Elif(down.valid):
            m.d.sync += [held.eq(1), held_sel.eq(sel)]
        return sel, take

    def _route(self, m: Module, down, ups) -> None:
        """A response channel: ``down``'s beat goes to the master its ID's top bits name."""
        target = down.payload.id[self.id_width:]
        for i, up in enumerate(ups):
            self._copy(m, down, up)
            m.d.comb += up.valid.eq(down.valid & (target == i))
        m.d.comb += down.ready.eq(1)                           # no such master: drop the beat
        with m.Switch(target):
            for i, up in enumerate(ups):
                with m.Case(i):
                    m.d.comb += down.ready.eq(up.ready)
