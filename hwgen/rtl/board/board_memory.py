"""On-chip RAM standing in for HBM on a board: ``cfg.board.memory_bytes`` bytes in one ``BlockRam`` (one registered
read port, one write port with byte enables), one chip beat (``cfg.beat_bytes``) per word.

Ports: ``hbm0`` .. ``hbm<P-1>`` (AXI4 slaves with the chip's HBM port signature, ``P = cfg.memory.ports``; they
share the RAM) and ``host`` (the host bridge's 32-bit word port, ``HostPort``).

Each port's AW and AR pass a two-entry FIFO (``lib.fifo.SyncFIFO``) first, so their ready comes from the FIFO's
level register: the chip's AW / AR valid never meets the host's request, the other channel or another port in the
cycle it is offered. (Unbuffered, the chip's worst routed path ran from the host bridge's request through AR's ready,
the arbiter and the LOAD unit into its TLB.) The FIFOs add a cycle to each transaction's start; the board memory
stands outside the simulated chip, whose cycles do not include it.

Rules: one transaction at a time, in the order taken: when idle, a host request first (the host touches memory
only while the chip is idle), else an AW or an AR (alternating when both wait), lowest port first. A read burst
streams one beat per cycle while RREADY is high; a write burst takes its W beats after its AW (WREADY is low
until then; AWREADY does not wait for WVALID), then answers B. A write lands in the RAM a cycle after its beat
(registered), before the burst's B and so before any later access. A read's data is the RAM's registered output: its
first beat comes three cycles after its AR leaves the FIFO. INCR bursts with full-width beats; the response
carries the request's ID. A beat outside the memory reads as zeros and is not written, and its RRESP / the
burst's BRESP is SLVERR; so is every beat of a FIXED / WRAP burst or of a narrow one (AxSIZE below the beat), which
are not supported. Host requests are answered on ``host.resp`` from the second cycle after they are taken.
"""
from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, Value
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from hwgen.rtl import signatures
from hwgen.rtl.block_ram import BlockRam
from hwgen.spec.axi import BURST_INCR, RESP_OKAY, RESP_SLVERR


class HostPort(wiring.Signature):
    """The bridge's port into the board memory, from the bridge's side: ``req`` (word address, write, data) and
    ``resp`` (the read word, or 0 after a write), one response per request."""

    def __init__(self, addr_width: int):
        self.addr_width = addr_width
        super().__init__({
            "req": Out(stream.Signature(data.StructLayout({"addr": addr_width, "write": 1, "data": 32}))),
            "resp": In(stream.Signature(32)),
        })

    def __eq__(self, other):
        return type(other) is type(self) and other.addr_width == self.addr_width

    def __hash__(self):
        return hash((type(self), self.addr_width))


