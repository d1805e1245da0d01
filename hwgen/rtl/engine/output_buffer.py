"""Output buffer: ``out_lines`` lines of L accumulators (one job's result each), one write port (the result
writer) and registered read ports (``signatures.registered_read``): an address in cycle t gives its line in
t + 2, ``en`` low holds the RAM's output and ``take`` low the port's data. Each read port is its own copy of
the memory, a ``BlockRam`` (simple dual-port, its data register on an ECP5 the block RAM's own).
"""
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from hwgen.rtl import signatures
from hwgen.rtl.block_ram import BlockRam
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
        for i, port in enumerate(self.read):
            m.submodules[f"copy{i}"] = ram = BlockRam(cfg.out_line_bits, cfg.out_lines)
            m.d.comb += [ram.write.addr.eq(self.write.addr), ram.write.data.eq(self.write.data),
                         ram.write.en.eq(self.write.en), ram.read.addr.eq(port.addr), ram.read.en.eq(port.en),
                         ram.read.take.eq(port.take), port.data.eq(ram.read.data)]
        return m
