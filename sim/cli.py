"""`dsa`: generate Verilog, run a kernel on one backend, cross-check all three.

Exit codes: 0 success; 1 a verification mismatch or lint finding; 2 bad input (config, tensors,
options); 3 a missing toolchain, or a build or simulation that failed (the message names its log).
"""
from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from hwgen.compiler.single_kernel import compile_matmul
from hwgen.spec import config as hwconfig
from hwgen.spec.formats import OperandError, parse_nm
from hwgen.spec.program import A_FORMATS, KERNELS
from sim.backends import BACKENDS, DEFAULT_BUILD_ROOT, run_programs
from sim.rtl.runner import RtlError, ToolchainError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Generator, cycle simulator and verifier of the DSA dynamic-sparsity engine.")
console = Console()
err = Console(stderr=True)

Kernel = Enum("Kernel", {k: k for k in (*KERNELS, "topk_attention")}, type=str)
Format = Enum("Format", {f: f for f in A_FORMATS}, type=str)
Backend = Enum("Backend", {b: b for b in BACKENDS}, type=str)
Policy = Enum("Policy", {p: p for p in ("in_order", "static_list", "adaptive")}, type=str)

CONFIG_HELP = f"preset name ({', '.join(hwconfig.preset_names())}) or a YAML file"


def _fail(code: int, lines: list[str]) -> None:
    for line in lines:
        err.print(f"[red]error:[/red] {line}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _load_config(name: str) -> hwconfig.HwConfig:
    try:
        return hwconfig.load(name)
    except hwconfig.ConfigError as e:
        _fail(2, e.problems)


@app.command()
def generate(config: str = typer.Option("default", "--config", help=CONFIG_HELP),
             out: Path = typer.Option(Path("rtl_out"), "--out", help="folder; the build goes to OUT/<name>-<digest>/")):
    """Write the Verilog of CONFIG and its sidecars (config.json, component.json, README.md)."""
    from hwgen.rtl.build import generate as gen
    cfg = _load_config(config)
    folder = gen(cfg, out)
    console.print(f"wrote {folder}/")


def _load_npy(path: Path, name: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        _fail(2, [f"--{name.lower()}: cannot read {str(path)!r} as a .npy array: {e}"])


@app.command()
def run(config: str = typer.Option("default", "--config", help=CONFIG_HELP),
        kernel: Kernel = typer.Option(Kernel.spmm, "--kernel"),
        backend: Backend = typer.Option(Backend.sim, "--backend"),
        out: Path = typer.Option(..., "--out", help="folder for result.json and c.npy"),
        a: Path | None = typer.Option(None, "--a", help="A as an int8 .npy (M x K); topk_attention: Q (T x d)"),
        b: Path | None = typer.Option(None, "--b", help="B as an int8 .npy (K x N); topk_attention: K (S x d)"),
        v: Path | None = typer.Option(None, "--v", help="topk_attention: V as an int8 .npy (S x dv)"),
        m: int = typer.Option(64, "--m", help="rows of A (topk_attention: queries T)"),
        k: int = typer.Option(256, "--k", help="columns of A (topk_attention: head dimension d)"),
        n: int = typer.Option(64, "--n", help="columns of B (topk_attention: keys S)"),
        density: float = typer.Option(0.1, "--density", help="fraction of nonzeros in generated A"),
        seed: int = typer.Option(0, "--seed"),
        a_format: Format = typer.Option(Format.dense, "--format", help="how A is stored in L1"),
        nm: str = typer.Option("2:4", "--nm", help="N:M ratio for --format nm (generated A is pruned to it)"),
        power_law: bool = typer.Option(False, "--power-law", help="generated A: power-law row lengths "
                                       "(mean --density), like a GNN adjacency"),
        threshold: int | None = typer.Option(None, "--threshold", help="|a| below this counts as zero "
                                             "(default: the config's engine.threshold)"),
        requant: str | None = typer.Option(None, "--requant", help="MULT:SHIFT: C -> int8 on the engine's "
                                           "output, round((C*MULT) / 2^SHIFT) saturated"),
        topk: int = typer.Option(8, "--topk", help="topk_attention: keys kept per query"),
        causal: bool = typer.Option(False, "--causal", help="topk_attention: query i sees keys j <= i + S - T"),
        device: str = typer.Option("cpu", "--device", help="golden backend: cpu, cuda or auto"),
        workload: Path | None = typer.Option(None, "--workload", help="a workload YAML (e.g. workloads/*.yaml): "
                                             "a DAG of kernels run by the chip's scheduler on its engines; the "
                                             "kernel and operand options are then not used"),
        policy: Policy | None = typer.Option(None, "--policy", help="--workload: the scheduling policy "
                                             "(default: the config's scheduler.policy)"),
        build_root: Path = typer.Option(DEFAULT_BUILD_ROOT, "--build-root", help="RTL build cache")):
    """Run one kernel, or with --workload a DAG of kernels, on one backend; write OUT/result.json and the
    outputs (OUT/c.npy; --workload: OUT/outputs.npz, one array per output tensor)."""
    cfg = _load_config(config)
    if workload is not None:
        _run_workload(cfg, workload, backend.value, policy.value if policy else None, out, device, build_root)
        return
    if backend == Backend.golden:
        from golden.numerics import pick_device
        try:
            pick_device(device)
        except (RuntimeError, ValueError) as e:
            _fail(2, [f"--device: {e}"])
    try:
        if (a is None) != (b is None):
            _fail(2, ["--a and --b go together (or give neither and use --m/--k/--n/--density/--seed)"])
        if kernel == Kernel.topk_attention:
            program, origin = _attention_program(cfg, a, b, v, m, k, n, seed, topk, causal)
        else:
            ratio = parse_nm(nm)
            if a is not None:
                A, B = _load_npy(a, "A"), _load_npy(b, "B")
                origin = {"a": str(a), "b": str(b)}
            else:
                A, B = _generate(m, k, n, density, seed, a_format.value, ratio, power_law)
                origin = {"density": density, "seed": seed, "power_law": power_law}
            program = compile_matmul(cfg, A, B, kernel.value, a_format.value, threshold, nm=ratio,
                                     requant=_parse_requant(requant))
        (result,) = run_programs(backend.value, cfg, [program], device=device, build_root=build_root)
    except OperandError as e:
        _fail(2, [str(e)])
    except (ToolchainError, RtlError) as e:
        _fail(3, [str(e)])
    cycles = result.cycles
    (name, output), = result.outputs.items()
    record = {"kernel": kernel.value, "backend": backend.value, "config": cfg.name, "config_digest": cfg.digest(),
              "output": name, "shape": list(output.shape), **origin, "cycles": cycles,
              "task_cycles": result.stats.get("task_cycles"),
              "time_us": cycles / cfg.clock.mhz if cycles else None, "wall_s": result.stats.get("wall_s")}
    if kernel != Kernel.topk_attention:
        work = program.work()
        record.update({"format": a_format.value, **({"nm": nm} if a_format == Format.nm else {}),
                       "m": program.fields[0]["m"], "k": program.fields[0]["k"], "n": program.fields[0]["n"],
                       "threshold": program.fields[0]["threshold"], "requant": requant, **work,
                       "utilization": work["useful_macs"] / (cycles * cfg.macs_per_cycle) if cycles else None,
                       "skipped_macs": work["dense_macs"] - work["useful_macs"],
                       "gated_macs": result.stats.get("gated_macs")})
    else:
        record.update({"topk": topk, "causal": causal})
    record["stats"] = result.stats
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "c.npy", output)
    (out / "result.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    util = f"{record['utilization']:.3f}" if record.get("utilization") else "-"
    console.print(f"{backend.value}: {kernel.value} {name} {'x'.join(map(str, output.shape))} "
                  f"cycles={cycles} utilization={util} -> {out}/")


def _run_workload(cfg, path: Path, backend: str, policy: str | None, out: Path, device: str, build_root: Path):
    from hwgen.compiler.dag import compile_workload
    from hwgen.spec.workload import WorkloadError, load
    if policy is not None:
        cfg = hwconfig.from_dict({**cfg.model_dump(), "scheduler": {**cfg.scheduler.model_dump(), "policy": policy}})
    try:
        program = compile_workload(cfg, load(path))
        (result,) = run_programs(backend, cfg, [program], device=device, build_root=build_root)
    except (WorkloadError, OperandError, OSError) as e:
        _fail(2, [f"{path}: {e}"])
    except (ToolchainError, RtlError) as e:
        _fail(3, [str(e)])
    stats = result.stats
    record = {"workload": str(path), "backend": backend, "config": cfg.name, "config_digest": cfg.digest(),
              "policy": cfg.scheduler.policy, "engines": cfg.scheduler.engines, "tasks": len(program.tasks),
              "cycles": result.cycles, "time_us": result.cycles / cfg.clock.mhz if result.cycles else None,
              "issued": stats.get("issued"), "skipped": stats.get("skipped"),
              "outputs": {k: list(v.shape) for k, v in result.outputs.items()}, "stats": stats}
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "outputs.npz", **result.outputs)
    (out / "result.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    console.print(f"{backend}: {program.params['workload'].name} ({len(program.tasks)} tasks on "
                  f"{cfg.scheduler.engines} engines, {cfg.scheduler.policy}) cycles={result.cycles} "
                  f"issued={stats.get('issued')} skipped={stats.get('skipped')} -> {out}/")


def _parse_requant(text: str | None):
    if text is None:
        return None
    try:
        mult, shift = (int(part) for part in text.split(":"))
    except ValueError:
        raise OperandError(f"--requant: {text!r} is not allowed (allowed: MULT:SHIFT such as 181:15)") from None
    return mult, shift


def _attention_program(cfg, q_path, k_path, v_path, t, d, s, seed, topk, causal):
    from hwgen.compiler.single_kernel import compile_attention
    if q_path is not None:
        if v_path is None:
            _fail(2, ["--v is needed with --a/--b for topk_attention"])
        q, keys, values = _load_npy(q_path, "A"), _load_npy(k_path, "B"), _load_npy(v_path, "V")
        origin = {"q": str(q_path), "k": str(k_path), "v": str(v_path)}
    else:
        rng = np.random.default_rng(seed)
        q, keys, values = (rng.integers(lo, hi, shape).astype(np.int8)
                           for lo, hi, shape in ((-24, 24, (t, d)), (-24, 24, (s, d)), (-128, 128, (s, d))))
        origin = {"seed": seed}
    return compile_attention(cfg, q, keys, values, topk, causal), origin


def _generate(m, k, n, density, seed, a_format, ratio, power_law):
    from golden.generators.operands import power_law_rows, prune_nm, random_operands
    A, B = (power_law_rows if power_law else random_operands)(m, k, n, density, seed)
    return (prune_nm(A, *ratio) if a_format == "nm" else A), B


@app.command()
def verify(config: str = typer.Option("tiny", "--config", help=CONFIG_HELP),
           seeds: int = typer.Option(1, "--seeds", min=1, help="random seeds per case"),
           build_root: Path = typer.Option(DEFAULT_BUILD_ROOT, "--build-root", help="RTL build cache")):
    """Run the standard case set (every kernel and format on one engine, then DAG programs on the whole chip)
    through golden, sim and RTL; exit 0 only if all agree bit for bit and sim cycles equal RTL cycles (DAG
    programs: within 3 %)."""
    from sim.verify import cross_check, dag_cases, standard_cases
    cfg = _load_config(config)
    try:
        cases = standard_cases(cfg, seeds) + [c for seed in range(seeds) for c in dag_cases(cfg, seed)]
        rows = cross_check(cfg, cases, build_root=build_root)
    except OperandError as e:
        _fail(2, [str(e)])
    except (ToolchainError, RtlError) as e:
        _fail(3, [str(e)])
    table = Table(title=f"dsa verify --config {cfg.name} ({cfg.build_name})")
    for col in ("case", "outputs", "sim cycles", "rtl cycles", "cycles"):
        table.add_column(col, justify="left" if col == "case" else "right")
    for row in rows:
        table.add_row(row.label, _mark(row.outputs_equal), str(row.results["sim"].cycles),
                      str(row.results["rtl"].cycles), _mark(row.cycles_equal))
    console.print(table)
    bad = [r for r in rows if not r.ok]
    console.print(f"{len(rows) - len(bad)} passed, {len(bad)} failed")
    if bad:
        raise typer.Exit(1)


@app.command()
def compare(config: str = typer.Option("default", "--config", help=CONFIG_HELP),
            kernel: Kernel = typer.Option(Kernel.spmm, "--kernel"),
            a_format: Format = typer.Option(Format.dense, "--format"),
            nm: str = typer.Option("2:4", "--nm", help="N:M ratio for --format nm"),
            power_law: bool = typer.Option(False, "--power-law", help="power-law row lengths"),
            m: int = typer.Option(64, "--m"), k: int = typer.Option(256, "--k"), n: int = typer.Option(64, "--n"),
            density: float = typer.Option(0.1, "--density"), seed: int = typer.Option(0, "--seed"),
            hbm: bool = typer.Option(False, "--hbm", help="operands and C in HBM: tiled LOAD/compute/STORE tasks "
                                     "(the RTL's AXI port answered by the HBM timing model)"),
            workload: Path | None = typer.Option(None, "--workload", help="a workload YAML: a DAG of kernels on "
                                                 "the whole chip (the kernel and operand options are not used)"),
            build_root: Path = typer.Option(DEFAULT_BUILD_ROOT, "--build-root", help="RTL build cache")):
    """Run one generated workload (or with --workload a DAG) through golden, sim and RTL, side by side."""
    from hwgen.compiler.tiling import compile_matmul_hbm
    from sim.verify import Case, cross_check
    cfg = _load_config(config)
    if workload is not None:
        _compare_workload(cfg, workload, build_root)
        return
    try:
        ratio = parse_nm(nm)
        A, B = _generate(m, k, n, density, seed, a_format.value, ratio, power_law)
        compile_ = compile_matmul_hbm if hbm else compile_matmul
        program = compile_(cfg, A, B, kernel.value, a_format.value, nm=ratio)
        (row,) = cross_check(cfg, [Case("workload", program)], build_root=build_root)
    except OperandError as e:
        _fail(2, [str(e)])
    except (ToolchainError, RtlError) as e:
        _fail(3, [str(e)])
    work = program.work()
    where = f", in HBM: {program.params['tiles']} tiles of {program.params['tile_rows']} rows" if hbm else ""
    table = Table(title=f"{kernel.value} {a_format.value} {m}x{k}x{n} density {density} on {cfg.build_name} "
                        f"({cfg.engine.rows}x{cfg.engine.lanes} MACs{where})")
    for col in ("backend", "C == golden", "cycles", "utilization", "wall s"):
        table.add_column(col, justify="left" if col == "backend" else "right")
    ref = row.results["golden"].outputs["C"]
    for name, res in row.results.items():
        util = f"{work['useful_macs'] / (res.cycles * cfg.macs_per_cycle):.3f}" if res.cycles else "-"
        table.add_row(name, _mark(np.array_equal(res.outputs["C"], ref)), str(res.cycles or "-"), util,
                      f"{res.stats['wall_s']:.4f}")
    console.print(table)
    console.print(f"useful MACs {work['useful_macs']} of {work['dense_macs']} dense; "
                  f"sim cycles {'==' if row.cycles_equal else '!='} RTL cycles")
    if not row.ok:
        raise typer.Exit(1)


def _compare_workload(cfg, path: Path, build_root: Path) -> None:
    from hwgen.compiler.dag import compile_workload
    from hwgen.spec.workload import WorkloadError, load
    from sim.verify import DAG_CYCLE_TOLERANCE, Case, cross_check
    try:
        program = compile_workload(cfg, load(path))
        (row,) = cross_check(cfg, [Case(str(path), program)], build_root=build_root)
    except (WorkloadError, OperandError, OSError) as e:
        _fail(2, [f"{path}: {e}"])
    except (ToolchainError, RtlError) as e:
        _fail(3, [str(e)])
    s = cfg.scheduler
    table = Table(title=f"{program.params['workload'].name}: {len(program.tasks)} tasks on {cfg.build_name} "
                        f"({s.engines} engines, {s.policy})")
    for col in ("backend", "outputs == golden", "cycles", "issued", "skipped", "wall s"):
        table.add_column(col, justify="left" if col == "backend" else "right")
    ref = row.results["golden"].outputs
    for name, res in row.results.items():
        same = all(np.array_equal(res.outputs[k], ref[k]) for k in ref)
        skipped = res.stats.get("skipped")
        table.add_row(name, _mark(same), str(res.cycles or "-"), str(res.stats.get("issued", "-")),
                      str(sum(len(v) for v in skipped.values()) if isinstance(skipped, dict) else skipped),
                      f"{res.stats['wall_s']:.3f}")
    console.print(table)
    sim, rtl = row.results["sim"].cycles, row.results["rtl"].cycles
    console.print(f"sim cycles {sim} vs RTL {rtl}: {(sim - rtl) / rtl:+.2%} (allowed: within "
                  f"{DAG_CYCLE_TOLERANCE:.0%})")
    if not row.ok:
        raise typer.Exit(1)


@app.command()
def lint(config: str = typer.Option("tiny", "--config", help=CONFIG_HELP),
         build_root: Path = typer.Option(DEFAULT_BUILD_ROOT, "--build-root", help="RTL build cache")):
    """verilator --lint-only -Wall on the generated Verilog (the chip and the engine-level top), with only the
    waivers in sim/rtl/tb/waivers.vlt."""
    from hwgen.rtl.build import TOPS
    from sim.rtl.runner import lint as run_lint
    cfg = _load_config(config)
    for top in TOPS:
        try:
            ok, output = run_lint(cfg, build_root, top)
        except (ToolchainError, RtlError) as e:
            _fail(3, [str(e)])
        if not ok:
            err.print(output)
            raise typer.Exit(1)
        console.print(f"lint clean: {cfg.build_name} ({top})")


def _mark(ok: bool) -> str:
    return "[green]equal[/green]" if ok else "[red]DIFFER[/red]"


if __name__ == "__main__":
    app()
