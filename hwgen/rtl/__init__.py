"""Amaranth components: ``engine/`` (one DSA engine), ``memory/`` (DMA, TLB, L3, interleaver, arbiter, AXI),
``scheduler/`` (the ASA scheduler, CSRs); ``top`` (engine + memory side), ``chip`` (the whole chip), ``build``
(Verilog and its sidecars). Reads only ``hwgen.spec``."""
