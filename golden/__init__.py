"""The golden model: one semantics per kernel (numerics, kernels, attention, graph, executor) in PyTorch; data
generators apart in ``generators/``. Reads only ``hwgen.spec``."""
