"""AXI4 and AXI4-Lite: signatures, Vivado-style top-level port names, and a small AXI4-Lite register block.

Signatures are from the MASTER's side (``Out`` on a master, ``In`` on a slave, as usual in wiring). Each
channel is a ``lib.stream`` interface (``payload`` / ``valid`` / ``ready``) whose payload is a
``data.StructLayout`` of the channel's fields without the channel prefix: ``bus.ar.payload.addr`` is
ARADDR, ``bus.r.payload.last`` is RLAST, ``bus.ar.valid`` is ARVALID. Channels can therefore go straight
into ``lib.fifo`` buffers and other stream components.

Vivado naming. Amaranth names a top-level port by its signature path joined with ``__``
(``hbm0__ar__payload``), but Vivado's IP packager and block design infer an AXI interface only from flat
names such as ``m_axi_hbm0_araddr``. ``VivadoTop`` wraps a component: each AXI member named in its
``axi`` map becomes flat top-level members ``<prefix>_<channel><field>`` / ``<prefix>_<channel>valid`` /
``<prefix>_<channel>ready`` (``vivado_members``), wired to the inner interface (``connect_vivado``);
every other port keeps its path joined with ``_`` (``start``, ``regs_0``). Prefixes by convention are
``m_axi_<name>`` for a master port and ``s_axi_<name>`` for a slave port. The Verilog then has exactly
``m_axi_hbm0_araddr`` etc., which is also what ``cocotbext.axi``'s ``AxiBus.from_prefix(dut, "m_axi_hbm0")``
looks for. (``verilog.convert(..., ports={...})`` could rename ports too, but a wrapper component keeps
the names in the component's own signature and metadata, and works the same for platform builds.)

Only the signals named in the brief are present: no LOCK/CACHE/PROT/QOS/REGION/USER on AXI4 (Vivado and
cocotbext-axi treat them as optional), PROT on AXI4-Lite.
"""
from __future__ import annotations

from amaranth import Cat, Const, Module, Signal, Value
from amaranth.hdl import ValueCastable
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from hwgen.spec.axi import RESP_OKAY

#: channels driven by the master (payload + valid out, ready in); the others are driven by the slave
MASTER_CHANNELS = ("aw", "w", "ar")


def _check(name: str, value: int, lo: int, hi: int, power_of_two: bool = False) -> None:
    if not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{name}: must be an integer in [{lo}, {hi}], not {value!r}")
    if power_of_two and value & (value - 1):
        raise ValueError(f"{name}: must be a power of two, not {value}")


class _AxiBase(wiring.Signature):
    """A five-channel AXI signature; subclasses give the payload layouts (``layouts``)."""

    def __init__(self, layouts: dict[str, data.StructLayout]):
        self._layouts = layouts
        super().__init__({ch: (Out if ch in MASTER_CHANNELS else In)(stream.Signature(layout))
                          for ch, layout in layouts.items()})

    @property
    def layouts(self) -> dict[str, data.StructLayout]:
        """Payload layout per channel (``aw``, ``w``, ``b``, ``ar``, ``r``)."""
        return dict(self._layouts)

    @property
    def bytes_per_beat(self) -> int:
        return self.data_width // 8

    def __eq__(self, other):
        return type(other) is type(self) and other._params() == self._params()

    def __hash__(self):
        return hash((type(self), self._params()))

    def __repr__(self):
        params = ", ".join(f"{k}={v}" for k, v in zip(("addr_width", "data_width", "id_width"), self._params(),
                                                       strict=True))
        return f"{type(self).__name__}({params})"


