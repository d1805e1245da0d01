"""`dsa`: generate Verilog, run a kernel or a DAG on one backend, cross-check all three.

Exit codes: 0 success; 1 a verification mismatch or a lint finding; 2 bad input (config, tensors, workload,
options), found before any work is done, one line per problem naming the field, the value and what is
allowed; 3 a missing toolchain, a build or simulation that failed (the message names its log), or an internal
error (the message names the file that holds its traceback). No traceback is ever printed.
"""
from __future__ import annotations

import json
import os
from enum import Enum
from importlib.metadata import version as package_version
from pathlib import Path

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from hwgen.spec import config as hwconfig
from hwgen.spec import isa
from hwgen.spec.formats import OperandError, parse_nm
from hwgen.spec.isa import THRESHOLD_MAX
from hwgen.spec.program import A_FORMATS, KERNELS
from hwgen.spec.workload import WorkloadError
from sim.backends import BACKENDS, default_build_root, run_programs
from sim.board.driver import BoardError
from sim.console import Stages, crash_log, err, error_lines, out
from sim.fpga.pnr import SEED_TIMEOUT_S
from sim.rtl.errors import RtlError, ToolchainError
from sim.sweep.spec import SweepError

EXIT_HELP = ("Exit codes: 0 ok; 1 a mismatch or lint finding; 2 bad input (one line per problem); 3 a missing "
             "toolchain, a failed build or simulation, a failed board link, or an internal error (the message names "
             "a log).")
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, epilog=EXIT_HELP,
                  help="Generator, cycle simulator and verifier of the DSA dynamic-sparsity accelerator.")

Kernel = Enum("Kernel", {k: k for k in (*KERNELS, "topk_attention")}, type=str)
Format = Enum("Format", {f: f for f in A_FORMATS}, type=str)
Backend = Enum("Backend", {b: b for b in BACKENDS}, type=str)
Policy = Enum("Policy", {p: p for p in hwconfig.POLICIES}, type=str)

CONFIG_HELP = f"preset name ({', '.join(hwconfig.preset_names())}) or a YAML file"
BUILD_ROOT_HELP = ("Verilator build cache, shared by every working folder (default: $DSA_BUILD_ROOT, else "
                   "~/.cache/dsa/rtl)")
DIM = 65535               # m, k, n are 16-bit descriptor fields
SEED_MAX = 2**63 - 1
HOST_MEMORY_SHARE = 0.8   # refuse work that would need more than this share of the memory free now


class BadInput(Exception):
    """Input that is refused before any work: one line per problem."""

    def __init__(self, *lines: str):
        super().__init__("; ".join(lines))
        self.lines = list(lines)


def main(argv: list[str] | None = None) -> int:
    """The `dsa` command: every failure becomes an exit code and plain lines, never a traceback."""
    args = list(argv) if argv is not None else None
    try:
        result = app(args=args, prog_name="dsa", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except typer.Exit as e:
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        error_lines(["interrupted"])
        return 130
    except typer.TyperException as e:          # usage: an unknown option, a value out of range, a missing option
        if type(e).__name__ == "NoArgsIsHelpError":   # `dsa` alone: the help (already printed), not an error
            return 0
        hint = f" (see: {e.ctx.command_path} --help)" if getattr(e, "ctx", None) else ""
        error_lines([e.format_message().replace("Value error, ", "") + hint])
        return 2
    except BadInput as e:
        error_lines(e.lines)
        return 2
    except hwconfig.ConfigError as e:
        error_lines(e.problems)
        return 2
    except (OperandError, WorkloadError) as e:
        error_lines([str(e)])
        return 2
    except SweepError as e:
        error_lines(e.problems)
        return 2
    except (ToolchainError, RtlError) as e:
        error_lines([str(e)])
        return 3
    except BoardError as e:                        # the host link or the board failed
        error_lines([str(e)])
        return 3
    except Exception as e:                         # a bug: say where the traceback is, not the traceback
        log = crash_log(e)
        error_lines([f"internal error: {type(e).__name__}: {e} (traceback in {log}; please report it)"])
        return 3


def _version(value: bool) -> None:
    if value:
        out.print(f"dsa {package_version('dsa')}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")):
    """Generator, cycle simulator and verifier of the DSA dynamic-sparsity accelerator."""


# ---------------------------------------------------------------------------------------------------
# checks that run before any work

