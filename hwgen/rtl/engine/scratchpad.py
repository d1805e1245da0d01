"""L1 scratchpad: ``banks`` memories interleaved by line, one byte-enabled write port, independent read ports.

Every read port has its own copy of the whole scratchpad (the write port writes all copies), so ports never
conflict and the timing has no bank term: the engine's 3·rows + 3 ports cost that many copies, which the
resource report (``dsa fpga synth``) shows. A port reads every bank of its copy at the line-in-bank address and
picks the bank on the next cycle; ``l1.banks: 1`` makes each copy one memory, the fewest block RAMs on an
FPGA (shallow banks suit ASIC SRAM macros). Each copy is a ``BlockRam``: its port's data comes from a register (on
an ECP5 the block RAM's own), read latency is two cycles, ``en`` low holds the RAM's output and ``take`` low the
port's data. Several banks pick among their data registers by the bank of the line taken.

The write port is registered before it reaches the copies (on an ECP5 it fans out to 4 DP16KD tiles per copy
for ulx3s, 36 in all): a line offered in cycle t is in the RAMs from t + 2 on, a cycle later than a RAM's own
write. No reader reads a line sooner than two cycles after its last write: a task that reads what an earlier
one wrote (a LOAD's lines, the writer's requantized D, TOPK's P) is taken at the earliest in the cycle after
the writer's unit went idle, and its first read is a cycle or more after it is taken; within a task, what is
written and what is read are different lines (the compiler's layout).
"""
from amaranth import Array, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out
from amaranth.utils import ceil_log2

from hwgen.rtl import signatures
from hwgen.rtl.block_ram import BlockRam
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
        # the write is registered before it fans out to every copy's block RAMs (a line lands a cycle after it
        # is offered; every reader reads a line two or more cycles after its last write: see the docstring).
        # Like the RAMs' own input registers these are not reset: a write offered during reset lands
        fill_addr, fill_data, fill_en = (Signal.like(port, name=f"{port.name}_q", reset_less=True)
                                         for port in (self.fill.addr, self.fill.data, self.fill.en))
        m.d.sync += [fill_addr.eq(self.fill.addr), fill_data.eq(self.fill.data), fill_en.eq(self.fill.en)]
        # one RAM per (read port, bank), each with one write and one registered read port: the copies are
        # explicit, so a synthesis tool maps simple dual-port RAMs instead of splitting a many-port memory itself
        for p, port in enumerate(self.read):
            datas = []
            for b in range(cfg.l1.banks):
                ram = BlockRam(cfg.line_bytes * 8, cfg.lines_per_bank, granularity=8)
                m.submodules[f"copy{p}_bank{b}"] = ram
                here = (fill_addr & (cfg.l1.banks - 1)) == b
                m.d.comb += [ram.write.addr.eq(fill_addr >> bank_bits), ram.write.data.eq(fill_data),
                             ram.write.en.eq(Mux(here, fill_en, 0)),
                             ram.read.addr.eq(port.addr >> bank_bits), ram.read.en.eq(port.en),
                             ram.read.take.eq(port.take)]
                datas.append(ram.read.data)
            if cfg.l1.banks == 1:
                m.d.comb += port.data.eq(datas[0])
                continue
            # the bank of the address read, then of the line taken: it picks among the banks' data registers
            read_bank, taken_bank = Signal(bank_bits, name=f"read{p}_bank"), Signal(bank_bits, name=f"take{p}_bank")
            with m.If(port.en):
                m.d.sync += read_bank.eq(port.addr & (cfg.l1.banks - 1))
            with m.If(port.take):
                m.d.sync += taken_bank.eq(read_bank)
            m.d.comb += port.data.eq(Array(datas)[taken_bank])
        return m
