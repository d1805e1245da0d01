"""A board build around the chip: ``uart`` (8N1 receiver and transmitter), ``host_bridge`` (the host link's frames,
``hwgen/spec/host_link.py``, onto the chip's CSRs and the board memory), ``board_memory`` (on-chip RAM standing in
for HBM) and ``board_top`` (all of them with the chip, plain ports, one clock domain)."""
