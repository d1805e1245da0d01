"""The cycle model: one engine (``engine``), the whole chip (``chip``), the memory side (``memory/``). Reads
``hwgen.spec`` and the golden numerics; never Amaranth."""
