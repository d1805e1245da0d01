"""STORE from L1 (descriptor field ``source`` = 1): requantized int8 rows go from L1 to HBM, so that a layer on
another engine can read them; golden == sim == RTL, and the same timing as an output-buffer STORE whose line
is one beat.

The programs are built by hand: A, B and the requant table are LOADed from paged HBM into the L1 lines
``hwgen.spec.program`` places them at; then per row tile a requantized spmm writes its int8 rows into one of two D
buffers at ``d_addr`` and a STORE (``source`` = 1, waiting for COMPUTE) writes them to C in HBM, while the
next tile computes into the other buffer.
"""
import dataclasses

import numpy as np
import pytest
from conftest import three_way, variant

from golden import kernels, numerics
from golden.generators.operands import random_operands
from hwgen.compiler.page_allocator import PageAllocator
from hwgen.compiler.single_kernel import _Image, _place_requant, _requant_table, place_a, place_b
from hwgen.spec import isa
from hwgen.spec.layout import Layout
from hwgen.spec.program import OutputSpec, Program, decode_output
from sim.model.engine import EngineModel
from sim.rtl.runner import run_rtl_batch

WAIT_LOAD, WAIT_COMPUTE, WAIT_STORE = (1 << u for u in isa.Unit)
REQUANT = (181, 16)   # per tensor


