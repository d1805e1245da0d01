"""Output buffer: ``out_lines`` lines of L accumulators (one job's result each), one write port (the result
writer) and registered read ports (``signatures.registered_read``): an address in cycle t gives its line in
t + 2, ``en`` low holds the RAM's output and ``take`` low the port's data. Each read port is its own copy of
the memory (a synthesis tool maps simple dual-port RAMs), and only a register takes a RAM's output.
"""
from amaranth import Module
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import Out

from hwgen.rtl import signatures
from hwgen.spec.timing import OutputBufferTiming


class OutputBuffer(OutputBufferTiming, wiring.Component):
    def __init__(self, cfg, read_ports: int):
        self._cfg = cfg
        super().__init__({
            "write": Out(signatures.out_write(cfg)),
            "read": Out(signatures.out_read(cfg)).array(read_ports),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        m.submodules.mem = mem = memory.Memory(shape=cfg.out_line_bits, depth=cfg.out_lines, init=[])
        wp = mem.write_port()
        m.d.comb += [wp.addr.eq(self.write.addr), wp.data.eq(self.write.data), wp.en.eq(self.write.en)]
        for port in self.read:
            rp = mem.read_port(domain="sync")
            m.d.comb += [rp.addr.eq(port.addr), rp.en.eq(port.en)]
            with m.If(port.take):
                m.d.sync += port.data.eq(rp.data)
        return m