class AxiSignature(_AxiBase):
    """AXI4 (full) from the master's side.

    aw/ar: ``id, addr, len`` (beats - 1), ``size`` (log2 bytes per beat), ``burst``;
    w: ``data, strb, last``; b: ``id, resp``; r: ``id, data, resp, last``.
    """

    def __init__(self, *, addr_width: int = 32, data_width: int = 64, id_width: int = 1):
        _check("addr_width", addr_width, 12, 64)
        _check("data_width", data_width, 8, 1024, power_of_two=True)
        _check("id_width", id_width, 1, 32)
        self.addr_width, self.data_width, self.id_width = addr_width, data_width, id_width
        addr = data.StructLayout({"id": id_width, "addr": addr_width, "len": 8, "size": 3, "burst": 2})
        super().__init__({
            "aw": addr,
            "w": data.StructLayout({"data": data_width, "strb": data_width // 8, "last": 1}),
            "b": data.StructLayout({"id": id_width, "resp": 2}),
            "ar": addr,
            "r": data.StructLayout({"id": id_width, "data": data_width, "resp": 2, "last": 1}),
        })

    @property
    def size(self) -> int:
        """AxSIZE of a full-width beat."""
        return exact_log2(self.bytes_per_beat)

    def _params(self):
        return (self.addr_width, self.data_width, self.id_width)


class AxiLiteSignature(_AxiBase):
    """AXI4-Lite from the master's side: aw/ar ``addr, prot``; w ``data, strb``; b ``resp``; r ``data, resp``."""

    def __init__(self, *, addr_width: int = 12, data_width: int = 32):
        _check("addr_width", addr_width, 2, 64)
        if data_width not in (32, 64):
            raise ValueError(f"data_width: AXI4-Lite data is 32 or 64 bits, not {data_width!r}")
        self.addr_width, self.data_width = addr_width, data_width
        addr = data.StructLayout({"addr": addr_width, "prot": 3})
        super().__init__({
            "aw": addr,
            "w": data.StructLayout({"data": data_width, "strb": data_width // 8}),
            "b": data.StructLayout({"resp": 2}),
            "ar": addr,
            "r": data.StructLayout({"data": data_width, "resp": 2}),
        })

    def _params(self):
        return (self.addr_width, self.data_width)


# ---------------------------------------------------------------------------------------------------
# Vivado-style flat names

def _unflipped(signature) -> _AxiBase:
    return signature.flip() if isinstance(signature, wiring.FlippedSignature) else signature


def _wires(prefix: str, signature):
    """(port name, channel, field, flow, width) for every wire; field is a payload field, "valid" or "ready".

    ``flow`` is relative to the owner of ``signature``: for a master, ARADDR is Out and ARREADY In.
    """
    layouts = _unflipped(signature).layouts
    for ch, member in signature.members.items():
        for field, f in layouts[ch]:
            yield f"{prefix}_{ch}{field}", ch, field, member.flow, f.width
        yield f"{prefix}_{ch}valid", ch, "valid", member.flow, 1
        yield f"{prefix}_{ch}ready", ch, "ready", member.flow.flip(), 1


def vivado_members(prefix: str, signature) -> dict[str, wiring.Member]:
    """Flat top-level members for one AXI port: ``{prefix}_araddr: Out(addr_width)``, ... .

    ``signature`` is an ``AxiSignature``/``AxiLiteSignature`` (a master port) or its ``.flip()`` (a slave).
    """
    return {name: flow(width) for name, _, _, flow, width in _wires(prefix, signature)}


def connect_vivado(m: Module, top, prefix: str, interface) -> None:
    """Wire ``top``'s flat members ``{prefix}_*`` (from ``vivado_members``) to an AXI ``interface``.

    ``interface`` is the inner component's AXI member; its signature decides the directions.
    """
    for name, ch, field, flow, _ in _wires(prefix, interface.signature):
        chan = getattr(interface, ch)
        inner = getattr(chan.payload, field) if field not in ("valid", "ready") else getattr(chan, field)
        outer = getattr(top, name)
        m.d.comb += outer.eq(inner) if flow == Out else inner.eq(outer)


class VivadoTop(wiring.Component):
    """Top-level wrapper giving ``inner``'s AXI members flat Vivado-style names.

    ``axi`` maps the path of an AXI member of ``inner`` (dotted for a nested one, ``"dma.bus"``) to its
    prefix, e.g. ``{"hbm0": "m_axi_hbm0", "ctrl.bus": "s_axi_ctrl"}``.
    Every other port of ``inner`` appears under its path joined with ``_``. Use it as the component passed
    to ``verilog.convert`` (or a platform build); the clock and reset stay ``clk``/``rst``.
    """

    def __init__(self, inner: wiring.Component, axi: dict[str, str]):
        self._inner = inner
        self._axi = {tuple(path.split(".")): prefix for path, prefix in axi.items()}
        members: dict[str, wiring.Member] = {}
        for path, prefix in self._axi.items():
            sig = inner.signature
            for name in path:
                if not isinstance(sig, wiring.Signature) or name not in sig.members:
                    raise ValueError(f"axi: {'.'.join(path)!r} is not a member of {type(inner).__name__}")
                sig = sig.members[name].signature if sig.members[name].is_signature else None
            if not isinstance(_unflipped(sig), _AxiBase):
                raise TypeError(f"axi: {'.'.join(path)!r} of {type(inner).__name__} is not an AXI interface")
            members.update(vivado_members(prefix, sig))
        self._other = []
        for path, member, value in inner.signature.flatten(inner):
            if any(path[:len(axi_path)] == axi_path for axi_path in self._axi):
                continue
            flat = "_".join(map(str, path))
            if flat in members:
                raise ValueError(f"VivadoTop: two ports would be named {flat!r}")
            self._other.append((flat, member, value))
            members[flat] = member.flow(member.shape)
        super().__init__(members)

    @property
    def inner(self) -> wiring.Component:
        return self._inner

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = self._inner
        for path, prefix in self._axi.items():
            interface = self._inner
            for name in path:
                interface = getattr(interface, name)
            connect_vivado(m, self, prefix, interface)
        for flat, member, value in self._other:
            outer = getattr(self, flat)
            outer, value = (x.as_value() if isinstance(x, ValueCastable) else x for x in (outer, value))
            m.d.comb += outer.eq(value) if member.flow == Out else value.eq(outer)
        return m


# ---------------------------------------------------------------------------------------------------
# AXI4-Lite register block

def axilite_handshake(m: Module, bus) -> tuple[Signal, Signal]:
    """The handshake of a simple AXI4-Lite slave (``bus`` is its ``In(AxiLiteSignature)`` member).

    A write is taken when AW and W are both valid and no B response is pending; a read when no R response
    is pending. BVALID / RVALID rise the cycle after and fall once the master takes the response. Returns
    (take_write, take_read); the caller registers ``b.payload`` / ``r.payload`` on those strobes.
    """
    take_write, take_read = Signal(), Signal()
    m.d.comb += [
        take_write.eq(bus.aw.valid & bus.w.valid & ~bus.b.valid),
        take_read.eq(bus.ar.valid & ~bus.r.valid),
        bus.aw.ready.eq(take_write), bus.w.ready.eq(take_write), bus.ar.ready.eq(take_read),
    ]
    for take, resp in ((take_write, bus.b), (take_read, bus.r)):
        with m.If(take):
            m.d.sync += resp.valid.eq(1)
        with m.Elif(resp.ready):
            m.d.sync += resp.valid.eq(0)
    return take_write, take_read


def byte_mask(strb) -> Value:
    """WSTRB widened to a bit mask: each strobe bit covers its 8 data bits."""
    return Cat(bit.replicate(8) for bit in strb)


class AxiLiteRegisters(wiring.Component):
    """``count`` read/write registers behind an AXI4-Lite slave port (CSR block skeleton).

    Register i sits at byte address ``i * data_width/8``; address bits above the register index are
    ignored (the block aliases). Writes honour ``wstrb``. A write is taken when AW and W are both valid
    and no B response is pending; a read when no R response is pending. Every response is OKAY, one cycle
    after the handshake. ``regs`` shows the register values to the rest of the design.
    (``hwgen.rtl.scheduler.csr.CsrBlock`` is the full CSR block: a register table, access types, SLVERR on holes.)
    """

    def __init__(self, count: int, *, addr_width: int = 12, data_width: int = 32):
        _check("count", count, 1, 1 << 16)
        self.count = count
        sig = AxiLiteSignature(addr_width=addr_width, data_width=data_width)
        if ceil_log2(count) + exact_log2(sig.bytes_per_beat) > addr_width:
            raise ValueError(f"count: {count} registers do not fit {addr_width} address bits")
        super().__init__({"bus": In(sig), "regs": Out(data_width).array(count)})

    def elaborate(self, platform):
        m = Module()
        bus, sig = self.bus, self.bus.signature.flip()
        lsb = exact_log2(sig.bytes_per_beat)
        index_bits = ceil_log2(self.count)
        regs = [Signal(sig.data_width, name=f"reg{i}") for i in range(self.count)]
        m.d.comb += [port.eq(reg) for port, reg in zip(self.regs, regs, strict=True)]
        take_write, take_read = axilite_handshake(m, bus)
        m.d.comb += [bus.b.payload.resp.eq(RESP_OKAY), bus.r.payload.resp.eq(RESP_OKAY)]

        windex = bus.aw.payload.addr[lsb:lsb + index_bits] if index_bits else Const(0)
        mask = byte_mask(bus.w.payload.strb)
        with m.If(take_write):
            for i, reg in enumerate(regs):
                with m.If(windex == i):
                    m.d.sync += reg.eq((reg & ~mask) | (bus.w.payload.data & mask))

        rindex = bus.ar.payload.addr[lsb:lsb + index_bits] if index_bits else Const(0)
        with m.If(take_read):
            with m.Switch(rindex):
                for i, reg in enumerate(regs):
                    with m.Case(i):
                        m.d.sync += bus.r.payload.data.eq(reg)
                with m.Default():
                    m.d.sync += bus.r.payload.data.eq(0)
        return m