def _writable_folder(text: str | Path, option: str) -> Path:
    """A folder the command may write: created now (nothing inside), or refused with the reason."""
    if not str(text).strip():
        raise BadInput(f"{option}: {str(text)!r} is not allowed (allowed: a folder path)")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise BadInput(f"{option}: {str(path)!r} is a file (allowed: a folder, new or existing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".dsa-write-probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise BadInput(f"{option}: {str(path)!r} cannot be written ({e.strerror or e}; allowed: a folder you can "
                       "write)") from None
    return path


def _free_memory() -> int:
    try:
        with open("/proc/meminfo") as fh:
            info = dict(line.split(":", 1) for line in fh)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _root_of(build_root: str | None) -> str | Path:
    return default_build_root() if build_root is None else build_root


def _check_ranges(**options) -> None:
    """Every numeric option in its range, one line per problem: {name: (value, lo, hi)}."""
    bad = [f"--{name.replace('_', '-')}: {value} is not allowed (allowed: {lo}..{hi})"
           for name, (value, lo, hi) in options.items() if value is not None and not lo <= value <= hi]
    if bad:
        raise BadInput(*bad)


def _check_host_memory(m: int, k: int, n: int, what: str) -> None:
    """Refuse a shape whose operands, their generation and the outputs of three executors would not fit the
    memory this machine has free (a 65535 x 65535 A alone needs ~50 GB to generate)."""
    need = 16 * m * k + 4 * k * n + 40 * m * n
    allowed = int(_free_memory() * HOST_MEMORY_SHARE)
    if need > allowed:
        raise BadInput(f"{what}: {m}x{k}x{n} needs about {need / 2**30:.1f} GiB of host memory for its operands and "
                       f"results (allowed: up to {allowed / 2**30:.1f} GiB, {HOST_MEMORY_SHARE:.0%} of what is free)")


def _npy_header(path: Path, option: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a .npy file without reading its data."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise BadInput(f"{option}: cannot read {str(path)!r} as a .npy array ({getattr(e, 'strerror', None) or e})") \
            from None
    if not isinstance(arr, np.ndarray):
        raise BadInput(f"{option}: {str(path)!r} is not a single .npy array")
    return arr.shape, arr.dtype


def _check_npy(path: Path, option: str) -> tuple[int, int]:
    shape, dtype = _npy_header(path, option)
    if dtype != np.int8 or len(shape) != 2 or not all(1 <= d <= DIM for d in shape):
        raise BadInput(f"{option}: {str(path)!r} holds {dtype} {shape} (allowed: a 2-D int8 array, each dimension "
                       f"1..{DIM})")
    return shape


def _check_device(device: str) -> None:
    from golden.numerics import pick_device
    try:
        pick_device(device)
    except (RuntimeError, ValueError) as e:
        raise BadInput(f"--device: {e}") from None


def _load_config(name: str, policy: Policy | None = None) -> hwconfig.HwConfig:
    cfg = hwconfig.load(name)
    if policy is not None:
        cfg = hwconfig.changed(cfg, {"scheduler": {"policy": policy.value}})
    hwconfig.check_memory_side(cfg)     # what the memory side cannot build: refused before any work
    return cfg


def _parse_requant(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        mult, shift = (int(part) for part in text.split(":"))
    except ValueError:
        raise BadInput(f"--requant: {text!r} is not allowed (allowed: MULT:SHIFT such as 181:15)") from None
    return mult, shift


def _nm(text: str) -> tuple[int, int]:
    try:
        return parse_nm(text)
    except OperandError as e:
        raise BadInput(f"--nm: {str(e).split(': ', 1)[-1]}") from None


# ---------------------------------------------------------------------------------------------------
# programs

def _matmul_program(cfg, kernel: str, a_format: str, ratio, threshold, requant, hbm: bool, A, B, stage):
    """One engine's program for C = A @ B: operands in L1 when they fit, else (or with ``hbm``) tiled through
    HBM; returns (program, a line saying where the operands are)."""
    from hwgen.compiler.single_kernel import L1FullError, compile_matmul
    from hwgen.compiler.tiling import compile_matmul_hbm
    stage("compiling the program")
    why = "--hbm"
    if not hbm:
        try:
            return compile_matmul(cfg, A, B, kernel, a_format, threshold, nm=ratio, requant=requant), "in L1"
        except L1FullError:
            why = f"they do not fit the {cfg.l1.bytes}-byte L1"
    if requant is not None:
        raise BadInput(f"--requant: not available for operands tiled through HBM ({why})")
    program = compile_matmul_hbm(cfg, A, B, kernel, a_format, threshold, nm=ratio)
    p = program.params
    return program, (f"in HBM, tiled ({why}): {p['tiles']} row tiles of {p['tile_rows']} rows"
                     + (f", {p['panels']} column panels of {p['panel_cols']}" if p["panels"] > 1 else "")
                     + (f", K in {p['k_chunks']} chunks of {p['chunk_k']}" if p.get("k_chunks", 1) > 1 else ""))


def _generate_operands(m, k, n, density, seed, a_format, ratio, power_law):
    from golden.generators.operands import power_law_rows, prune_nm, random_operands
    A, B = (power_law_rows if power_law else random_operands)(m, k, n, density, seed)
    return (prune_nm(A, *ratio) if a_format == "nm" else A), B


def _save(folder: Path, record: dict, arrays: dict[str, np.ndarray], single: bool) -> None:
    """result.json plus the outputs (c.npy for one output, outputs.npz for a DAG's), each written whole under
    a temporary name first; the other kind's file from an earlier run in this folder is removed."""
    def replace(name: str, write) -> None:
        tmp = folder / f".{name}.tmp"
        with open(tmp, "wb") as fh:
            write(fh)
        os.replace(tmp, folder / name)

    if single:
        (output,) = arrays.values()
        replace("c.npy", lambda fh: np.save(fh, output))
        (folder / "outputs.npz").unlink(missing_ok=True)
    else:
        replace("outputs.npz", lambda fh: np.savez(fh, **arrays))
        (folder / "c.npy").unlink(missing_ok=True)
    replace("result.json", lambda fh: fh.write((json.dumps(record, indent=2, default=str) + "\n").encode()))


def _output_dtype(cfg, int8: bool):
    """int8 for requantized outputs, else the narrowest integer type that holds an accumulator."""
    return np.int8 if int8 else np.int32 if cfg.engine.acc_bits <= 32 else np.int64


# ---------------------------------------------------------------------------------------------------
# commands

@app.command()
def generate(config: str = typer.Option("default", "--config", help=CONFIG_HELP),
             out_dir: str = typer.Option("rtl_out", "--out",
                                          help="folder; the build goes to OUT/<name>-<digest>/")):
    """Write the Verilog of CONFIG and its sidecars (config.json, component.json, csr_map.*, README.md) and the
    integration files (a FuseSoC .core, files.f, a C header of the CSRs)."""
    cfg = _load_config(config)
    target = _writable_folder(out_dir, "--out")
    from hwgen.rtl.build import generate as gen
    with Stages().shown() as stage:
        folder = gen(cfg, target, stage)
    out.print(f"wrote {folder}/", markup=False)


@app.command()
def presets():
    """List the presets (for their every field: dsa config NAME)."""
    table = Table(title="presets (hwgen/spec/presets)")
    for col in ("name", "engines", "rows x lanes", "L1", "L3", "HBM ports", "clock", "digest"):
        table.add_column(col)
    for name in hwconfig.preset_names():
        c = hwconfig.load(name)
        table.add_row(name, str(c.scheduler.engines), f"{c.engine.rows} x {c.engine.lanes}",
                      f"{c.l1.bytes // 1024} KiB", f"{c.l3.bytes // 1024} KiB" if c.l3.enabled else "off",
                      str(c.memory.ports),
                      f"{c.clock.mhz:g} MHz", c.digest())
    out.print(table)


@app.command(name="config")
def show_config(config: str = typer.Argument(..., help=CONFIG_HELP)):
    """Print a preset or a config file resolved: every field, as YAML, with its digest."""
    cfg = _load_config(config)
    out.print(f"# {cfg.build_name}\n{cfg.to_yaml()}", markup=False, end="")


@app.command()
def run(config: str = typer.Option("default", "--config", help=CONFIG_HELP),
        kernel: Kernel = typer.Option(Kernel.spmm, "--kernel"),
        backend: Backend = typer.Option(Backend.sim, "--backend"),
        out_dir: str = typer.Option(..., "--out", help="folder for result.json and the outputs"),
        a: Path | None = typer.Option(None, "--a", help="A as an int8 .npy (M x K); topk_attention: Q (T x d)"),
        b: Path | None = typer.Option(None, "--b", help="B as an int8 .npy (K x N); topk_attention: K (S x d)"),
        v: Path | None = typer.Option(None, "--v", help="topk_attention: V as an int8 .npy (S x dv)"),
        m: int = typer.Option(64, "--m", help="rows of A (topk_attention: queries T)"),
        k: int = typer.Option(256, "--k", help="columns of A (topk_attention: head dimension d)"),
        n: int = typer.Option(64, "--n", help="columns of B (topk_attention: keys S)"),
        density: float = typer.Option(0.1, "--density",
                                      help="fraction of nonzeros in generated A"),
        seed: int = typer.Option(0, "--seed", help="seed of the generated operands"),
        a_format: Format = typer.Option(Format.dense, "--format", help="how A is stored"),
        nm: str = typer.Option("2:4", "--nm", help="N:M ratio for --format nm (generated A is pruned to it)"),
        power_law: bool = typer.Option(False, "--power-law", help="generated A: power-law row lengths "
                                       "(mean --density), like a GNN adjacency"),
        threshold: int | None = typer.Option(None, "--threshold",
                                             help="|a| below this counts as zero (default: the config's "
                                                  "engine.threshold)"),
        requant: str | None = typer.Option(None, "--requant", help="MULT:SHIFT: C -> int8 on the engine's "
                                           "output, round((C*MULT) / 2^SHIFT) saturated"),
        topk: int = typer.Option(8, "--topk", help="topk_attention: keys kept per query"),
        causal: bool = typer.Option(False, "--causal", help="topk_attention: query i sees keys j <= i + S - T"),
        hbm: bool = typer.Option(False, "--hbm", help="operands in HBM, tiled, even when they fit L1 (they are "
                                 "tiled through HBM anyway when they do not)"),
        device: str = typer.Option("cpu", "--device", help="golden backend: cpu, cuda or auto"),
        workload: Path | None = typer.Option(None, "--workload", help="a workload YAML (e.g. workloads/*.yaml): "
                                             "a DAG of kernels run by the chip's scheduler on its engines; the "
                                             "kernel and operand options are then not used"),
        policy: Policy | None = typer.Option(None, "--policy", help="--workload: the scheduling policy "
                                             "(default: the config's scheduler.policy)"),
        build_root: str | None = typer.Option(None, "--build-root", help=BUILD_ROOT_HELP)):
    """Run one kernel, or with --workload a DAG of kernels, on one backend; write OUT/result.json and the
    outputs (OUT/c.npy; --workload: OUT/outputs.npz, one array per output tensor). Outputs are int8 when
    requantized, else int32 (int64 for accumulators wider than 32 bits). Operands that do not fit one engine's
    L1 are tiled through HBM."""
    _check_ranges(m=(m, 1, DIM), k=(k, 1, DIM), n=(n, 1, DIM), density=(density, 0.0, 1.0), seed=(seed, 0, SEED_MAX),
                  threshold=(threshold, 0, THRESHOLD_MAX), topk=(topk, 1, DIM))
    if policy is not None and workload is None:
        raise BadInput("--policy: only with --workload (a single kernel runs on one engine, not the scheduler)")
    cfg = _load_config(config, policy)
    if backend == Backend.golden:
        _check_device(device)
    if workload is not None:
        return _run_workload(cfg, workload, backend.value, out_dir, device, build_root)
    ratio, rq = _nm(nm), _parse_requant(requant)
    if (a is None) != (b is None):
        raise BadInput("--a and --b go together (or give neither and use --m/--k/--n/--density/--seed)")
    if kernel == Kernel.topk_attention:
        if a is not None and v is None:
            raise BadInput("--v: needed with --a/--b for topk_attention")
        shapes = [_check_npy(p, opt) for p, opt in ((a, "--a"), (b, "--b"), (v, "--v"))] if a is not None \
            else [(m, k), (n, k), (n, k)]
        _check_host_memory(shapes[0][0], shapes[0][1], shapes[1][0], "topk_attention Q x K")
    elif a is not None:
        (m, k), (kb, n) = _check_npy(a, "--a"), _check_npy(b, "--b")
        if kb != k:
            raise BadInput(f"--b: {kb} rows is not allowed (allowed: {k}, the columns of A)")
        _check_host_memory(m, k, n, "--a/--b")
    else:
        _check_host_memory(m, k, n, "--m/--k/--n")
    root = _writable_folder(_root_of(build_root), "--build-root") if backend == Backend.rtl else None
    folder = _writable_folder(out_dir, "--out")

    with Stages().shown() as stage:
        stage("preparing the operands")
        if kernel == Kernel.topk_attention:
            program, origin = _attention_program(cfg, a, b, v, m, k, n, seed, topk, causal)
            where = "in L1"
        else:
            if a is not None:
                A, B = np.load(a, allow_pickle=False), np.load(b, allow_pickle=False)
                origin = {"a": str(a), "b": str(b)}
            else:
                A, B = _generate_operands(m, k, n, density, seed, a_format.value, ratio, power_law)
                origin = {"density": density, "seed": seed, "power_law": power_law}
            program, where = _matmul_program(cfg, kernel.value, a_format.value, ratio, threshold, rq, hbm, A, B, stage)
        (result,) = run_programs(backend.value, cfg, [program], device=device, build_root=root, stage=stage,
                                 progress=stage.progress)
    cycles = result.cycles
    (name, output), = result.outputs.items()
    record = {"kernel": kernel.value, "backend": backend.value, "config": cfg.name, "config_digest": cfg.digest(),
              "output": name, "shape": list(output.shape), **origin, "operands": where, "cycles": cycles,
              "task_cycles": result.stats.get("task_cycles"),
              "time_us": cycles / cfg.clock.mhz if cycles else None, "wall_s": result.stats.get("wall_s"),
              "build_s": result.stats.get("build_s")}
    if kernel != Kernel.topk_attention:
        work = program.work()
        f = next(f for f in program.fields if isa.unit_of(f["opcode"]) == isa.Unit.COMPUTE)
        record.update({"format": a_format.value, **({"nm": nm} if a_format == Format.nm else {}),
                       "m": A.shape[0], "k": A.shape[1], "n": B.shape[1], "threshold": f["threshold"],
                       "requant": requant, **work,
                       "utilization": work["useful_macs"] / (cycles * cfg.macs_per_cycle) if cycles else None,
                       "skipped_macs": work["dense_macs"] - work["useful_macs"],
                       "gated_macs": result.stats.get("gated_macs")})
    else:
        record.update({"topk": topk, "causal": causal})
    record["stats"] = result.stats
    _save(folder, record, {name: output.astype(_output_dtype(cfg, rq is not None))}, single=True)
    util = f"{record['utilization']:.3f}" if record.get("utilization") else "-"
    out.print(f"{backend.value}: {kernel.value} {name} {'x'.join(map(str, output.shape))} operands {where}: "
              f"cycles={cycles} utilization={util} -> {folder}/", markup=False)


def _load_workload(path: Path):
    from hwgen.spec.workload import load
    return load(path)


def _run_workload(cfg, path: Path, backend: str, out_dir: str, device: str, build_root: str | None):
    from hwgen.compiler.dag import compile_workload
    w = _load_workload(path)
    root = _writable_folder(_root_of(build_root), "--build-root") if backend == "rtl" else None
    folder = _writable_folder(out_dir, "--out")
    with Stages().shown() as stage:
        stage(f"compiling {w.name} for {cfg.scheduler.engines} engines")
        program = compile_workload(cfg, w)
        (result,) = run_programs(backend, cfg, [program], device=device, build_root=root, stage=stage)
    stats, kinds = result.stats, w.shapes()
    record = {"workload": str(path), "backend": backend, "config": cfg.name, "config_digest": cfg.digest(),
              "policy": cfg.scheduler.policy, "engines": cfg.scheduler.engines, "tasks": len(program.tasks),
              "cycles": result.cycles, "time_us": result.cycles / cfg.clock.mhz if result.cycles else None,
              "wall_s": stats.get("wall_s"), "build_s": stats.get("build_s"),
              "issued": stats.get("issued"), "skipped": stats.get("skipped"),
              "outputs": {k: list(v.shape) for k, v in result.outputs.items()}, "stats": stats}
    arrays = {k: v.astype(_output_dtype(cfg, kinds[k][1] == "int8")) for k, v in result.outputs.items()}
    _save(folder, record, arrays, single=False)
    out.print(f"{backend}: {w.name} ({len(program.tasks)} tasks on {cfg.scheduler.engines} engines, "
              f"{cfg.scheduler.policy}) cycles={result.cycles} issued={stats.get('issued')} "
              f"skipped={stats.get('skipped')} -> {folder}/", markup=False)


def _attention_program(cfg, q_path, k_path, v_path, t, d, s, seed, topk, causal):
    from hwgen.compiler.single_kernel import compile_attention
    if q_path is not None:
        q, keys, values = (np.load(p, allow_pickle=False) for p in (q_path, k_path, v_path))
        origin = {"q": str(q_path), "k": str(k_path), "v": str(v_path)}
    else:
        rng = np.random.default_rng(seed)
        q, keys, values = (rng.integers(lo, hi, shape).astype(np.int8)
                           for lo, hi, shape in ((-24, 24, (t, d)), (-24, 24, (s, d)), (-128, 128, (s, d))))
        origin = {"seed": seed}
    return compile_attention(cfg, q, keys, values, topk, causal), origin


@app.command()
def verify(config: str = typer.Option("tiny", "--config", help=CONFIG_HELP),
           seeds: int = typer.Option(1, "--seeds", help="random seeds per case"),
           build_root: str | None = typer.Option(None, "--build-root", help=BUILD_ROOT_HELP)):
    """Run the standard case set (every kernel and format on one engine, then DAG programs on the whole chip)
    through golden, sim and RTL; exit 0 only if all agree bit for bit and sim cycles equal RTL cycles (DAG
    programs: within 3 %)."""
    from sim.verify import cross_check, dag_cases, standard_cases
    _check_ranges(seeds=(seeds, 1, 64))
    cfg = _load_config(config)
    root = _writable_folder(_root_of(build_root), "--build-root")
    with Stages().shown() as stage:
        stage(f"compiling the standard cases for {cfg.build_name}")
        cases = standard_cases(cfg, seeds) + [c for seed in range(seeds) for c in dag_cases(cfg, seed)]
        rows = cross_check(cfg, cases, build_root=root, stage=stage)
    table = Table(title=f"dsa verify --config {cfg.name} ({cfg.build_name})")
    for col in ("case", "outputs", "sim cycles", "rtl cycles", "cycles"):
        table.add_column(col, justify="left" if col == "case" else "right")
    for row in rows:
        table.add_row(row.label, _mark(row.outputs_equal), str(row.results["sim"].cycles),
                      str(row.results["rtl"].cycles), _mark(row.cycles_equal))
    out.print(table)
    bad = [r for r in rows if not r.ok]
    out.print(f"{len(rows) - len(bad)} passed, {len(bad)} failed")
    if bad:
        raise typer.Exit(1)


@app.command()
def compare(config: str = typer.Option("default", "--config", help=CONFIG_HELP),
            kernel: Kernel = typer.Option(Kernel.spmm, "--kernel"),
            a_format: Format = typer.Option(Format.dense, "--format"),
            nm: str = typer.Option("2:4", "--nm", help="N:M ratio for --format nm"),
            power_law: bool = typer.Option(False, "--power-law", help="power-law row lengths"),
            m: int = typer.Option(64, "--m"), k: int = typer.Option(256, "--k"),
            n: int = typer.Option(64, "--n"),
            density: float = typer.Option(0.1, "--density"),
            seed: int = typer.Option(0, "--seed"),
            hbm: bool = typer.Option(False, "--hbm", help="operands and C in HBM: tiled LOAD/compute/STORE tasks "
                                     "(the RTL's AXI port answered by the HBM timing model), even when they fit "
                                     "L1 (they are tiled anyway when they do not)"),
            workload: Path | None = typer.Option(None, "--workload", help="a workload YAML: a DAG of kernels on "
                                                 "the whole chip (the kernel and operand options are not used)"),
            build_root: str | None = typer.Option(None, "--build-root", help=BUILD_ROOT_HELP)):
    """Run one generated workload (or with --workload a DAG) through golden, sim and RTL, side by side."""
    from sim.verify import Case, cross_check
    _check_ranges(m=(m, 1, DIM), k=(k, 1, DIM), n=(n, 1, DIM), density=(density, 0.0, 1.0), seed=(seed, 0, SEED_MAX))
    cfg = _load_config(config)
    if workload is not None:
        return _compare_workload(cfg, workload, build_root)
    if kernel == Kernel.topk_attention:
        raise BadInput("--kernel: topk_attention is not allowed here (allowed: spmm, gemm, gnn_aggregate; "
                       "dsa run --kernel topk_attention runs it)")
    ratio = _nm(nm)
    _check_host_memory(m, k, n, "--m/--k/--n")
    root = _writable_folder(_root_of(build_root), "--build-root")
    with Stages().shown() as stage:
        stage("generating the operands")
        A, B = _generate_operands(m, k, n, density, seed, a_format.value, ratio, power_law)
        program, where = _matmul_program(cfg, kernel.value, a_format.value, ratio, None, None, hbm, A, B, stage)
        (row,) = cross_check(cfg, [Case("workload", program)], build_root=root, stage=stage)
    work = program.work()
    table = Table(title=f"{kernel.value} {a_format.value} {m}x{k}x{n} density {density} on {cfg.build_name} "
                        f"({cfg.engine.rows}x{cfg.engine.lanes} MACs; operands {where})")
    for col in ("backend", "C == golden", "cycles", "utilization", "wall s"):
        table.add_column(col, justify="left" if col == "backend" else "right")
    ref = row.results["golden"].outputs["C"]
    for name, res in row.results.items():
        util = f"{work['useful_macs'] / (res.cycles * cfg.macs_per_cycle):.3f}" if res.cycles else "-"
        table.add_row(name, _mark(np.array_equal(res.outputs["C"], ref)), str(res.cycles or "-"), util,
                      f"{res.stats['wall_s']:.4f}")
    out.print(table)
    out.print(f"useful MACs {work['useful_macs']} of {work['dense_macs']} dense; "
              f"sim cycles {'==' if row.cycles_equal else '!='} RTL cycles")
    if not row.ok:
        raise typer.Exit(1)


def _compare_workload(cfg, path: Path, build_root: str | None) -> None:
    from hwgen.compiler.dag import compile_workload
    from sim.verify import DAG_CYCLE_TOLERANCE, Case, cross_check
    w = _load_workload(path)
    root = _writable_folder(_root_of(build_root), "--build-root")
    with Stages().shown() as stage:
        stage(f"compiling {w.name} for {cfg.scheduler.engines} engines")
        program = compile_workload(cfg, w)
        (row,) = cross_check(cfg, [Case(str(path), program)], build_root=root, stage=stage)
    s = cfg.scheduler
    table = Table(title=f"{w.name}: {len(program.tasks)} tasks on {cfg.build_name} ({s.engines} engines, {s.policy})")
    for col in ("backend", "outputs == golden", "cycles", "issued", "skipped", "wall s"):
        table.add_column(col, justify="left" if col == "backend" else "right")
    ref = row.results["golden"].outputs
    for name, res in row.results.items():
        same = all(np.array_equal(res.outputs[k], ref[k]) for k in ref)
        skipped = res.stats.get("skipped")
        table.add_row(name, _mark(same), str(res.cycles or "-"), str(res.stats.get("issued", "-")),
                      str(sum(len(v) for v in skipped.values()) if isinstance(skipped, dict) else skipped),
                      f"{res.stats['wall_s']:.3f}")
    out.print(table)
    sim, rtl = row.results["sim"].cycles, row.results["rtl"].cycles
    out.print(f"sim cycles {sim} vs RTL {rtl}: {(sim - rtl) / rtl:+.2%} (allowed: within {DAG_CYCLE_TOLERANCE:.0%})",
              markup=False)
    if not row.ok:
        raise typer.Exit(1)


SweepBackend = Enum("SweepBackend", {b: b for b in ("local", "ray")}, type=str)


@app.command()
def sweep(sweep_file: Path = typer.Argument(..., help="a sweep YAML file (see sweeps/ and docs/sweeps.md)"),
          out_dir: str | None = typer.Option(None, "--out", help="results folder (default: results/sweeps/<name>); "
                                             "a folder of the same sweep is resumed"),
          jobs: int | None = typer.Option(None, "--jobs", min=1, max=1024, help="points run at once (default: every "
                                          "core here, every CPU of a Ray cluster)"),
          backend: SweepBackend = typer.Option(SweepBackend.local, "--backend", help="local: a process pool here; "
                                               "ray: tasks on a Ray cluster (--address)"),
          address: str | None = typer.Option(None, "--address", help="Ray head HOST:PORT (default: auto, a cluster "
                                             "started with `ray start`)"),
          verify_top: int = typer.Option(0, "--verify-top", min=0, max=64, help="then run the K best Pareto points "
                                         "on Verilator and report their cycle difference (OUT/verify.json)"),
          build_root: str | None = typer.Option(None, "--build-root", help=BUILD_ROOT_HELP)):
    """Run a design-space sweep on the cycle model and find its Pareto set: each point stored as it finishes (an
    Optuna journal; a killed sweep started again loses nothing), then points.csv and points.parquet, the Pareto
    points' configs (configs/) and the report (report.html, plots/) in the results folder."""
    from sim.sweep import runner
    from sim.sweep.display import SweepProgress, pareto_table
    from sim.sweep.spec import load as load_sweep
    if address is not None and backend != SweepBackend.ray:
        raise BadInput(f"--address: {address!r} is not allowed with --backend {backend.value} (allowed: with "
                       "--backend ray)")
    plan = load_sweep(sweep_file)
    folder = _writable_folder(out_dir or Path("results") / "sweeps" / plan.name, "--out")
    root = _writable_folder(_root_of(build_root), "--build-root") if verify_top else None
    show = SweepProgress(err, plan.name)
    with show.shown():
        summary = runner.run(plan, folder, jobs=jobs, backend=backend.value, address=address, progress=show)
    c = summary.counts
    out.print(f"{plan.name}: {summary.total} points ({summary.skipped} finished before), ran {sum(c.values())}: "
              f"{c['ok']} ok, {c['invalid']} invalid, {c['error']} errors; {show.points_per_hour:,.0f} points/h "
              f"-> {folder}/", markup=False)
    if any(r.get("pareto") for r in summary.rows):
        out.print(pareto_table(summary.rows, plan.objectives))
    verified = _verify_sweep(plan, folder, verify_top, root) if verify_top else True
    from sim.sweep import report as sweep_report
    with Stages().shown() as stage:
        stage("writing the report")
        files = sweep_report.write(folder)
    out.print(f"report: {files['html']} ({len(files) - 2} plots)", markup=False)
    if summary.errors:
        log = folder / "errors.log"
        log.write_text("".join(f"point {r['point']}: {r['error']}\n{r.get('traceback', '')}\n"
                               for r in summary.errors))
        error_lines([f"{len(summary.errors)} point(s) failed inside the model (tracebacks in {log}; the other "
                     "points are stored)"])
        raise typer.Exit(3)
    if not verified:
        error_lines([f"RTL outputs differ from the golden model's (see {folder / 'verify.json'})"])
        raise typer.Exit(1)


def _verify_sweep(plan, folder: Path, k: int, root: Path) -> bool:
    """``--verify-top``: the table of the RTL runs; False if an RTL output differs from golden."""
    from sim.sweep.verify_top import verify_top
    with Stages().shown() as stage:
        checked = verify_top(plan, folder, k, root, stage)
    if not checked:
        err.print(f"warning: --verify-top {k}: the sweep has no feasible Pareto point, nothing to run on Verilator",
                  markup=False, soft_wrap=True)
        return True
    points = len({v["trial"] for v in checked})
    table = Table(title=f"the {points} best Pareto point(s) on Verilator (of --verify-top {k})")
    for col in ("trial", "config", "workload", "sim cycles", "RTL cycles", "difference", "outputs"):
        table.add_column(col)
    for v in checked:
        table.add_row(str(v["trial"]), v["config_digest"], v["workload"], str(v["sim_cycles"]), str(v["rtl_cycles"]),
                      f"{v['difference']:+.2%}", _mark(v["outputs_equal"]))
    out.print(table)
    return all(v["outputs_equal"] for v in checked)


@app.command()
def report(sweep_dir: Path = typer.Argument(..., help="a sweep's results folder (dsa sweep --out)"),
           axis: str | None = typer.Option(None, "--axis", help="the axis to plot speedup and energy against "
                                           "(default: the sweep's first)")):
    """Write a sweep's report again (SWEEP_DIR/report.md, report.html): the Pareto set with its config files, the
    Verilator check of its best points, and plots (Pareto fronts, hypervolume, speedup and energy against an axis,
    rooflines)."""
    from sim.sweep import report as sweep_report
    from sim.sweep.store import JOURNAL, META
    if not (sweep_dir / META).is_file() or not (sweep_dir / JOURNAL).is_file():
        raise BadInput(f"SWEEP_DIR: {str(sweep_dir)!r} is not a sweep's results folder (allowed: a folder dsa sweep "
                       f"wrote, holding {META} and {JOURNAL})")
    axes = json.loads((sweep_dir / META).read_text()).get("axes", [])
    if axis is not None and axis not in axes:
        raise BadInput(f"--axis: {axis!r} is not an axis of this sweep (allowed: {', '.join(axes)})")
    with Stages().shown() as stage:
        stage(f"plotting {sweep_dir}")
        files = sweep_report.write(sweep_dir, axis)
    out.print(f"wrote {files['html']} and {files['md']} ({len(files) - 2} plots in {sweep_dir / 'plots'})",
              markup=False)


@app.command()
def lint(config: str = typer.Option("tiny", "--config", help=CONFIG_HELP),
         build_root: str | None = typer.Option(None, "--build-root", help=BUILD_ROOT_HELP)):
    """verilator --lint-only -Wall on the generated Verilog (the chip and the engine-level top), with only the
    waivers in sim/rtl/tb/waivers.vlt."""
    from hwgen.rtl.build import TOPS
    from sim.rtl.runner import lint as run_lint
    cfg = _load_config(config)
    root = _writable_folder(_root_of(build_root), "--build-root")
    for top in TOPS:
        with Stages().shown() as stage:
            stage(f"verilator --lint-only -Wall on the {top} top of {cfg.build_name}")
            ok, output = run_lint(cfg, root, top, stage=stage)
        if not ok:
            err.print(output, markup=False, highlight=False)
            raise typer.Exit(1)
        out.print(f"lint clean: {cfg.build_name} ({top})", markup=False)


fpga_app = typer.Typer(no_args_is_help=True, epilog=EXIT_HELP,
                       help="FPGA flows: synthesis and resources, each component's FMAX, board builds, HBM-board "
                            "export (Yosys and nextpnr from PyPI).")
app.add_typer(fpga_app, name="fpga")
Family = Enum("Family", {f: f for f in ("ecp5", "ice40", "xilinx")}, type=str)
Top = Enum("Top", {t: t for t in ("chip", "engine")}, type=str)


@fpga_app.command()
def synth(config: str = typer.Option("tiny", "--config", help=CONFIG_HELP),
          family: Family | None = typer.Option(None, "--family", help="Yosys synth_<family> to run (default: the "
                                                                      "family of the config's board, else ecp5)"),
          top: Top = typer.Option(Top.chip, "--top", help="chip: the whole chip; engine: one engine and its memory "
                                                          "side"),
          out_dir: str = typer.Option("build/fpga", "--out", help="folder; the build goes to OUT/<name>-<digest>/"),
          depth: int = typer.Option(2, "--depth", help="levels of the instance tree to print (0..8)")):
    """Synthesize the Verilog of CONFIG and print LUT / FF / DSP / RAM per component and in all, against the
    part of the config's board; writes resources_<family>_<top>.json beside the Verilog."""
    from sim.fpga.parts import BOARDS, PARTS
    cfg = _load_config(config)
    _check_ranges(depth=(depth, 0, 8))
    target = _writable_folder(out_dir, "--out")
    part = BOARDS.get(cfg.board.target)
    fam = family.value if family is not None else part.family if part is not None else "ecp5"
    if part is None or part.family != fam:
        part = next((p for p in PARTS.values() if p.family == fam), None)
    from hwgen.rtl.block_ram import FpgaTarget
    from hwgen.rtl.build import generate, top_name, verilog_sources
    from sim.fpga.yosys import synthesize
    with Stages().shown() as stage:
        folder = generate(cfg, target, stage, platform=FpgaTarget(fam))   # as a board build elaborates it
        stage(f"Yosys synth_{fam} of the {top.value} top of {cfg.build_name}")
        result = synthesize(folder, verilog_sources(cfg, top.value), top_name(cfg, top.value), fam,
                            detail=stage.detail)
    record = {**result.to_json(), "config": cfg.name, "config_digest": cfg.digest(),
              "part": part.name if part else None, "available": part.available() if part else None}
    report = folder / f"resources_{fam}_{top.value}.json"
    report.write_text(json.dumps(record, indent=2) + "\n")
    out.print(_resource_table(result, part, depth))
    out.print(f"{result.tool}, {result.seconds:.0f} s; wrote {report}", markup=False)


@fpga_app.command()
def timing(config: str = typer.Option("ulx3s", "--config", help=CONFIG_HELP),
           component: str = typer.Option("all", "--component", help="comma-separated component names, or all"),
           seeds: str = typer.Option("1,2,3", "--seeds", help="nextpnr seeds, comma-separated; FMAX is their median"),
           jobs: int | None = typer.Option(None, "--jobs", help="seeds placed and routed at once (default: one per "
                                                                  "core)"),
           out_dir: str = typer.Option("build/fpga", "--out", help="folder; the runs go to OUT/<name>-<digest>-"
                                                                   "timing/"),
           json_out: Path | None = typer.Option(None, "--json", help="also write the records here")):
    """Each component of CONFIG alone on the ECP5-85F (Yosys, then nextpnr out of context once per seed, aiming at
    the config's clock): the median FMAX and a worst path per component, to find what limits the chip's clock.
    Writes timing.json."""
    from sim.fpga.component_timing import time_component
    cfg = _load_config(config)
    names = _component_names(component)
    seed_list = _seeds(seeds)
    _check_ranges(jobs=(jobs, 1, 64))
    folder = _timing_folder(cfg, out_dir, json_out)
    table = Table(title=f"{cfg.build_name}: each component alone on the LFE5U-85F, target {cfg.clock.mhz:g} MHz, "
                        f"seeds {seeds}")
    for col in ("component", "FMAX (median)", "per seed", "LUT", "FF", "DSP", "RAM", "worst path"):
        table.add_column(col, justify="left" if col in ("component", "worst path") else "right")
    records = []
    with Stages().shown() as stage:
        for n, name in enumerate(names, 1):
            stage(f"[{n}/{len(names)}] {name}: Yosys, then nextpnr out of context")
            records.append(time_component(cfg, name, folder / name, seeds=tuple(seed_list), jobs=jobs,
                                          detail=stage.detail))
    for r in records:
        met = r["fmax_mhz"] >= r["target_mhz"]
        path = f"{r['critical_path']['from']} -> {r['critical_path']['to']}"
        table.add_row(r["component"], f"[{'green' if met else 'red'}]{r['fmax_mhz']:.1f} MHz[/]",
                      " ".join(f"{f:.0f}" for f in r["fmax_per_seed"]),
                      *(f"{r['resources'][k]:g}" for k in ("lut", "ff", "dsp", "ram")), path[:60])
    out.print(table)
    text = json.dumps(records, indent=2) + "\n"
    (folder / "timing.json").write_text(text)
    if json_out is not None:
        json_out.write_text(text)
    out.print(f"wrote {folder / 'timing.json'}", markup=False)


@fpga_app.command()
def paths(config: str = typer.Option("ulx3s", "--config", help=CONFIG_HELP),
          component: str | None = typer.Option(None, "--component", help="comma-separated component names, or "
                                                                           "all"),
          netlist: Path | None = typer.Option(None, "--netlist", help="instead of --component: a mapped netlist "
                                              "that fpga build left (OUT/<name>-<board>/netlist_ecp5_board_top.json)"
                                              ", flattened, so paths across components show"),
          top: int = typer.Option(15, "--top", help="slowest registers listed per module"),
          out_dir: str = typer.Option("build/fpga", "--out", help="folder; the runs go to OUT/<name>-<digest>-"
                                                                  "timing/"),
          json_out: Path | None = typer.Option(None, "--json", help="also write the estimates here")):
    """Every slow path of each component of CONFIG at once, estimated from its ECP5 netlist without place and
    route (seconds after Yosys, where nextpnr takes minutes to name one): per module, how many register inputs
    arrive after 8 and 10 ns and the latest ones with the cells they pass (F flip-flop, L LUT4, m/M wide mux,
    c carry cell, R block RAM, X multiplier). Writes paths.json (with --netlist: beside the netlist)."""
    from sim.fpga.component_timing import synthesize_component
    from sim.fpga.paths import estimate
    from sim.fpga.yosys import flatten
    _check_ranges(top=(top, 1, 1000))
    if (component is None) == (netlist is None):
        raise BadInput("--component / --netlist: give exactly one (allowed: --component NAMES, or --netlist FILE)")
    records = {}
    if netlist is not None:
        if not netlist.is_file():
            raise BadInput(f"--netlist: {netlist} is not allowed (allowed: a JSON netlist that fpga build or fpga "
                           "synth wrote, netlist_ecp5_<top>.json)")
        _writable_folder(netlist.parent, "--netlist")
        if json_out is not None:
            _writable_folder(json_out.parent if str(json_out.parent) else Path("."), "--json")
        folder, title = netlist.parent, netlist.parent.name
        with Stages().shown() as stage:
            stage(f"Yosys: flattening {netlist.name}")
            records[f"{netlist.stem} (flattened)"] = estimate(flatten(netlist), top=top)
    else:
        cfg = _load_config(config)
        names = _component_names(component)
        folder, title = _timing_folder(cfg, out_dir, json_out), cfg.build_name
        with Stages().shown() as stage:
            for n, name in enumerate(names, 1):
                stage(f"[{n}/{len(names)}] {name}: Yosys synth_ecp5")
                synthesis = synthesize_component(cfg, name, folder / name, detail=stage.detail)
                records[name] = estimate(folder / name / synthesis.netlist, top=top)
    for name, modules in records.items():
        table = Table(title=f"{name} of {title}: estimated register-to-register paths (no place and route)")
        for col in ("module", "endpoints", "> 8 ns", "> 10 ns", "ns", "cells", "register <- from"):
            table.add_column(col, justify="right" if col in ("endpoints", "> 8 ns", "> 10 ns", "ns") else "left")
        for mp in modules:
            for k, p in enumerate(mp.worst or [None]):
                head = (mp.module, str(mp.endpoints), str(mp.over[8.0]), str(mp.over[10.0])) if k == 0 else ("",) * 4
                tail = (f"{p.ns:.1f}", p.cells[-24:], f"{p.end} <- {p.start}"[:80]) if p else ("", "", "")
                table.add_row(*head, *tail)
            table.add_section()
        out.print(table)
    text = json.dumps({name: [mp.to_json() for mp in modules] for name, modules in records.items()}, indent=2) + "\n"
    (folder / "paths.json").write_text(text)
    if json_out is not None:
        json_out.write_text(text)
    out.print(f"wrote {folder / 'paths.json'}", markup=False)


def _timing_folder(cfg, out_dir: str, json_out: Path | None) -> Path:
    """``fpga timing`` / ``fpga paths``: OUT/<name>-<digest>-timing, both folders checked writable before any work."""
    target = _writable_folder(out_dir, "--out")
    if json_out is not None:
        _writable_folder(json_out.parent if str(json_out.parent) else Path("."), "--json")
    return target / f"{cfg.build_name}-timing"


def _component_names(text: str) -> list[str]:
    """``--component``: all, or comma-separated names of the components ``fpga timing`` / ``fpga paths`` know."""
    from sim.fpga.component_timing import COMPONENTS
    names = list(COMPONENTS) if text == "all" else [c.strip() for c in text.split(",") if c.strip()]
    bad = [c for c in names if c not in COMPONENTS] or ([] if names else [text])
    if bad:
        raise BadInput(f"--component: {bad[0]!r} is not allowed (allowed: all, or comma-separated names of "
                       f"{', '.join(COMPONENTS)})")
    return names


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        seeds = []
    if not seeds or any(not 1 <= s <= 2**31 - 1 for s in seeds) or len(set(seeds)) != len(seeds):
        raise BadInput(f"--seeds: {text!r} is not allowed (allowed: distinct integers 1..2147483647, comma-separated, "
                       "e.g. 1,2,3)")
    return seeds


@fpga_app.command()
def build(board: str = typer.Option(..., "--board", help="ulx3s"),
          config: str | None = typer.Option(None, "--config", help=CONFIG_HELP + " (default: the board's preset)"),
          seeds: str = typer.Option("1,2,3", "--seeds", help="nextpnr seeds, comma-separated; FMAX is reported per "
                                                              "seed and as their median"),
          out_dir: str = typer.Option("build/fpga", "--out", help="folder; the build goes to OUT/<name>-<digest>-"
                                                                  "<board>/"),
          json_out: Path | None = typer.Option(None, "--json", help="also write the record here"),
          mhz: float | None = typer.Option(None, "--mhz", help="the chip's clock (the PLL's output), instead of the "
                                                              "config's clock.mhz: a clock the routed design meets "
                                                              "gives a bitstream that works on the board"),
          jobs: int | None = typer.Option(None, "--jobs", help="seeds placed and routed at once (default: one per "
                                                                 "core)"),
          timeout: float = typer.Option(SEED_TIMEOUT_S / 60, "--timeout",
                                        help="minutes one seed may take to place and route; one that does not finish "
                                             "is recorded as not routed (0 MHz in the median), naming the most "
                                             "congested modules")):
    """Synthesize, place and route CONFIG on BOARD and pack its bitstream: prints FMAX per seed, resources against
    the part and the worst path; writes build.json beside the bitstream."""
    from sim.fpga.board import BOARD_CLOCK_MARGIN, BUILDABLE, bitstream_timing, seed_line, with_clock
    from sim.fpga.board import build as board_build
    if board not in BUILDABLE:
        raise BadInput(f"--board: {board!r} is not allowed (allowed: {', '.join(BUILDABLE)})")
    cfg = _load_config(config or board)
    if cfg.board.target != board:
        raise BadInput(f"--config: {cfg.name} is sized for board.target {cfg.board.target!r}, not {board!r} (allowed: "
                       f"a config with board.target: {board}, e.g. the {board} preset)")
    try:
        cfg = with_clock(cfg, mhz)
    except ValueError as e:           # a ConfigError (clock.mhz out of its range) or one the PLL cannot make
        lines = e.problems if isinstance(e, hwconfig.ConfigError) else [str(e)]
        raise BadInput(*(f"--mhz: {line}" if mhz is not None else line for line in lines)) from None
    seed_list = _seeds(seeds)
    _check_ranges(jobs=(jobs, 1, 64), timeout=(timeout, 1, 24 * 60))
    target = _writable_folder(out_dir, "--out")
    if json_out is not None:
        _writable_folder(json_out.parent if str(json_out.parent) else Path("."), "--json")
    with Stages().shown() as stage:
        record = board_build(cfg, target, seed_list, jobs=jobs, timeout=60 * timeout, stage=stage,
                             detail=stage.detail)
    text = json.dumps(record, indent=2) + "\n"
    (Path(record["bitstream"]).parent / "build.json").write_text(text)
    if json_out is not None:
        json_out.write_text(text)
    table = Table(title=f"{cfg.build_name} on {board} ({record['part']}), target {cfg.clock.mhz:g} MHz")
    for col in ("seed", f"FMAX {record['chip_clock']} MHz", "worst path", "seconds"):
        table.add_column(col)
    for run in record["seeds"]:
        fmax, path = seed_line(run, record["chip_clock"], 200)
        table.add_row(str(run["seed"]), fmax if run["routed"] else f"[red]{fmax}[/red]", escape(path),
                      f"{run['seconds']:.0f}" if run["routed"] else "-")
    out.print(table)
    used, available = record["synthesis"]["resources"], record["synthesis"]["available"]
    out.print("resources: " + ", ".join(
        f"{k.upper()} {used[k]:g}/{available[k]:,} ({100 * used[k] / available[k]:.0f} %)" for k in used), markup=False)
    met = record["fmax_mhz"]["met"]
    unrouted = [str(run["seed"]) for run in record["seeds"] if not run["routed"]]
    out.print(f"median FMAX {record['fmax_mhz']['median']:.1f} MHz"
              + (f" (seeds that did not route count as 0 MHz: {', '.join(unrouted)})" if unrouted else "")
              + f": target {'met' if met else 'NOT met'}; bitstream {record['bitstream']}", markup=False)
    fmax, pll = bitstream_timing(record)
    if fmax < pll:
        out.print(f"warning: the bitstream (seed {record['bitstream_seed']}) meets {fmax:.1f} MHz, below the {pll:g} "
                  f"MHz its PLL makes: it may fail on the board. For a board, build at a clock it meets: "
                  f"dsa fpga build --board {board} --mhz {int(fmax * BOARD_CLOCK_MARGIN)}", markup=False)


@fpga_app.command()
def export(board: str = typer.Option(..., "--board", help="u55c or u280"),
           config: str | None = typer.Option(None, "--config", help=CONFIG_HELP + " (default: the board's preset)"),
           out_dir: str = typer.Option("build/fpga", "--out", help="folder; the export goes to OUT/<name>-<digest>-"
                                                                   "<board>/"),
           synth: bool = typer.Option(False, "--synth", help="also estimate the resources with Yosys synth_xilinx")):
    """Write CONFIG as a Vitis RTL kernel for an HBM board: Verilog with Vivado-inferable AXI names, kernel.xml,
    the packaging Tcl, an example XDC, v++ connectivity, the CSR map and its C header."""
    from sim.fpga.export import HBM_CHANNELS
    from sim.fpga.export import export as run_export
    if board not in HBM_CHANNELS:
        raise BadInput(f"--board: {board!r} is not allowed (allowed: {', '.join(HBM_CHANNELS)})")
    cfg = _load_config(config or "u55c")
    if cfg.memory.ports > HBM_CHANNELS[board]:
        raise BadInput(f"memory.ports: {cfg.memory.ports} is not allowed on {board} (allowed: 1.."
                       f"{HBM_CHANNELS[board]}, its HBM pseudo-channels)")
    target = _writable_folder(out_dir, "--out")
    with Stages().shown() as stage:
        folder = run_export(cfg, target, board, synth=synth, stage=stage, detail=stage.detail)
    out.print(f"wrote {folder}/", markup=False)


def _resource_table(result, part, depth: int) -> Table:
    from sim.fpga.parts import KINDS
    table = Table(title=f"{result.top}: synth_{result.family}" + (f" for {part.name}" if part else ""))
    table.add_column("instance")
    for kind in KINDS:
        table.add_column(kind.upper(), justify="right")
    for path, inst in result.instances.items():
        level = path.count(".")
        if level <= depth:
            table.add_row("  " * level + path.rsplit(".", 1)[-1], *(f"{inst.total[k]:g}" for k in KINDS))
    if part is not None:
        total = result.total
        table.add_section()
        table.add_row(f"{part.name} has", *(f"{part.available()[k]:,}" for k in KINDS))
        table.add_row("used", *(_share(total[k], part.available()[k]) for k in KINDS))
    return table


def _share(used: float, available: int) -> str:
    share = used / available if available else 0.0
    colour = "green" if share <= 0.8 else "yellow" if share <= 1.0 else "red"
    return f"[{colour}]{100 * share:.0f} %[/{colour}]"


# ---------------------------------------------------------------------------------------------------
# a board build over its UART host link (hwgen/spec/host_link.py, sim/board/driver.py)

board_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, epilog=EXIT_HELP,
                        help="Talk to a board build (hwgen/rtl/board/) over its UART host link.")
app.add_typer(board_app, name="board")
PORT_HELP = "serial device (/dev/ttyUSB0, COM3) or pyserial URL (socket://HOST:PORT reaches a simulation)"
TIMEOUT_HELP = "seconds to wait for each answer of the board (run: also for the program to finish)"


def _open_board(port: str, timeout: float, baud: int):
    from sim.board.driver import Board
    if not port.strip():
        raise BadInput(f"--port: {port!r} is not allowed (allowed: {PORT_HELP})")
    try:
        return Board(port, timeout=timeout, baud=baud)
    except ValueError as e:
        raise BadInput(str(e)) from None


@board_app.command("ping")
def board_ping(port: str = typer.Option(..., "--port", help=PORT_HELP),
               baud: int = typer.Option(115200, "--baud", help="bit rate of a serial device (the board's "
                                        "board.uart_baud)"),
               timeout: float = typer.Option(2.0, "--timeout", help=TIMEOUT_HELP)):
    """Ask the board who it is: the host link's version, its memory and CSR space, the chip's version register."""
    _check_ranges(baud=(baud, 1200, 3_000_000), timeout=(timeout, 0.1, 86400))
    with _open_board(port, timeout, baud) as board:
        info = board.ping()
        (version,) = board.read_csr(0, 1)
    out.print(f"board on {port}: host link version {info['version']}, memory {info['memory_bytes']} bytes, "
              f"CSR space {info['csr_bytes']} bytes, chip version 0x{version:08x}", markup=False)


@board_app.command("run")
def board_run(port: str = typer.Option(..., "--port", help=PORT_HELP),
              workload: Path = typer.Option(..., "--workload", help="a workload YAML (e.g. workloads/*.yaml)"),
              config: str = typer.Option("default", "--config", help=CONFIG_HELP + ": the one the board was built "
                                         "from"),
              baud: int | None = typer.Option(None, "--baud", help="bit rate of a serial device (default: the "
                                              "config's board.uart_baud)"),
              timeout: float = typer.Option(60.0, "--timeout", help=TIMEOUT_HELP)):
    """Run a DAG workload on the board: load the program into the board memory, start the chip, wait for it, read
    every output and compare it with golden. Exit 0 if all are equal, 1 if not, 3 if the link or the board fails."""
    from golden.executor import run as golden_run
    from hwgen.compiler.dag import compile_workload
    from sim.board.driver import check_fits, run_program
    _check_ranges(baud=(baud, 1200, 3_000_000), timeout=(timeout, 0.1, 86400))
    cfg = _load_config(config)
    w = _load_workload(workload)
    with Stages().shown() as stage:
        stage(f"compiling {w.name} for {cfg.build_name}")
        program = compile_workload(cfg, w)
        try:
            check_fits(cfg, program)
        except ValueError as e:
            raise BadInput(f"--workload: {e}") from None
        stage("running golden")
        golden = golden_run(cfg.numeric(), program).outputs
        with _open_board(port, timeout, baud or cfg.board.uart_baud) as board:
            result = run_program(board, cfg, program, timeout=timeout, stage=stage)
    table = Table(title=f"{w.name} on the board at {port} ({cfg.build_name}, {len(program.tasks)} tasks, "
                        f"{result['cycles']} cycles)")
    for col in ("output", "shape", "board == golden"):
        table.add_column(col)
    same = {name: np.array_equal(result["outputs"][name], ref) for name, ref in golden.items()}
    for name, ref in golden.items():
        table.add_row(name, "x".join(map(str, ref.shape)), _mark(same[name]))
    out.print(table)
    if not all(same.values()):
        raise typer.Exit(1)


def _mark(ok: bool) -> str:
    return "[green]equal[/green]" if ok else "[red]DIFFER[/red]"


if __name__ == "__main__":
    raise SystemExit(main())
