"""The DAG compiler: a workload (``hwgen/spec/workload.py``) -> tiles -> tasks -> a ``Program`` for the scheduler.

Kernels are cut into row tiles of A; each tile is one task, run on one engine from an empty L1::

    LOAD B -> line 0, LOAD A tile (streaming), [LOAD requant table], COMPUTE [wait LOAD], STORE [wait COMPUTE]

Every tensor lives in paged HBM (``hwgen/spec/page_table.py``): the inputs (B as its L1 image; A as padded rows, or
for bitmask / N:M / CSR one encoded tensor per tile), the requant tables, and the produced tensors, zeroed at
the start (a skipped task leaves its rows zero). An int8 (requantized) output is stored from L1 (STORE
``source`` 1: the rows at ``d_addr``) as padded rows, the layout a later task LOADs as its A or its B; an
int32 output is stored from the output buffer as output lines.

Dependencies are per tile: a task that reads rows i0..i1 of a produced A waits for the producer's tiles that
wrote those rows; a task that reads a produced B waits for all of the producer's tiles; a predicated task
waits for its gate. Tasks are numbered kernel by kernel in the workload's topological order, so the table is
topological. Priorities: ``est`` is the compiler's estimate of a task's cycles from what it knows before
run time (dense cost for dense A, the stored nonzeros for an encoded A: it does not look at activation
values), ``rank`` the estimated longest path from the task to the end (its critical-path rank).

The program region (``hwgen/spec/task_table.py``: header, task table, successor lists, descriptors) is written in
physical HBM after the page table; ``Program.program_base`` is the header's address.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwgen.compiler.page_allocator import PageAllocator
from hwgen.compiler.single_kernel import _as_format, _pad_lines, _requant_table, _rows_padded
from hwgen.compiler.tiling import WAIT_COMPUTE, WAIT_LOAD, _encode_tile
from hwgen.spec import isa
from hwgen.spec.axi import beats_per_line
from hwgen.spec.config import HwConfig
from hwgen.spec.formats import DEFAULT_NM, OperandError
from hwgen.spec.layout import Layout
from hwgen.spec.program import OutputSpec, Program
from hwgen.spec.task_table import HEADER, SUCC_BYTES, TASK, GateOp
from hwgen.spec.workload import Kernel, Workload, WorkloadError

PROGRAM_ALIGN = 4096
EST_OVERHEAD = 40   # cycles a task costs beyond its lines and MACs (DMA latency, pipeline fill): an estimate


@dataclass
class _Tile:
    kernel: Kernel
    index: int          # tile number in its kernel
    rows: tuple[int, int]
    descriptors: list[int]
    est: int
    deps: set[int]


def _whole_beats(cfg: HwConfig, lines: int) -> int:
    """``lines`` output lines rounded up to whole AXI beats (a STORE writes whole beats)."""
    gather = beats_per_line(cfg)[1]
    return -(-lines // gather) * gather


def _tile_rows(cfg: HwConfig, k: Kernel, m: int, kk: int, n: int, a_lines_of, fixed_lines: int) -> int:
    """The most rows per tile whose A, requant table and int8 rows fit L1 beside B, and whose C fits the
    output buffer (in whole beats)."""
    lay = Layout.of(cfg)
    rows = min(m, k.tile_rows or m, cfg.out_lines // lay.blocks(n))
    while rows > 0:
        d_lines = rows * lay.words(n) if k.requant else 0
        whole = rows == m or _whole_beats(cfg, rows * lay.blocks(n)) == rows * lay.blocks(n) or k.requant
        if whole and fixed_lines + a_lines_of(rows) + d_lines <= cfg.l1_lines:
            return rows
        rows -= 1
    raise WorkloadError(f"kernels.{k.name}: B ({kk}x{n}) and one row of A do not fit one engine's L1 "
                        f"({cfg.l1_lines} lines of {cfg.line_bytes} bytes; B takes {fixed_lines}) or one row of C "
                        f"the output buffer ({cfg.out_lines} lines) (allowed: smaller B or a bigger l1)")


def compile_workload(cfg: HwConfig, w: Workload, page_seed: int | None = None) -> Program:
    """The scheduler's program for ``w`` on ``cfg`` (see the module docstring)."""
    w.check()
    lay, W, sched = Layout.of(cfg), cfg.line_bytes, cfg.scheduler
    shapes = w.shapes()
    out_line_bytes = cfg.out_line_bits // 8

    # predicate bits: each gate's block, in kernel order
    gate_base, bits = {}, 0
    for k in w.order():
        if k.gate:
            (rows, cols), _ = shapes[k.out]
            gate_base[k.name] = bits
            bits += k.gate.bits(rows, cols)
    if bits > sched.predicates:
        raise WorkloadError(f"gates: {bits} predicate bits needed, more than scheduler.predicates = "
                            f"{sched.predicates} (allowed: at most {sched.predicates})")

    # tensors in HBM: inputs read as B (L1 image), as dense A (padded rows), encoded A tiles, requant tables,
    # produced tensors (int8 rows or output lines)
    blobs, writable, plan = {}, {}, []
    for name, t in w.tensors.items():
        blobs[name] = _rows_padded(t, lay.words(t.shape[1]) * W).tobytes()   # B's image == A's padded rows
    for k in w.order():
        (m, kk), (_, n) = shapes[k.a][0], shapes[k.b][0]
        stored = _as_format(w.tensors[k.a], k.a_format, DEFAULT_NM)[0] if k.a_format != "dense" else None
        b_lines = kk * lay.b_row_lines(n)
        rq = _requant_table(cfg, k.requant, n) if k.requant else None
        rq_lines = 0
        if rq:
            rq_blob = np.concatenate([_pad_lines(rq[1], W), _pad_lines(rq[2], W)])
            blobs[f"{k.name}.requant"] = rq_blob.tobytes()
            rq_lines = rq_blob.size // W
        limit = cfg.l1_lines - rq_lines

        def a_lines(rows: int, stored=stored, kk=kk, m=m, b_lines=b_lines, limit=limit, fmt=k.a_format) -> int:
            if stored is None:
                return rows * lay.words(kk)
            try:
                return max(_encode_tile(cfg, stored, fmt, slice(i, min(i + rows, m)), kk, b_lines,
                                        limit)[1] for i in range(0, m, rows))
            except OperandError:
                return cfg.l1_lines
        rows = _tile_rows(cfg, k, m, kk, n, a_lines, b_lines + rq_lines)
        gate = next((g for g in w.kernels if k.when and g.name == k.when[0]), None)
        if gate is not None and gate.gate.op == "topk" and rows < (gate.gate.tile_rows or m):
            raise WorkloadError(f"kernels.{k.name}: tiles of {rows} rows fit one engine, fewer than the "
                                f"{gate.gate.tile_rows or m} rows per predicate bit of gate {gate.name!r} (allowed: "
                                "a gate tile_rows that fits one engine)")
        if k.gate and rows < m:
            raise WorkloadError(f"kernels.{k.name}: a gate must be one task, but its {m} rows need tiles of "
                                f"{rows} (allowed: an output that fits one engine)")
        tiles = []                                # (first row, end row, A fields, A lines)
        for t, i in enumerate(range(0, m, rows)):
            i1 = min(i + rows, m)
            if stored is not None:                # encoded once, here: its own tensor in HBM
                fields, used, img = _encode_tile(cfg, stored, k.a_format, slice(i, i1), kk, b_lines, limit)
                blobs[f"{k.name}.A{t}"] = img.lines[b_lines:b_lines + used].tobytes()
            else:                                 # rows of A's padded image
                fields, used = dict(a_addr=b_lines), (i1 - i) * lay.words(kk)
            tiles.append((i, i1, fields, used))
        # int32 output lines are stored in whole AXI beats: the last tile's STORE may write up to a beat's worth
        # of lines past the tensor (the output buffer's next lines), so the tensor is padded to a whole beat
        writable[k.out] = m * lay.words(n) * W if k.requant else _whole_beats(cfg, m * lay.blocks(n)) * out_line_bytes
        plan.append((k, kk, n, tiles, rq, b_lines, rq_lines))

    # pages: inputs read-only, produced tensors writable (zeroed); then the page table
    pb = cfg.memory.page_bytes
    need = sum(-(-len(b) // pb) for b in blobs.values()) + sum(-(-n // pb) for n in writable.values())
    alloc = PageAllocator(cfg, need * pb * (1 if page_seed is None else 2), seed=page_seed)
    where = {name: alloc.alloc(name, len(blob), writable=False) for name, blob in blobs.items()}
    where.update({name: alloc.alloc(name, nbytes) for name, nbytes in writable.items()})
    table = alloc.page_table()
    prog_base = -(-(table.base + table.size_bytes) // PROGRAM_ALIGN) * PROGRAM_ALIGN

    # tasks
    tasks: list[_Tile] = []
    writers: dict[str, list[tuple[int, tuple[int, int]]]] = {}   # tensor -> [(task, rows)]
    first_task: dict[str, int] = {}
    for k, kk, n, tiles, rq, b_lines, rq_lines in plan:
        first_task[k.name] = len(tasks)
        opcode = isa.Opcode.GEMM if k.op == "gemm" else isa.Opcode.SPMM
        threshold = 0 if k.op == "gemm" else (cfg.engine.threshold if k.threshold is None else k.threshold)
        for t, (i0, i1, fields, used) in enumerate(tiles):
            r = i1 - i0
            load = dict(opcode=isa.Opcode.LOAD)
            descs = [isa.pack(**load, hbm_addr=where[k.b].vaddr, a_addr=0, lines=kk * lay.b_row_lines(n))]
            a_first = b_lines
            if k.a_format != "dense":     # the format tells the compiler the nonzeros; dense A: all of them
                a_hbm, nnz = where[f"{k.name}.A{t}"].vaddr, int((w.tensors[k.a][i0:i1] != 0).sum())
            else:
                a_hbm, nnz = where[k.a].vaddr + i0 * lay.words(kk) * W, r * kk
            descs.append(isa.pack(**load, hbm_addr=a_hbm, a_addr=a_first, lines=used, stream=1))
            compute = dict(opcode=opcode, a_format=isa.AFormat[k.a_format.upper()], **fields, m=r, k=kk, n=n,
                           threshold=threshold, b_addr=0, c_addr=0, wait=WAIT_LOAD)
            loaded = kk * lay.b_row_lines(n) + used
            if rq:
                rq_addr = a_first + used
                descs.append(isa.pack(**load, hbm_addr=where[f"{k.name}.requant"].vaddr, a_addr=rq_addr,
                                      lines=rq_lines))
                compute.update(requant=rq[0], rq_addr=rq_addr, d_addr=rq_addr + rq_lines)
                loaded += rq_lines
                store = dict(source=1, d_addr=compute["d_addr"], lines=r * lay.words(n),
                             hbm_addr=where[k.out].vaddr + i0 * lay.words(n) * W)
            else:
                store = dict(c_addr=0, lines=_whole_beats(cfg, r * lay.blocks(n)),
                             hbm_addr=where[k.out].vaddr + i0 * lay.blocks(n) * out_line_bytes)
            descs.append(isa.pack(**compute))
            descs.append(isa.pack(opcode=isa.Opcode.STORE, wait=WAIT_COMPUTE, **store))
            est = loaded + -(-nnz * lay.blocks(n) // cfg.engine.rows) + store["lines"] + EST_OVERHEAD
            deps = set()
            for role, tensor in (("a", k.a), ("b", k.b)):
                for task, (w0, w1) in writers.get(tensor, []):
                    if role == "b" or (w0 < i1 and i0 < w1):
                        deps.add(task)
            if k.when:
                deps.add(first_task[k.when[0]])
            tasks.append(_Tile(k, t, (i0, i1), descs, est, deps))
        writers[k.out] = [(first_task[k.name] + t, (i0, i1)) for t, (i0, i1, _, _) in enumerate(tiles)]

    _check_limits(cfg, tasks)
    succs: list[list[int]] = [[] for _ in tasks]
    for i, task in enumerate(tasks):
        for d in sorted(task.deps):
            succs[d].append(i)
    rank = [0] * len(tasks)
    for i in reversed(range(len(tasks))):
        rank[i] = tasks[i].est + max((rank[s] for s in succs[i]), default=0)

    entries, succ_flat, descs = [], [], []
    for i, task in enumerate(tasks):
        k = task.kernel
        f = dict(first=len(descs), count=len(task.descriptors), deps=len(task.deps), succ_first=len(succ_flat),
                 succ_count=len(succs[i]), rank=min(rank[i], (1 << 24) - 1), est=min(task.est, (1 << 24) - 1))
        if k.when:
            g = next(x for x in w.kernels if x.name == k.when[0])
            g_rows = shapes[g.out][0][0]
            f.update(pred_en=1, pred=gate_base[g.name] + g.gate.bit(k.when[1], task.index, g_rows))
        if k.gate:
            (g_rows, g_cols), _ = shapes[k.out]
            gate_addr = table.translate(where[k.out].vaddr)
            if where[k.out].pages > 1:
                raise WorkloadError(f"kernels.{k.name}: its gate values take {where[k.out].pages} pages "
                                    "(allowed: one page, read by physical address)")
            f.update(gate=GateOp.THRESHOLD if k.gate.op == "threshold" else GateOp.TOPK,
                     gate_base=gate_base[k.name], gate_rows=g_rows, gate_cols=g_cols, gate_k=k.gate.k,
                     gate_capacity=k.gate.capacity or g_rows, gate_tile_rows=k.gate.tile_rows or g_rows,
                     gate_threshold=k.gate.threshold & 0xFFFFFFFF, gate_addr=gate_addr)
        entries.append(f)
        succ_flat += succs[i]
        descs += task.descriptors

    image = write_program_region(cfg, None, prog_base, entries, succ_flat, descs, table.base, table.num_entries,
                                 min_bytes=table.base + table.size_bytes, round_to=pb)
    image[table.base:table.base + table.size_bytes] = np.frombuffer(table.image, np.uint8)
    for name, blob in blobs.items():
        table.write(image, where[name].vaddr, blob, check=False)

    outputs = {}
    for name in w.outputs:
        (m, n), kind = shapes[name]
        outputs[name] = OutputSpec(0, m, n, hbm_addr=where[name].vaddr, int8_rows=kind == "int8")
    task_info = tuple({**dict.fromkeys(TASK.names, 0), **entries[i], "succ": tuple(succs[i]),
                       "kernel": t.kernel.name, "tile": t.index, "rows": t.rows} for i, t in enumerate(tasks))
    return Program(config_digest=cfg.digest(), descriptors=tuple(descs),
                   l1=np.zeros((cfg.l1_lines, W), np.uint8), outputs=outputs, l1_lines_used=0,
                   tensors=dict(w.tensors), kernel="workload",
                   params={"workload": w, "gate_base": gate_base, "predicate_bits": bits,
                           "placement": "hbm", "page_seed": page_seed,
                           "pages": {name: t.ppns for name, t in where.items()}},
                   hbm=image, page_table_base=table.base, page_table_entries=table.num_entries,
                   fragmentation=alloc.fragmentation(), tasks=task_info, program_base=prog_base)


def write_program_region(cfg: HwConfig, image: np.ndarray | None, base: int, entries: list[dict[str, int]],
                         succ_flat: list[int], descs: list[int], page_table_base: int = 0,
                         page_table_entries: int = 0, min_bytes: int = 0, round_to: int = 1) -> np.ndarray:
    """Write the program region (``hwgen/spec/task_table.py``) at physical ``base``: the header, the task table
    (``entries``: TASK fields), the successor lists and the descriptors, each starting on a multiple of
    max(64, AXI beat) bytes (the scheduler's RAM rows). ``image`` None: a new zeroed image of at least
    ``min_bytes`` and the region, rounded up to ``round_to``; a given image is grown the same way (a copy).
    Returns the image."""
    align = max(64, cfg.beat_bytes)
    if base % align:
        raise ValueError(f"program base: 0x{base:x} is not allowed: must be a multiple of {align}")

    def aligned(x: int) -> int:
        return -(-x // align) * align
    table_addr = aligned(base + HEADER.bytes)
    succ_addr = aligned(table_addr + len(entries) * TASK.bytes)
    desc_addr = aligned(succ_addr + len(succ_flat) * SUCC_BYTES)
    end = desc_addr + len(descs) * isa.DESCRIPTOR_BITS // 8
    size = -(-max(end, min_bytes, 0 if image is None else len(image)) // round_to) * round_to
    grown = np.zeros(size, dtype=np.uint8)
    if image is not None:
        grown[:len(image)] = image
    image = grown
    header = HEADER.pack(tasks=len(entries), successors=len(succ_flat), descriptors=len(descs),
                         table_addr=table_addr, succ_addr=succ_addr, desc_addr=desc_addr,
                         page_table_base=page_table_base, page_table_entries=page_table_entries)
    image[base:base + HEADER.bytes] = np.frombuffer(header.to_bytes(HEADER.bytes, "little"), np.uint8)
    for i, f in enumerate(entries):
        at = table_addr + i * TASK.bytes
        image[at:at + TASK.bytes] = np.frombuffer(TASK.pack(**f).to_bytes(TASK.bytes, "little"), np.uint8)
    image[succ_addr:succ_addr + len(succ_flat) * SUCC_BYTES] = np.asarray(succ_flat, "<u2").view(np.uint8)
    for i, d in enumerate(descs):
        at = desc_addr + i * isa.DESCRIPTOR_BITS // 8
        image[at:at + isa.DESCRIPTOR_BITS // 8] = np.frombuffer(isa.to_bytes(d), np.uint8)
    return image


def _check_limits(cfg: HwConfig, tasks: list[_Tile]) -> None:
    """The program fits the scheduler's on-chip tables (``scheduler.*``) and the task fields."""
    sched = cfg.scheduler
    need = {"tasks": len(tasks), "successors": sum(len(t.deps) for t in tasks),
            "descriptors": sum(len(t.descriptors) for t in tasks)}
    for name, n in need.items():
        if n > getattr(sched, name):
            raise WorkloadError(f"program: {n} {name}, more than scheduler.{name} = {getattr(sched, name)} "
                                f"(allowed: at most {getattr(sched, name)}; use bigger tiles or a bigger table)")
    fanout = [0] * len(tasks)
    for t in tasks:
        for d in t.deps:
            fanout[d] += 1
    for i, t in enumerate(tasks):
        if max(len(t.deps), fanout[i]) > TASK.mask["deps"]:
            raise WorkloadError(f"kernels.{t.kernel.name}: task {i} has {len(t.deps)} predecessors and "
                                f"{fanout[i]} successors (allowed: at most {TASK.mask['deps']} each)")
