"""The memory hierarchy beyond L1: the HBM3e timing model and paged tensors (L3 and DMA to come)."""
from sim.memory.hbm import (
    DEFAULT_ORDER,
    REQUEST_DTYPE,
    TIMINGS,
    AddressMap,
    HbmModel,
    HbmTiming,
    make_requests,
    map_address,
)
from sim.memory.paging import PageAllocator, PageFault, PageTable, Tlb, translate_burst

__all__ = ["DEFAULT_ORDER", "REQUEST_DTYPE", "TIMINGS", "AddressMap", "HbmModel", "HbmTiming", "make_requests",
           "map_address", "PageAllocator", "PageFault", "PageTable", "Tlb", "translate_burst"]
