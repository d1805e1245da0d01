"""cocotb testbench modules and the Verilator control file (waivers.vlt) used by sim.rtl.runner."""
