"""Runs the generated Verilog: the Verilator + cocotb runner (``runner``) and the testbenches (``tb/``)."""
