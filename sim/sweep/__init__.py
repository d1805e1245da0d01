"""Design-space sweeps: a sweep file (``spec``), one point's evaluation on the cycle model (``evaluate``), its
metrics (``metrics``), the results store (``store``), where points run (``backends``) and the loop (``runner``)."""
