"""The host side of a board build: the driver of the UART host link (``driver``)."""
