"""One DSA engine: L1 scratchpad, zero compactor, MAC lanes, row units, result writer, top-k path."""
