"""L1 scratchpad: ``banks`` memories interleaved by line, one byte-enabled write port, independent read ports.

Every read port has its own copy of the whole scratchpad (the write port writes all copies), so ports never
conflict and the timing has no bank term: the engine's 3·rows + 3 ports cost that many copies, which the
resource report (``dsa fpga synth``) shows. A port reads every bank of its copy at the line-in-bank address and
picks the bank on the next cycle; ``l1.banks: 1`` makes each copy one memory, the fewest block RAMs on an
FPGA (shallow banks suit ASIC SRAM macros). Each port's data comes from a register (``signatures.registered_read``):
read latency is two cycles, ``en`` low holds the RAM's output and ``take`` low the port's data. With one bank
nothing sits between a RAM and its register; the bank select of several banks does.
"""
from amaranth import Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import Out
from amaranth.utils import ceil_log2

from hwgen.rtl import signatures
from hwgen.spec.layout import log2
from hwgen.spec.timing import ScratchpadTiming


class Scratchpad(ScratchpadTiming, wiring.Component):
    def __init__(self, cfg, read_ports: int):
        self._cfg = cfg
        self._read_ports = read_ports
        self.addr_width = ceil_log2(cfg.l1_lines)
        super().__init__({
            "fill": Out(signatures.l1_write(cfg)),
            "read": Out(signatures.l1_read(cfg)).array(read_ports),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        bank_bits = log2(cfg.l1.banks)
        # one memory per (read port, bank), each with one write and one read port: the copies are explicit, so
        # a synthesis tool maps simple dual-port RAMs instead of splitting a many-port memory itself
        for p, port in enumerate(self.read):
            which = Signal(max(bank_bits, 1), name=f"read{p}_bank")
            with m.If(port.en):
                m.d.sync += which.eq(port.addr & (cfg.l1.banks - 1))
            datas = []
            for b in range(cfg.l1.banks):
                mem = memory.Memory(shape=cfg.line_bytes * 8, depth=cfg.lines_per_bank, init=[])
                m.submodules[f"copy{p}_bank{b}"] = mem
                wp = mem.write_port(granularity=8)
                here = (self.fill.addr & (cfg.l1.banks - 1)) == b
                m.d.comb += [wp.addr.eq(self.fill.addr >> bank_bits), wp.data.eq(self.fill.data),
                             wp.en.eq(Mux(here, self.fill.en, 0))]
                rp = mem.read_port(domain="sync")
                m.d.comb += [rp.addr.eq(port.addr >> bank_bits), rp.en.eq(port.en)]
                datas.append(rp.data)
            with m.If(port.take):
                with m.Switch(which):
                    for b, d in enumerate(datas):
                        with m.Case(b):
                            m.d.sync += port.data.eq(d)
        return m
