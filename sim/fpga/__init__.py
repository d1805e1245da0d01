"""FPGA flows of the generated Verilog: synthesis and resource counts (Yosys), each component's FMAX, place and
route, board builds, the HBM-board export."""
