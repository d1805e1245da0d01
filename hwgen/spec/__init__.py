"""The contract: config and presets, field tables (descriptor, task table, page-table entry), formats, layouts,
programs and workloads as data, and the timing rules the RTL and the cycle model both read. Pure Python (numpy,
pydantic, PyYAML): no Amaranth, no torch, nothing else of the project."""
