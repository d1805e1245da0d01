"""Delay lines: a value carried unchanged through registers, one per cycle, beside a pipeline's other stages."""
from amaranth import Module, Signal


def delay_line(m: Module, shape, stages: int, name: str) -> list[Signal]:
    """``stages`` registers of ``shape`` chained in ``m``'s sync domain: ``[0]`` is the first (the caller
    drives it), ``[s]`` holds what ``[0]`` held ``s`` cycles before."""
    line = [Signal(shape, name=f"{name}{s}") for s in range(stages)]
    m.d.sync += [later.eq(earlier) for earlier, later in zip(line, line[1:], strict=False)]
    return line
