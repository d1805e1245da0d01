"""The ASA task scheduler and the host's AXI4-Lite CSR block."""
