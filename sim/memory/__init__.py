"""The memory hierarchy beyond L1 (HBM timing first; L3, paging later)."""
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

__all__ = ["DEFAULT_ORDER", "REQUEST_DTYPE", "TIMINGS", "AddressMap", "HbmModel", "HbmTiming", "make_requests",
           "map_address"]