def host_addr_width(memory_bytes: int) -> int:
    """Bits of a 32-bit word address into ``memory_bytes``."""
    return max(1, ceil_log2(memory_bytes // 4))


class BoardMemory(wiring.Component):
    """See the module docstring. ``id_width``: the chip's HBM ID width (``Chip.mem_id_bits``)."""

    def __init__(self, cfg, id_width: int):
        self._cfg = cfg
        self.memory_bytes = cfg.board.memory_bytes
        self.beat_bytes = cfg.beat_bytes
        if self.memory_bytes < self.beat_bytes:
            raise ValueError(f"board.memory_bytes: {self.memory_bytes} is not allowed (allowed: at least one beat, "
                             f"{self.beat_bytes} bytes)")
        self.depth = self.memory_bytes // self.beat_bytes
        self._axi = signatures.hbm_axi(cfg, id_width)
        members = {f"hbm{i}": In(self._axi) for i in range(cfg.memory.ports)}
        members["host"] = In(HostPort(host_addr_width(self.memory_bytes)))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        B, depth, sig = self.beat_bytes, self.depth, self._axi
        # a registered read (the block RAM's own output register on an ECP5): the RAM's data goes straight into
        # the R channel's payload register, so no 5.83 ns DP16KD clock-to-output stands in front of the chip's
        # logic (the whole chip's worst path ran from it through the LOAD unit into a TLB)
        m.submodules.ram = ram = BlockRam(8 * B, depth, granularity=8)
        rp = ram.read
        m.d.comb += [rp.en.eq(0), rp.take.eq(0)]
        # writes are registered on their way to the RAM (a W beat lands a cycle after its handshake, before the
        # burst's B and so before any later access): the chip's WVALID, through the arbiter, stops at a register
        # instead of running on into the address and enables of tiles across the die
        wp = ram.write.signature.flip().create(path=("write",))
        m.d.sync += [ram.write.addr.eq(wp.addr), ram.write.data.eq(wp.data), ram.write.en.eq(wp.en)]
        ports = [getattr(self, f"hbm{i}") for i in range(self._cfg.memory.ports)]
        # what the FSM below takes an AW / AR from: each port's two-entry FIFO (``requests[i]["ar"]``)
        requests = [{ch: self._buffered(m, f"{ch}{i}", getattr(p, ch)) for ch in ("aw", "ar")}
                    for i, p in enumerate(ports)]
        host = self.host
        lsb = exact_log2(B)
        sel_bits = exact_log2(B // 4)               # the 32-bit word within a beat (host accesses)
        words = B // 4

        port = Signal(range(max(2, len(ports))))    # the transaction in progress: its port, ID, beat address
        tid = Signal(sig.id_width)
        addr = Signal(sig.addr_width - lsb)
        left = Signal(9)                            # beats still to read
        bad = Signal()                              # the whole burst is SLVERR (not INCR, or narrow)
        werr = Signal()                             # a beat of the write burst was SLVERR
        prefer_write = Signal()
        host_word = Signal(max(1, sel_bits))
        # a read beat in the RAM's output (``held``), then on the R channel (``r_valid``; its data is the read
        # port's register): the next beat waits in the RAM's output while the master holds RREADY low
        held, h_last, h_resp = Signal(), Signal(), Signal(2)
        r_valid, r_last, r_resp = Signal(), Signal(), Signal(2)
        in_range = Signal()
        m.d.comb += in_range.eq(addr < depth)

        def port_rready():
            ready = Signal(name="port_rready")
            for i, p in enumerate(ports):
                with m.If(port == i):
                    m.d.comb += ready.eq(p.r.ready)
            return ready

        def take(ch: str) -> None:
            """Accept the AW / AR of the lowest port that offers one."""
            with m.If(requests[0][ch].valid):
                accept(0, ch)
            for i in range(1, len(ports)):
                with m.Elif(requests[i][ch].valid):
                    accept(i, ch)

        def accept(i: int, ch: str) -> None:
            a = requests[i][ch]
            m.d.comb += a.ready.eq(1)
            m.d.sync += [port.eq(i), tid.eq(a.payload.id), addr.eq(a.payload.addr[lsb:]), left.eq(a.payload.len + 1),
                         bad.eq((a.payload.burst != BURST_INCR) | (a.payload.size != sig.size)), werr.eq(0)]

        with m.FSM():
            with m.State("IDLE"):
                aw_any = Cat(r["aw"].valid for r in requests).any()
                ar_any = Cat(r["ar"].valid for r in requests).any()
                with m.If(host.req.valid):
                    req = host.req.payload
                    m.d.comb += [host.req.ready.eq(1), wp.addr.eq(req.addr[sel_bits:]),
                                 rp.addr.eq(req.addr[sel_bits:]), rp.en.eq(~req.write)]
                    for w in range(words):
                        m.d.comb += wp.data[32 * w:32 * w + 32].eq(req.data)
                        with m.If(req.write & ((req.addr[:sel_bits] == w) if sel_bits else 1)):
                            m.d.comb += wp.en[4 * w:4 * w + 4].eq(0xF)
                    if sel_bits:
                        m.d.sync += host_word.eq(req.addr[:sel_bits])
                    m.next = "HOST_TAKE"
                with m.Elif(aw_any & (prefer_write | ~ar_any)):
                    m.d.sync += prefer_write.eq(0)
                    take("aw")
                    m.next = "WRITE"
                with m.Elif(ar_any):
                    m.d.sync += prefer_write.eq(1)
                    take("ar")
                    m.next = "READ"
            with m.State("HOST_TAKE"):
                m.d.comb += rp.take.eq(1)                   # the word read moves into the port's register
                m.next = "HOST_RESP"
            with m.State("HOST_RESP"):
                # after a write the read port was not enabled and the word is don't-care: the bridge ignores it
                m.d.comb += host.resp.valid.eq(1)
                with m.Switch(host_word):
                    for w in range(words):
                        with m.Case(w):
                            m.d.comb += host.resp.payload.eq(rp.data[32 * w:32 * w + 32])
                with m.If(host.resp.ready):
                    m.next = "IDLE"
            with m.State("READ"):
                # one beat per cycle while RREADY is high: a beat is read in the cycle the RAM's output has room
                rready = port_rready()
                to_port = held & (~r_valid | rready)
                read = (~held | to_port) & (left != 0)
                m.d.comb += [rp.addr.eq(addr), rp.en.eq(read), rp.take.eq(to_port)]
                with m.If(read):
                    m.d.sync += [held.eq(1), h_last.eq(left == 1), addr.eq(addr + 1), left.eq(left - 1),
                                 h_resp.eq(Mux(in_range & ~bad, RESP_OKAY, RESP_SLVERR))]
                with m.Elif(to_port):
                    m.d.sync += held.eq(0)
                with m.If(to_port):
                    m.d.sync += [r_valid.eq(1), r_last.eq(h_last), r_resp.eq(h_resp)]
                with m.Elif(r_valid & rready):
                    m.d.sync += r_valid.eq(0)
                    with m.If(r_last):
                        m.next = "IDLE"
            with m.State("WRITE"):
                for i, p in enumerate(ports):
                    with m.If(port == i):
                        m.d.comb += p.w.ready.eq(1)
                        with m.If(p.w.valid):
                            m.d.comb += [wp.addr.eq(addr), wp.data.eq(p.w.payload.data)]
                            with m.If(in_range & ~bad):
                                m.d.comb += wp.en.eq(p.w.payload.strb)
                            with m.Else():
                                m.d.sync += werr.eq(1)
                            m.d.sync += addr.eq(addr + 1)
                            with m.If(p.w.payload.last):
                                m.next = "WRITE_RESP"
            with m.State("WRITE_RESP"):
                for i, p in enumerate(ports):
                    with m.If(port == i):
                        m.d.comb += [p.b.valid.eq(1), p.b.payload.id.eq(tid),
                                     p.b.payload.resp.eq(Mux(werr | bad, RESP_SLVERR, RESP_OKAY))]
                        with m.If(p.b.ready):
                            m.next = "IDLE"

        for i, p in enumerate(ports):        # R: the data is the read port's register, which holds while waiting
            with m.If(port == i):
                m.d.comb += [p.r.valid.eq(r_valid), p.r.payload.id.eq(tid), p.r.payload.last.eq(r_last),
                             p.r.payload.resp.eq(r_resp)]
                with m.If(r_resp == RESP_OKAY):
                    m.d.comb += p.r.payload.data.eq(rp.data)
        return m

    @staticmethod
    def _buffered(m: Module, name: str, channel):
        """``channel`` (an AW or AR stream in) through a two-entry FIFO: its ready is the FIFO's ``w_rdy``, a
        compare of the level register. Returns the FIFO's side as a stream interface (valid, payload, ready)."""
        m.submodules[f"{name}_fifo"] = q = fifo.SyncFIFO(width=Value.cast(channel.payload).shape().width, depth=2)
        out = stream.Signature(channel.payload.shape()).flip().create(path=(name,))
        m.d.comb += [q.w_data.eq(channel.payload), q.w_en.eq(channel.valid), channel.ready.eq(q.w_rdy),
                     out.payload.eq(q.r_data), out.valid.eq(q.r_rdy), q.r_en.eq(out.ready)]
        return out