def _paged(cfg, blobs: dict[str, bytes], writable: dict[str, int]):
    """Page the read-only ``blobs`` and the ``writable`` tensors (name: bytes): (vaddrs, image, table)."""
    pb = cfg.memory.page_bytes
    sizes = [len(b) for b in blobs.values()] + list(writable.values())
    alloc = PageAllocator(cfg, sum(-(-s // pb) for s in sizes) * pb)
    where = {name: alloc.alloc(name, len(blob), writable=False).vaddr for name, blob in blobs.items()}
    where.update({name: alloc.alloc(name, size).vaddr for name, size in writable.items()})
    table = alloc.page_table()
    image = np.zeros(-(-(table.base + table.size_bytes) // pb) * pb, dtype=np.uint8)
    image[table.base:table.base + table.size_bytes] = np.frombuffer(table.image, np.uint8)
    for name, blob in blobs.items():
        table.write(image, where[name], blob, check=False)
    return where, image, table


def l1_store_program(cfg, m=32, k=40, n=20, rows=8, density=0.3, seed=0, source=1, also_out=False,
                     store_wait=WAIT_COMPUTE) -> Program:
    """LOAD B, A, the requant table; per tile of ``rows`` rows: spmm + requant into D[g % 2], then STORE of D
    from L1 to C (``source`` 0 instead: the same number of lines from the tile's output-buffer half, for
    timing only). ``also_out``: each tile also STOREs its output lines (sign-extended int8) to "C32"."""
    lay, W = Layout.of(cfg), cfg.line_bytes
    a, b = random_operands(m, k, n, density, seed=seed)
    img = _Image(cfg)
    b_addr = place_b(img, b)
    a_addr = place_a(img, a, "dense", m, k)["a_addr"]
    table = _requant_table(cfg, REQUANT, n)
    fields = dict(opcode=isa.Opcode.SPMM, a_format=isa.AFormat.DENSE, k=k, n=n, b_addr=b_addr)
    _place_requant(img, fields, table, rows, n)                  # rq_addr, D0 at d_addr
    d_bufs = (fields["d_addr"], img.place("D1", np.zeros(rows * lay.words(n) * W, np.uint8)))
    rq_addr = fields["rq_addr"]
    lines = img.lines
    blobs = {"B": lines[b_addr:a_addr].tobytes(), "A": lines[a_addr:rq_addr].tobytes(),
             "RQ": lines[rq_addr:d_bufs[0]].tobytes()}
    out_line_bytes, nbj = cfg.out_line_bits // 8, lay.blocks(n)
    writable = {"C": m * lay.words(n) * W, **({"C32": m * nbj * out_line_bytes} if also_out else {})}
    where, image, page_table = _paged(cfg, blobs, writable)

    def load(name: str, line: int) -> int:
        return isa.pack(opcode=isa.Opcode.LOAD, hbm_addr=where[name], a_addr=line, lines=len(blobs[name]) // W)

    descs = [load("B", b_addr), load("A", a_addr), load("RQ", rq_addr)]
    for g, i0 in enumerate(range(0, m, rows)):
        tile = min(rows, m - i0)
        half = (g % 2) * (cfg.out_lines // 2)
        descs.append(isa.pack(**{**fields, "m": tile, "a_addr": a_addr + i0 * lay.words(k), "d_addr": d_bufs[g % 2],
                                 "c_addr": half, "wait": WAIT_LOAD if g == 0 else 0}))
        store = dict(opcode=isa.Opcode.STORE, hbm_addr=where["C"] + i0 * lay.words(n) * W,
                     lines=tile * lay.words(n), wait=store_wait)
        descs.append(isa.pack(**store, source=1, d_addr=d_bufs[g % 2]) if source
                     else isa.pack(**store, c_addr=half))
        if also_out:
            descs.append(isa.pack(opcode=isa.Opcode.STORE, c_addr=half, lines=tile * nbj,
                                  hbm_addr=where["C32"] + i0 * nbj * out_line_bytes))
    outputs = {"C": OutputSpec(0, m, n, hbm_addr=where["C"], int8_rows=True)}
    if also_out:
        outputs["C32"] = OutputSpec(0, m, n, hbm_addr=where["C32"])
    return Program(config_digest=cfg.digest(), descriptors=tuple(descs),
                   l1=np.zeros((cfg.l1_lines, W), np.uint8), outputs=outputs, l1_lines_used=0,
                   tensors={"A": a, "B": b, "requant_multiplier": table[1].astype(np.int64),
                            "requant_shift": table[2].astype(np.int64)},
                   kernel="spmm", hbm=image, page_table_base=page_table.base,
                   page_table_entries=page_table.num_entries)


def golden_int8(cfg, program: Program) -> np.ndarray:
    """requantize(spmm(A, B)) straight from golden.numerics / golden.kernels."""
    c = kernels.spmm(cfg.numeric(), program.tensors["A"], program.tensors["B"])
    return numerics.requantize(c, *REQUANT).numpy().astype(np.int64)


# ---- the descriptor field ---------------------------------------------------------------------------

def test_source_field_round_trip_and_position():
    names = list(isa.FIELD_NAMES)
    at = names.index("source")
    assert names[at - 1:] == ["stream", "source", "accumulate"] and isa.DESCRIPTOR.bits("source") == 1
    offset = sum(f.bits for f in list(isa.DESCRIPTOR)[:at])   # appended (only later fields after it): none moved
    assert isa.pack(source=1) == 1 << offset
    assert isa.pack(stream=1) == 1 << (offset - 1)
    fields = dict(opcode=isa.Opcode.STORE, source=1, d_addr=123, c_addr=45, lines=678, hbm_addr=0x1234_5000,
                  wait=WAIT_COMPUTE, stream=0)
    word = isa.pack(**fields)
    assert isa.unpack(word) == {**{name: 0 for name in names}, **fields}
    assert isa.unpack(isa.from_bytes(isa.to_bytes(word)))["source"] == 1


# ---- simulator ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["tiny", "odd", "wrap16"])
def test_store_from_l1_in_the_simulator(name):
    """The int8 rows in HBM equal golden; the STOREs read L1 (energy report), not the output buffer."""
    cfg = variant(name)
    program = l1_store_program(cfg, also_out=True)
    sim = EngineModel(cfg).run(program)
    want = golden_int8(cfg, program)
    assert len(np.unique(want)) > 64 and (want < 0).any()                  # a spread of int8 values
    np.testing.assert_array_equal(sim.outputs["C"], want)
    np.testing.assert_array_equal(sim.outputs["C32"], want)                # sign-extended in the output buffer
    lay = Layout.of(cfg)
    stores = [f for f in program.fields if f["opcode"] == isa.Opcode.STORE]
    from_l1 = sum(f["lines"] for f in stores if f["source"])
    from_out = sum(f["lines"] for f in stores if not f["source"])
    assert from_l1 == 32 * lay.words(20)
    assert sim.stats["out_read_bytes"] == from_out * cfg.out_line_bits // 8
    assert sim.stats["store_beats"] == from_l1 + from_out * cfg.out_line_bits // (8 * cfg.beat_bytes)
    without = EngineModel(cfg).run(dataclasses.replace(program, descriptors=tuple(
        d for d, f in zip(program.descriptors, program.fields, strict=True) if not (f["opcode"] == isa.Opcode.STORE
                                                                       and f["source"])), outputs={}))
    assert sim.stats["l1_read_bytes"] - without.stats["l1_read_bytes"] == from_l1 * cfg.line_bytes


def test_store_from_l1_times_as_a_one_beat_output_store():
    """On tiny an output line is one beat: a STORE of L1 lines takes the cycles of one of as many output lines."""
    cfg = variant("tiny")
    runs = [EngineModel(cfg).run(l1_store_program(cfg, source=s), outputs=False) for s in (1, 0)]
    assert runs[0].stats["task_issue"] == runs[1].stats["task_issue"]
    assert runs[0].cycles == runs[1].cycles
    assert runs[0].stats["store_beats"] == runs[1].stats["store_beats"]


def test_store_from_l1_must_wait_for_its_writer():
    """Without the wait bit the STORE would read rows the compute task is still writing: the simulator refuses."""
    cfg = variant("tiny")
    with pytest.raises(ValueError, match=r"task 4: STORE reads L1 lines .* while task 3 \(COMPUTE\) still writes "
                                         r"lines .*: set wait bit COMPUTE"):
        EngineModel(cfg).run(l1_store_program(cfg, store_wait=0))


def test_a_later_writer_must_wait_for_the_store():
    """A LOAD into the D buffer a STORE from L1 still reads: the simulator refuses (the compiler sets wait STORE)."""
    cfg = variant("tiny")
    program = l1_store_program(cfg, m=8, rows=8)
    store = program.fields[-1]
    reload = isa.pack(opcode=isa.Opcode.LOAD, hbm_addr=program.fields[0]["hbm_addr"], a_addr=store["d_addr"],
                      lines=1)
    bad = dataclasses.replace(program, descriptors=(*program.descriptors, reload))
    with pytest.raises(ValueError, match=r"task 5: writes l1 lines .* while task 4 \(STORE\) still reads lines "
                                         r".*: set wait bit STORE"):
        EngineModel(cfg).run(bad)
    fixed = dataclasses.replace(program, descriptors=(*program.descriptors, isa.pack(**{
        **isa.unpack(reload), "wait": WAIT_STORE})))
    np.testing.assert_array_equal(EngineModel(cfg).run(fixed).outputs["C"], golden_int8(cfg, program))


def test_int8_rows_output_spec():
    cfg = variant("tiny")
    with pytest.raises(ValueError, match=r"^int8_rows: only allowed for an output in HBM"):
        OutputSpec(0, 2, 3, int8_rows=True)
    with pytest.raises(ValueError, match=r"^int8_rows: only allowed for an output in HBM without panel_blocks"):
        OutputSpec(0, 2, 3, hbm_addr=0, panel_blocks=1, int8_rows=True)
    spec = OutputSpec(0, 2, 3, hbm_addr=0, int8_rows=True)
    rows = np.array([[1, -2, 127], [-128, 0, 5]], np.int8)
    lines = np.zeros((2, cfg.line_bytes), np.uint8)
    lines[:, :3] = rows.view(np.uint8)
    lines[:, 3:] = 0xAB                                                   # padding is ignored
    words = [int.from_bytes(line.tobytes(), "little") for line in lines]
    np.testing.assert_array_equal(decode_output(cfg, spec, words), rows)
    with pytest.raises(ValueError, match=r"^output: 1 lines read, expected 2 \(2 int8 rows of 3 in lines of 16"):
        decode_output(cfg, spec, words[:1])


# ---- RTL ----------------------------------------------------------------------------------------------

@pytest.mark.rtl
@pytest.mark.parametrize("name, stall", [("tiny", 0.0), ("tiny", 0.3), ("odd", 0.0), ("wrap16", 0.0)])
def test_store_from_l1_agrees(name, stall, build_root):
    """golden == sim == RTL (cycles equal at 0 % stalls); odd (two beats per output line) and wrap16 (two
    output lines per beat) mix both sources in one STORE unit."""
    cfg = variant(name)
    cases = [("l1 store", l1_store_program(cfg, seed=1)), ("l1 + out stores", l1_store_program(cfg, also_out=True))]
    rtl = run_rtl_batch(cfg, [p for _, p in cases], build_root, stall=stall, seed=3)
    for label, program, r, sim in three_way(cfg, cases, rtl, stall):
        np.testing.assert_array_equal(r.outputs["C"], golden_int8(cfg, program), err_msg=label)
        if "C32" in program.outputs:
            np.testing.assert_array_equal(r.outputs["C32"], sim.outputs["C32"], err_msg=label)
