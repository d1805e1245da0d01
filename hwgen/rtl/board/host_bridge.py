"""The host bridge: frames of the host link (``hwgen/spec/host_link.py``, which states every rule) from a byte stream
to accesses of the chip's CSRs (an AXI4-Lite master, ``csr``) and of the board memory (``mem``,
``board_memory.HostPort``), and one response frame back per request.

``rx`` / ``tx``: byte streams (from ``UartRx`` / to ``UartTx``). The request header is collected into a register
laid out by ``REQUEST`` (byte i = bits 8i..8i+7, as the field table packs it), so the RTL reads the same fields the
driver packs; the CRC is ``host_link.crc8_byte`` applied to Amaranth values. A write's words go to a frame buffer
(``MAX_WORDS`` x 32 bits, block RAM) and are written out only after the data checksum matched; a read collects its
words there before the response goes out, so a BUS_ERROR in the middle still gives one well-formed answer.
``timeout`` (cycles) ends a frame whose next byte does not come in time with TIMEOUT. Bytes that arrive while a
frame executes or is answered are taken and dropped.

Status outputs: ``active`` (a frame is being received, executed or answered), ``error`` (the last answer was not
OK; for a LED), ``answered`` (a pulse per response sent).
"""
from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hwgen.rtl.block_ram import BlockRam
from hwgen.rtl.board.board_memory import HostPort, host_addr_width
from hwgen.rtl.memory.axi import AxiLiteSignature
from hwgen.rtl.signatures import struct_layout
from hwgen.spec import host_link as hl
from hwgen.spec.axi import RESP_OKAY


