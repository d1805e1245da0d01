"""ASIC area of a config at 45 nm, per component, from the published figures in ``hwgen/spec/costs.py``.

What is counted:

==================  ==========================================================================================
``mac_lanes``       per lane an int8 multiplier, an adder of ``acc_bits`` (Horowitz's 32-bit add scaled by width)
                    and its registers (A and B operands, the product, the accumulator), NanGate flip-flops
``l1``              each engine's scratchpad: ``l1.bytes`` once per read port (``l1_read_ports`` copies)
``output_buffer``   each engine's ``l1.out_bytes``
``tlbs``            two TLBs per engine: ``tlb_entries`` x (virtual + physical page number) bits of flip-flops
``l3``              the data array (``l3.bytes``) and its tags (address bits above set and line, valid, dirty)
``scheduler``       the ASA's on-chip tables: tasks, descriptors, successor lists, predicates
==================  ==========================================================================================

Not counted: control logic (the compactors' priority encoders, DMA and scheduler state machines), the
interconnect and the HBM PHYs. The FPGA resource model (``sim/fpga/resource_model.py``) counts that logic in
LUTs; here the SRAMs and the MAC array dominate.
"""
from __future__ import annotations

from hwgen.spec import costs
from hwgen.spec.config import HwConfig
from hwgen.spec.isa import DESCRIPTOR_BITS
from hwgen.spec.task_table import ADDR_BITS, SUCC_BYTES, TASK


def _flops_mm2(bits: int) -> float:
    return bits * costs.FLIP_FLOP_UM2 / 1e6


def components(cfg: HwConfig) -> dict[str, float]:
    """mm² per component (module docstring), at ``costs.AREA_NODE``."""
    e, E = cfg.engine, cfg.scheduler.engines
    lane_um2 = (costs.INT8_MULT_UM2 + costs.INT32_ADD_UM2 * e.acc_bits / 32
                + (8 + 8 + 16 + e.acc_bits) * costs.FLIP_FLOP_UM2)
    page_bits = (cfg.memory.page_bytes - 1).bit_length()
    out = {
        "mac_lanes": E * e.rows * e.lanes * lane_um2 / 1e6,
        "l1": E * costs.sram_mm2(cfg.l1.bytes * 8 * cfg.l1_read_ports),
        "output_buffer": E * costs.sram_mm2(cfg.l1.out_bytes * 8),
        "tlbs": 2 * E * _flops_mm2(cfg.memory.tlb_entries * 2 * (ADDR_BITS - page_bits)),
        "l3": 0.0,
        "scheduler": costs.sram_mm2(cfg.scheduler.tasks * TASK.width + cfg.scheduler.descriptors * DESCRIPTOR_BITS
                                    + cfg.scheduler.successors * SUCC_BYTES * 8) + _flops_mm2(
                                        cfg.scheduler.predicates),
    }
    if cfg.l3.enabled:
        c = cfg.l3
        tag_bits = ADDR_BITS - (c.sets - 1).bit_length() - (c.line_bytes - 1).bit_length() + 2   # + valid, dirty
        out["l3"] = costs.sram_mm2(c.bytes * 8 + c.sets * c.ways * tag_bits)
    return out


def area_mm2(cfg: HwConfig) -> float:
    """The chip's counted area in mm² at 45 nm."""
    return sum(components(cfg).values())


__all__ = ["area_mm2", "components"]
