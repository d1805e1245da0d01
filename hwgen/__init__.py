"""The hardware description: ``spec`` (the contract every part reads), ``rtl`` (Amaranth components) and
``compiler`` (workloads -> programs). ``spec`` depends on nothing else here; ``rtl`` and ``compiler`` only on it."""
