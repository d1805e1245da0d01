"""The memory side's cycle model: HBM3e timing (``hbm``), AXI ports (``axi_port``), DMA units (``dma``), the L3
(``l3``), the TLB (``tlb``) and energy per level (``energy``)."""
