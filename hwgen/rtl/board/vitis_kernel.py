"""The chip as a Vitis RTL kernel for an HBM board (Alveo U55C / U280).

The top has only what an RTL kernel may have, under the names Vivado infers as interfaces:
``ap_clk``, ``ap_rst_n`` (active low; registered twice before the chip sees it), ``s_axi_control_*`` (the CSR
map, AXI4-Lite), ``m_axi_hbm0_*`` .. ``m_axi_hbm<P-1>_*`` (AXI4 masters with 64-bit addresses, as Vitis requires;
the chip drives the low bits and the rest are zero) and ``interrupt`` (the chip's ``irq``). The scheduler's trace
ports are left inside. The host drives the CSR map itself (a user-managed kernel: ``hwgen/spec/csr_map.py``).
"""
from __future__ import annotations

from amaranth import ClockDomain, ClockSignal, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwgen.rtl.chip import Chip
from hwgen.rtl.chip import axi_ports as chip_axi_ports
from hwgen.rtl.memory.axi import VivadoTop

CONTROL = "s_axi_control"
ADDRESS_BITS = 64               # Vitis: every m_axi port has 64-bit addresses
RESET_STAGES = 2


def kernel_axi_ports(cfg) -> dict[str, str]:
    """Chip AXI member -> kernel prefix: the CSRs become ``s_axi_control``, the HBM ports keep their names."""
    return {member: (CONTROL if member == "ctrl" else prefix) for member, prefix in chip_axi_ports(cfg).items()}


class VitisKernel(wiring.Component):
    def __init__(self, cfg):
        self._cfg = cfg
        self.wrapped = VivadoTop(Chip(cfg), kernel_axi_ports(cfg))
        members = {"ap_clk": In(1), "ap_rst_n": In(1), "interrupt": Out(1)}
        prefixes = tuple(kernel_axi_ports(cfg).values())
        self._axi_names = []
        for name, member in self.wrapped.signature.members.items():
            if name.startswith(prefixes):
                wide = name.startswith("m_axi_") and name.endswith(("_araddr", "_awaddr"))
                members[name] = member.flow(ADDRESS_BITS if wide else member.shape)
                self._axi_names.append(name)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.d.comb += ClockSignal("sync").eq(self.ap_clk)
        # the reset is taken from ap_rst_n through two registers (Vitis asks for a synchronous, registered reset)
        held = [Signal(init=1, name=f"rst_stage{i}") for i in range(RESET_STAGES)]
        m.domains.rst = ClockDomain("rst", reset_less=True)
        m.d.comb += ClockSignal("rst").eq(self.ap_clk)
        m.d.rst += [held[0].eq(~self.ap_rst_n), *(b.eq(a) for a, b in zip(held, held[1:], strict=False))]
        m.d.comb += ResetSignal("sync").eq(held[-1])

        m.submodules.chip = inner = self.wrapped
        m.d.comb += self.interrupt.eq(inner.irq)
        for name in self._axi_names:
            outer, member = getattr(self, name), inner.signature.members[name]
            m.d.comb += outer.eq(getattr(inner, name)) if member.flow == Out else getattr(inner, name).eq(outer)
        return m
