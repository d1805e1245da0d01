"""The tools (``cli``, ``backends``, ``verify``, ``bench``) on top of the cycle model (``sim.model``) and the
Verilator + cocotb harness (``sim.rtl``)."""
