"""The memory side: AXI signatures, LOAD / STORE DMA units, TLB, L3 cache, HBM interleaver, AXI arbiter."""
