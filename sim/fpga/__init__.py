"""FPGA flows of the generated Verilog: synthesis and resource counts (Yosys), place and route, board builds."""