class HostBridge(wiring.Component):
    """See the module docstring. ``memory_bytes``: the board memory; ``csr_addr_width``: the chip's CSR address
    bits (the CSR space is ``2**csr_addr_width`` bytes); ``timeout``: cycles without a byte that end a frame."""

    def __init__(self, memory_bytes: int, csr_addr_width: int, timeout: int):
        if not isinstance(timeout, int) or timeout < 1:
            raise ValueError(f"timeout: {timeout!r} is not allowed (allowed: an integer >= 1, clock cycles)")
        self.memory_bytes, self.csr_bytes, self.timeout = memory_bytes, 1 << csr_addr_width, timeout
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "csr": Out(AxiLiteSignature(addr_width=csr_addr_width, data_width=32)),
            "mem": Out(HostPort(host_addr_width(memory_bytes))),
            "active": Out(1),
            "error": Out(1),
            "answered": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        C, S = hl.Command, hl.Status
        # the frame buffer reads through the block RAM's own output register (``BlockRam``): a word is read
        # continuously at ``words`` and is on ``buf_r.data`` two cycles after ``words`` changes (the FETCH and TAKE
        # states), so no DP16KD clock-to-output stands in front of the checksum or the CSR and memory writes
        m.submodules.buf = buf = BlockRam(32, hl.MAX_WORDS)
        buf_w, buf_r = buf.write, buf.read

        hdr = Signal(struct_layout(hl.REQUEST))          # the request header as received
        hdr_bits = hdr.as_value()
        n_req, n_resp = hl.REQUEST.bytes, hl.RESPONSE.bytes
        count = Signal(range(max(n_req, n_resp) + 1))   # header byte / byte within a word
        crc = Signal(8)
        # cycles left before TIMEOUT, minus one: counting down, its sign bit is the expiry (no wide compare in
        # front of the FSM)
        timer = Signal(signed(self.timeout.bit_length() + 1))

        def restart():
            return timer.eq(self.timeout - 1)
        status = Signal(8)          # the answer's status
        pending = Signal(8)         # a write's status from its header, given once the data is in
        words = Signal(16)          # data words received / accessed so far
        word = Signal(32)           # a word being received
        resp_len = Signal(16)
        csr_aw_done, csr_w_done = Signal(), Signal()
        byte = self.rx.payload
        got = Signal()              # a byte is taken this cycle
        m.d.comb += [self.rx.ready.eq(1), got.eq(self.rx.valid)]

        cmd, length, addr = hdr.cmd, hdr.length, hdr.addr
        is_csr = (cmd == C.READ_CSR) | (cmd == C.WRITE_CSR)
        is_write = Cat(cmd == c for c in hl.WRITES).any()
        is_read = (cmd == C.READ_CSR) | (cmd == C.READ_MEM)

        # the checks of a good header, in the spec's order (host_link.check_request)
        check = Signal(8)
        end = Signal(34)
        m.d.comb += end.eq(addr + (length << 2))
        len_ok = Signal()
        m.d.comb += check.eq(S.OK)
        with m.If(~Cat(cmd == c for c in C).any()):
            m.d.comb += check.eq(S.BAD_COMMAND)
        with m.Else():
            for c in C:
                lo, hi = hl.length_range(c)
                terms = ([length >= lo] if lo > 0 else []) + ([length <= hi] if hi < hl.REQUEST.mask["length"] else [])
                with m.If(cmd == c):
                    m.d.comb += len_ok.eq(Cat(terms).all() if terms else 1)
            with m.If(~len_ok):
                m.d.comb += check.eq(S.BAD_LENGTH)
            with m.Elif(cmd != C.PING):
                with m.If(addr[:2] != 0):
                    m.d.comb += check.eq(S.MISALIGNED)
                with m.Elif(end > Mux(is_csr, self.csr_bytes, self.memory_bytes)):
                    m.d.comb += check.eq(S.ADDRESS_OUT_OF_RANGE)

        def answer(code, with_data: bool = False) -> None:
            m.d.sync += [status.eq(code), count.eq(0), crc.eq(0), words.eq(0),
                         resp_len.eq(Mux(cmd == C.PING, hl.PING_WORDS, Mux(is_read, length, 0)) if with_data else 0)]
            m.next = "RESP_HEADER"

        def tick_timeout() -> None:
            with m.If(got):
                m.d.sync += restart()
            with m.Elif(timer[-1]):
                answer(S.TIMEOUT)
            with m.Else():
                m.d.sync += timer.eq(timer - 1)

        # the word's address is registered (``words`` holds from FETCH on, so it is right by ISSUE), and so is a
        # CSR read's ARVALID (set in TAKE): the CSR block's read select starts from registers
        word_addr, csr_read = Signal(32), Signal()
        m.d.sync += word_addr.eq(addr + (words << 2))
        m.d.comb += [buf_r.addr.eq(words), self.csr.ar.valid.eq(csr_read)]
        with m.If(self.csr.ar.valid & self.csr.ar.ready):
            m.d.sync += csr_read.eq(0)
        resp_hdr = Signal(struct_layout(hl.RESPONSE))
        m.d.comb += [resp_hdr.sync.eq(hl.RESPONSE_SYNC), resp_hdr.cmd.eq(cmd), resp_hdr.tag.eq(hdr.tag),
                     resp_hdr.status.eq(status), resp_hdr.length.eq(resp_len)]
        ping = [hl.LINK_MAGIC, hl.LINK_VERSION, self.memory_bytes, self.csr_bytes]

        with m.FSM() as fsm:
            with m.State("HUNT"):
                with m.If(got & (byte == hl.REQUEST_SYNC)):
                    m.d.sync += [hdr_bits.eq(hl.REQUEST_SYNC), count.eq(1),
                                 crc.eq(hl.crc8_byte(Const(0, 8), byte)), restart()]
                    m.next = "HEADER"
            with m.State("HEADER"):
                tick_timeout()
                with m.If(got):
                    with m.Switch(count):
                        for i in range(1, n_req):
                            with m.Case(i):
                                m.d.sync += hdr_bits[8 * i:8 * i + 8].eq(byte)
                    m.d.sync += [count.eq(count + 1), crc.eq(hl.crc8_byte(crc, byte))]
                    with m.If(count == n_req - 1):
                        with m.If(byte != crc):
                            answer(S.BAD_CHECKSUM)
                        with m.Else():
                            m.next = "CHECK"
            with m.State("CHECK"):
                m.d.sync += [pending.eq(check), words.eq(0), count.eq(0), crc.eq(0), restart()]
                with m.If(is_write & (length != 0)):
                    m.next = "DATA"
                with m.Elif(check != S.OK):
                    answer(check)
                with m.Elif(cmd == C.PING):
                    answer(S.OK, with_data=True)
                with m.Else():
                    m.next = "FETCH"
            with m.State("DATA"):
                tick_timeout()
                with m.If(got):
                    m.d.sync += crc.eq(hl.crc8_byte(crc, byte))
                    with m.If(words == length):                  # the data's checksum
                        with m.If(byte != crc):
                            answer(S.BAD_CHECKSUM)
                        with m.Elif(pending != S.OK):
                            answer(pending)
                        with m.Else():
                            m.d.sync += words.eq(0)
                            m.next = "FETCH"
                    with m.Else():
                        m.d.sync += [word.eq(Cat(word[8:], byte)), count.eq(count + 1)]
                        with m.If(count == 3):
                            m.d.sync += [count.eq(0), words.eq(words + 1)]
                            m.d.comb += [buf_w.addr.eq(words), buf_w.data.eq(Cat(word[8:], byte)),
                                         buf_w.en.eq(words < hl.MAX_WORDS)]

            # one access per word: FETCH (the buffer's word `words` is read) -> TAKE (into the port's register)
            # -> ISSUE -> wait -> NEXT
            with m.State("FETCH"):
                m.d.sync += [csr_aw_done.eq(0), csr_w_done.eq(0)]
                m.next = "TAKE"
            with m.State("TAKE"):
                m.d.sync += csr_read.eq(cmd == C.READ_CSR)
                m.next = "ISSUE"
            with m.State("ISSUE"):
                with m.If(is_csr):
                    with m.If(cmd == C.READ_CSR):
                        m.d.comb += [self.csr.ar.payload.addr.eq(word_addr), self.csr.ar.payload.prot.eq(0)]
                        with m.If(self.csr.ar.ready):
                            m.next = "CSR_R"
                    with m.Else():
                        aw_done = csr_aw_done | self.csr.aw.ready
                        w_done = csr_w_done | self.csr.w.ready
                        m.d.comb += [self.csr.aw.valid.eq(~csr_aw_done), self.csr.aw.payload.addr.eq(word_addr),
                                     self.csr.aw.payload.prot.eq(0),
                                     self.csr.w.valid.eq(~csr_w_done), self.csr.w.payload.data.eq(buf_r.data),
                                     self.csr.w.payload.strb.eq(0xF)]
                        m.d.sync += [csr_aw_done.eq(aw_done), csr_w_done.eq(w_done)]
                        with m.If(aw_done & w_done):
                            m.next = "CSR_B"
                with m.Else():
                    req = self.mem.req
                    m.d.comb += [req.valid.eq(1), req.payload.addr.eq(word_addr[2:]),
                                 req.payload.write.eq(cmd != C.READ_MEM),
                                 req.payload.data.eq(Mux(cmd == C.WRITE_MEM, buf_r.data, 0))]
                    with m.If(req.ready):
                        m.next = "MEM_RESP"
            with m.State("MEM_RESP"):
                m.d.comb += self.mem.resp.ready.eq(1)
                with m.If(self.mem.resp.valid):
                    m.d.comb += [buf_w.addr.eq(words), buf_w.data.eq(self.mem.resp.payload),
                                 buf_w.en.eq(is_read)]
                    m.next = "NEXT"
            with m.State("CSR_R"):
                m.d.comb += self.csr.r.ready.eq(1)
                with m.If(self.csr.r.valid):
                    m.d.comb += [buf_w.addr.eq(words), buf_w.data.eq(self.csr.r.payload.data), buf_w.en.eq(1)]
                    with m.If(self.csr.r.payload.resp != RESP_OKAY):
                        answer(S.BUS_ERROR)
                    with m.Else():
                        m.next = "NEXT"
            with m.State("CSR_B"):
                m.d.comb += self.csr.b.ready.eq(1)
                with m.If(self.csr.b.valid):
                    with m.If(self.csr.b.payload.resp != RESP_OKAY):
                        answer(S.BUS_ERROR)
                    with m.Else():
                        m.next = "NEXT"
            with m.State("NEXT"):
                m.d.sync += words.eq(words + 1)
                with m.If(words + 1 == length):
                    answer(S.OK, with_data=True)
                with m.Else():
                    m.next = "FETCH"

            # the response: header bytes (crc last), then the data section when resp_len != 0
            with m.State("RESP_HEADER"):
                out = Signal(8)
                with m.Switch(count):
                    for i in range(n_resp - 1):
                        with m.Case(i):
                            m.d.comb += out.eq(resp_hdr.as_value()[8 * i:8 * i + 8])
                    with m.Default():
                        m.d.comb += out.eq(crc)
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(out)]
                with m.If(self.tx.ready):
                    m.d.sync += [count.eq(count + 1), crc.eq(hl.crc8_byte(crc, out))]
                    with m.If(count == n_resp - 1):
                        m.d.sync += [count.eq(0), crc.eq(0), words.eq(0)]
                        with m.If(resp_len == 0):
                            m.next = "DONE"
                        with m.Else():
                            m.next = "RESP_FETCH"
            with m.State("RESP_FETCH"):                          # buffer word `words` is read in this cycle
                m.next = "RESP_TAKE"
            with m.State("RESP_TAKE"):                           # ... and moves into the port's register
                m.next = "RESP_DATA"
            with m.State("RESP_DATA"):
                value = Signal(32)
                m.d.comb += value.eq(buf_r.data)
                with m.If(cmd == C.PING):
                    with m.Switch(words):
                        for i, v in enumerate(ping):
                            with m.Case(i):
                                m.d.comb += value.eq(v)
                out = Signal(8)
                m.d.comb += [out.eq(value.word_select(count[:2], 8)), self.tx.valid.eq(1), self.tx.payload.eq(out)]
                with m.If(self.tx.ready):
                    m.d.sync += [count.eq(count + 1), crc.eq(hl.crc8_byte(crc, out))]
                    with m.If(count == 3):
                        m.d.sync += [count.eq(0), words.eq(words + 1)]
                        with m.If(words + 1 == resp_len):
                            m.next = "RESP_CRC"
                        with m.Else():
                            m.next = "RESP_FETCH"
            with m.State("RESP_CRC"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(crc)]
                with m.If(self.tx.ready):
                    m.next = "DONE"
            with m.State("DONE"):                                # the last byte is taken: back to the hunt
                m.d.comb += self.answered.eq(1)
                m.d.sync += self.error.eq(status != S.OK)
                m.next = "HUNT"
        m.d.comb += self.active.eq(~fsm.ongoing("HUNT"))
        return m
