"""hwgen.spec.isa (descriptor format), hwgen.spec.layout (addresses) and compile_matmul with its formats."""
from __future__ import annotations

import random

import numpy as np
import pytest

from golden.generators.operands import random_operands
from hwgen.compiler.single_kernel import compile_matmul
from hwgen.rtl import signatures
from hwgen.spec import isa
from hwgen.spec.config import from_dict, load
from hwgen.spec.formats import OperandError, bitmask_encode
from hwgen.spec.layout import MASK_WORDS_PER_LINE, PTR_BYTES, Layout

ALLOWED = ", ".join(isa.FIELD_NAMES)


def cdiv(x: int, y: int) -> int:
    return -(-x // y)


# ---- descriptor ----------------------------------------------------------------------------------

def random_fields(rng: random.Random) -> dict[str, int]:
    out = {}
    for f in isa.DESCRIPTOR:
        out[f.name] = rng.choice([0, 1, (1 << f.bits) - 1, rng.randrange(1 << f.bits)])
    return out


def test_pack_unpack_round_trip():
    rng = random.Random(0)
    for _ in range(500):
        fields = random_fields(rng)
        word = isa.pack(**fields)
        assert 0 <= word < 1 << isa.DESCRIPTOR_BITS
        assert isa.unpack(word) == fields
        assert isa.from_bytes(isa.to_bytes(word)) == word
        assert len(isa.to_bytes(word)) == isa.DESCRIPTOR_BITS // 8


def test_pack_is_lsb_first_in_table_order_and_missing_fields_are_zero():
    assert isa.pack() == 0
    assert isa.pack(opcode=1) == 1
    assert isa.pack(a_format=1) == 1 << 4
    assert isa.pack(m=1) == 1 << 8
    assert isa.unpack(isa.pack(k=7)) == {**{n: 0 for n in isa.FIELD_NAMES}, "k": 7}


@pytest.mark.parametrize("fields, message", [
    ({"foo": 1}, f"descriptor: unknown field(s) ['foo'] (allowed: {ALLOWED})"),
    ({"foo": 1, "bar": 2, "m": 3}, f"descriptor: unknown field(s) ['bar', 'foo'] (allowed: {ALLOWED})"),
    ({"m": 1 << 16}, "descriptor.m: 65536 does not fit in 16 unsigned bits (allowed: 0..65535)"),
    ({"opcode": -1}, "descriptor.opcode: -1 does not fit in 4 unsigned bits (allowed: 0..15)"),
    ({"threshold": 256}, "descriptor.threshold: 256 does not fit in 8 unsigned bits (allowed: 0..255)"),
    ({"c_addr": 1 << 24}, "descriptor.c_addr: 16777216 does not fit in 24 unsigned bits (allowed: 0..16777215)"),
])
def test_pack_errors(fields, message):
    with pytest.raises(ValueError) as info:
        isa.pack(**fields)
    assert str(info.value) == message


def test_from_bytes_wrong_length():
    with pytest.raises(ValueError) as info:
        isa.from_bytes(b"\0" * 63)
    assert str(info.value) == "descriptor: 63 bytes, expected 64"


def test_descriptor_layout_matches_table():
    layout = signatures.descriptor_layout()
    members = list(layout)
    assert [name for name, _ in members] == list(isa.FIELD_NAMES)
    offset = 0
    for (name, field), f in zip(members, isa.DESCRIPTOR, strict=True):
        assert field.width == f.bits and field.offset == offset, name
        offset += f.bits
    assert layout.size == offset == sum(f.bits for f in isa.DESCRIPTOR) <= isa.DESCRIPTOR_BITS
    rng = random.Random(1)
    for _ in range(20):  # the RTL's view of a packed word is the same bits
        fields = random_fields(rng)
        assert layout.const(fields).as_value().value == isa.pack(**fields)


def test_enums_fit_their_fields():
    width = {f.name: f.bits for f in isa.DESCRIPTOR}
    assert max(isa.Opcode) < 1 << width["opcode"]
    assert max(isa.AFormat) < 1 << width["a_format"]


# ---- layout helpers ------------------------------------------------------------------------------

CONFIGS = {
    "tiny": load("tiny"),
    "default": load("default"),
    "w8": from_dict({"name": "w8", "engine": {"lanes": 4, "scan_bytes": 8}, "l1": {"bytes": 2048, "banks": 2}}),
    "w32l32": from_dict({"name": "w32l32", "engine": {"lanes": 32, "scan_bytes": 32, "acc_bits": 16},
                         "l1": {"bytes": 8192, "banks": 1}}),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_layout_helpers_on_ints(name):
    cfg = CONFIGS[name]
    lay = Layout.of(cfg)
    W, L = cfg.line_bytes, cfg.engine.lanes
    assert (lay.line_bytes, lay.lanes) == (W, L)
    rng = random.Random(name)
    for _ in range(300):
        m, k, n = rng.randrange(1, 3000), rng.randrange(1, 3000), rng.randrange(1, 3000)
        base, i, j, g, byte = (rng.randrange(1 << 20) for _ in range(5))
        nw = cdiv(k, W)
        assert lay.words(k) == nw
        assert lay.b_row_lines(n) == cdiv(n, W)
        assert lay.blocks(n) == cdiv(n, L)
        assert lay.mask_lines(m, k) == cdiv(m * nw, MASK_WORDS_PER_LINE)
        assert lay.lines_for_bytes(byte) == cdiv(byte, W)
        w = rng.randrange(nw)
        assert lay.a_dense_line(base, i * nw, w) == base + i * nw + w
        assert lay.mask_word_line(base, g) == base + g // MASK_WORDS_PER_LINE
        assert lay.mask_word_slot(g) == g % MASK_WORDS_PER_LINE
        assert lay.ptr_line(base, i) == base + (i * PTR_BYTES) // W
        assert lay.ptr_slot(i) * PTR_BYTES == (i * PTR_BYTES) % W
        assert lay.byte_line(base, byte) == base + byte // W
        assert lay.byte_slot(byte) == byte % W
        assert lay.b_line(base, k * cdiv(n, W), j) == base + k * cdiv(n, W) + (j * L) // W
        assert lay.b_slot(j) * L == (j * L) % W
        assert lay.c_line(base, i * cdiv(n, L), j) == base + i * cdiv(n, L) + j


def test_layout_helpers_build_amaranth_expressions():
    from amaranth.hdl import Signal, Value
    lay = Layout.of(CONFIGS["tiny"])
    s, t = Signal(24), Signal(16)
    for v in (lay.a_dense_line(s, t, t), lay.mask_word_line(s, t), lay.mask_word_slot(t), lay.ptr_line(s, t),
              lay.ptr_slot(t), lay.byte_line(s, t), lay.byte_slot(t), lay.b_line(s, t, t), lay.b_slot(t),
              lay.c_line(s, t, t), lay.words(t), lay.blocks(t)):
        assert isinstance(v, Value)


# ---- compile_matmul errors -----------------------------------------------------------------------

TINY = CONFIGS["tiny"]
A, B = random_operands(4, 8, 4, 0.5, seed=0)
L1_TAIL = ("holds 256 lines of 16 bytes and lines 0..255 are free for it (operands in HBM are tiled: "
           "hwgen.compiler.tiling)")


@pytest.mark.parametrize("call, message", [
    (lambda: compile_matmul(TINY, A.astype(np.int16), B), "A: dtype int16 is not allowed (allowed: int8)"),
    (lambda: compile_matmul(TINY, A, B.astype(np.float32)), "B: dtype float32 is not allowed (allowed: int8)"),
    (lambda: compile_matmul(TINY, A.tolist(), B), "A: expected a numpy array, got list"),
    (lambda: compile_matmul(TINY, A[0], B), "A: shape (8,) is not allowed (allowed: a 2-D matrix)"),
    (lambda: compile_matmul(TINY, A, B[None]), "B: shape (1, 8, 4) is not allowed (allowed: a 2-D matrix)"),
    (lambda: compile_matmul(TINY, A[:0], B), "A: shape (0, 8) is not allowed (each dimension in 1..65535)"),
    (lambda: compile_matmul(TINY, np.zeros((1, 1 << 16), np.int8), np.zeros((1 << 16, 1), np.int8)),
     "A: shape (1, 65536) is not allowed (each dimension in 1..65535)"),
    (lambda: compile_matmul(TINY, A, B[:5]), "B: shape (5, 4) does not match A (4, 8): B needs 8 rows"),
    (lambda: compile_matmul(TINY, A, B, kernel="conv"),
     "kernel: 'conv' is not allowed (allowed: spmm, gemm, gnn_aggregate)"),
    (lambda: compile_matmul(TINY, A, B, a_format="coo"),
     "format: 'coo' is not allowed (allowed: dense, bitmask, nm, csr)"),
    (lambda: compile_matmul(TINY, A, B, kernel="gnn_aggregate"),
     "format: 'dense' is not allowed for gnn_aggregate (allowed: csr)"),
    (lambda: compile_matmul(TINY, A, B, row_order="random"),
     "row_order: 'random' is not allowed (allowed: natural, longest_first)"),
    (lambda: compile_matmul(TINY, A, B, kernel="gemm", a_format="bitmask"),
     "format: 'bitmask' is not allowed for gemm (allowed: dense)"),
    (lambda: compile_matmul(TINY, A, B, threshold=129), "threshold: 129 is not allowed (allowed: an integer 0..128)"),
    (lambda: compile_matmul(TINY, A, B, threshold=-1), "threshold: -1 is not allowed (allowed: an integer 0..128)"),
    (lambda: compile_matmul(TINY, A, B, threshold=1.5), "threshold: 1.5 is not allowed (allowed: an integer 0..128)"),
    (lambda: compile_matmul(TINY, A, B, threshold=True),
     "threshold: True is not allowed (allowed: an integer 0..128)"),
    (lambda: compile_matmul(TINY, A, B, kernel="gemm", threshold=3),
     "threshold: 3 is not allowed for gemm (allowed: 0; gemm is dense)"),
    (lambda: compile_matmul(TINY, np.ones((300, 16), np.int8), np.ones((16, 4), np.int8)),
     f"A: needs L1 lines 0..299 but l1.bytes = 4096 {L1_TAIL}"),
    (lambda: compile_matmul(TINY, np.ones((4, 64), np.int8), np.ones((64, 64), np.int8)),
     f"B: needs L1 lines 16..271 but l1.bytes = 4096 {L1_TAIL}"),
    (lambda: compile_matmul(TINY, np.ones((16, 256), np.int8), np.ones((256, 4), np.int8), a_format="bitmask"),
     f"A.vals: needs L1 lines 37..292 but l1.bytes = 4096 {L1_TAIL}"),
    (lambda: compile_matmul(TINY, np.ones((64, 1), np.int8), np.ones((1, 64), np.int8)),
     "C: 64x64 needs 1024 output lines but l1.out_bytes = 4096 holds 256 lines of 4 x int32"),
])
def test_compile_errors(call, message):
    with pytest.raises(OperandError) as info:
        call()
    assert str(info.value) == message


def test_largest_operands_that_fit():
    # A: 240 lines, B: 16 lines = all 256 lines of tiny's L1; C: 240 x 1 block <= 256 output lines
    prog = compile_matmul(TINY, np.ones((240, 16), np.int8), np.ones((16, 4), np.int8))
    assert prog.l1_lines_used == TINY.l1_lines


# ---- bitmask and the L1 image --------------------------------------------------------------------

def test_bitmask_encode_round_trip():
    for density in (0.0, 0.05, 0.5, 1.0):
        a, _ = random_operands(13, 37, 1, density, seed=11)
        a[2] = 0
        mask, ptr, vals = bitmask_encode(a)
        assert mask.dtype == bool and ptr.dtype == np.uint32 and vals.dtype == np.int8
        assert ptr[0] == 0 and ptr[-1] == vals.size == np.count_nonzero(a)
        back = np.zeros_like(a)
        for i in range(a.shape[0]):
            cols = np.flatnonzero(mask[i])
            assert cols.size == ptr[i + 1] - ptr[i]
            back[i, cols] = vals[ptr[i]:ptr[i + 1]]
        assert np.array_equal(back, a)
        assert (vals != 0).all()


def line_bytes_at(l1: np.ndarray, line: int, start: int, count: int) -> bytes:
    assert 0 <= start and start + count <= l1.shape[1]
    return l1[line, start:start + count].tobytes()


def decode_dense_a(l1, W, a_addr, m, k) -> np.ndarray:
    nw = cdiv(k, W)
    a = np.zeros((m, k), np.int8)
    for i in range(m):
        for c in range(k):
            a[i, c] = np.int8(np.uint8(l1[a_addr + i * nw + c // W, c % W]))
        for c in range(k, nw * W):  # padding is zero
            assert l1[a_addr + i * nw + c // W, c % W] == 0
    return a


def decode_bitmask_a(l1, W, f) -> np.ndarray:
    m, k = f["m"], f["k"]
    nw = cdiv(k, W)
    per_line = W // PTR_BYTES
    ptr = [int.from_bytes(line_bytes_at(l1, f["a_ptr"] + i // per_line, (i % per_line) * PTR_BYTES, PTR_BYTES),
                          "little") for i in range(m + 1)]
    assert ptr[0] == 0
    a = np.zeros((m, k), np.int8)
    for i in range(m):
        nz = 0
        for c in range(nw * W):
            g, t = i * nw + c // W, c % W
            word = line_bytes_at(l1, f["a_addr"] + g // 8, (g % 8) * (W // 8), W // 8)
            if not (word[t // 8] >> (t % 8)) & 1:
                continue
            assert c < k, "mask bit set in the padding"
            byte = ptr[i] + nz
            a[i, c] = np.int8(np.uint8(l1[f["a_meta"] + byte // W, byte % W]))
            assert a[i, c] != 0
            nz += 1
        assert ptr[i + 1] == ptr[i] + nz
    return a


def decode_b(l1, W, L, b_addr, k, n) -> np.ndarray:
    nbl = cdiv(n, W)
    b = np.zeros((k, n), np.int8)
    for r in range(k):
        for c in range(n):
            j, e = c // L, c % L  # lane block j, element e of it
            line = b_addr + r * nbl + (j * L) // W
            b[r, c] = np.int8(np.uint8(l1[line, (j * L) % W + e]))
    return b


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("a_format", ["dense", "bitmask"])
def test_l1_image_holds_operands_where_layout_says(name, a_format):
    cfg = CONFIGS[name]
    W, L = cfg.line_bytes, cfg.engine.lanes
    rng = np.random.default_rng(len(name))
    for m, k, n, density in ((1, 1, 1, 1.0), (5, W + 3, L + 1, 0.3), (9, 2 * W - 1, 3 * L, 0.0), (3, 17, 7, 1.0)):
        a, b = random_operands(m, k, n, density, seed=int(rng.integers(1 << 30)))
        if m > 2:
            a[1] = 0
            a[2] = -128
        prog = compile_matmul(cfg, a, b, kernel="spmm", a_format=a_format, threshold=5)
        (f,) = prog.fields
        assert (f["m"], f["k"], f["n"], f["threshold"]) == (m, k, n, 5)
        assert f["opcode"] == isa.Opcode.SPMM and f["a_format"] == isa.AFormat[a_format.upper()]
        assert prog.l1.dtype == np.uint8 and prog.l1.shape == (cfg.l1_lines, W)
        assert prog.config_digest == cfg.digest() and f["c_addr"] == 0
        assert (prog.outputs["C"].m, prog.outputs["C"].n, prog.outputs["C"].c_addr) == (m, n, 0)
        assert prog.tensors["A"] is a and prog.tensors["B"] is b
        if a_format == "dense":
            assert np.array_equal(decode_dense_a(prog.l1, W, f["a_addr"], m, k), a)
            regions = [(f["a_addr"], m * cdiv(k, W))]
        else:
            assert np.array_equal(decode_bitmask_a(prog.l1, W, f), a)
            nnz = max(1, np.count_nonzero(a))
            regions = [(f["a_addr"], cdiv(m * cdiv(k, W), 8)), (f["a_ptr"], cdiv((m + 1) * PTR_BYTES, W)),
                       (f["a_meta"], cdiv(nnz, W))]
        assert np.array_equal(decode_b(prog.l1, W, L, f["b_addr"], k, n), b)
        regions.append((f["b_addr"], k * cdiv(n, W)))
        # regions are back to back from line 0, none overlap, and nothing else is written
        pos = 0
        for start, size in regions:
            assert start == pos
            pos += size
        assert prog.l1_lines_used == pos
        assert not prog.l1[pos:].any()


def test_gemm_descriptor_and_default_threshold():
    cfg = from_dict({"name": "thr", "engine": {"threshold": 7}})
    a, b = random_operands(3, 5, 2, 1.0, seed=2)
    assert compile_matmul(cfg, a, b).fields[0]["threshold"] == 7
    assert compile_matmul(cfg, a, b, threshold=0).fields[0]["threshold"] == 0
    (f,) = compile_matmul(cfg, a, b, kernel="gemm").fields
    assert f["opcode"] == isa.Opcode.GEMM and f["a_format"] == isa.AFormat.DENSE
    assert f["threshold"] == 0   # gemm is dense: the config's threshold does not apply


def test_accumulate_is_appended_and_single_kernel_programs_leave_it_clear():
    """The K-tiling bit is the table's last field: no other field moved, so a descriptor written before it
    packs to the same word; a single-kernel matmul never accumulates."""
    names = list(isa.FIELD_NAMES)
    assert names[-1] == "accumulate" and isa.DESCRIPTOR.bits("accumulate") == 1
    assert isa.pack(accumulate=1) == 1 << sum(f.bits for f in isa.DESCRIPTOR if f.name != "accumulate")
    assert sum(f.bits for f in isa.DESCRIPTOR) <= isa.DESCRIPTOR_BITS
    a, b = random_operands(3, 5, 2, 1.0, seed=2)
    assert compile_matmul(from_dict({"base": "tiny"}), a, b).fields[0]["accumulate"] == 0
