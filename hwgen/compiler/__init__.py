"""Passes that turn work into programs: single-kernel programs for one engine, tiling through HBM, the DAG
compiler for workloads, and the page allocator. Reads only ``hwgen.spec``."""
