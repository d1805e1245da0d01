"""The integration files of a build folder (hwgen/rtl/build.py): the FuseSoC core (checked by the fusesoc CLI and
its Verilator lint target), files.f, and the C header of the CSR map (hwgen/spec/csr_map.py, compiled and run
with gcc: the offsets it prints are the map's)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from hwgen.rtl import build
from hwgen.spec import config
from hwgen.spec.csr_map import Access, BitField, CsrMap, Register, c_header, c_header_name, codes, csr_map
from sim.rtl.runner import toolchain_env

ROOT = Path(__file__).resolve().parents[1]
TINY = config.load("tiny")
GCC = shutil.which("gcc")
needs_gcc = pytest.mark.skipif(GCC is None, reason="gcc is not on PATH")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return build.generate(TINY, tmp_path_factory.mktemp("rtl"))


# ---------------------------------------------------------------------------------------------------
# files.f

def test_file_list_names_every_verilog_file_in_compile_order(folder):
    names = (folder / "files.f").read_text().splitlines()
    rams = sorted(build.extra_sources(TINY))
    assert rams, "tiny has an L3: its RAM modules come first"
    assert names == [*rams, "tiny_chip.v", "tiny.v"] == build.file_list_sources(TINY)
    assert names[:len(rams) + 1] == build.verilog_sources(TINY, "chip")
    assert sorted(names) == sorted(p.name for p in folder.glob("*.v"))
    assert all((folder / name).is_file() for name in names)
    # one list serves either top: no module is defined in two files
    modules = [m for name in names for m in re.findall(r"^module\s+(\S+)", (folder / name).read_text(), re.M)]
    assert len(modules) == len(set(modules))


def test_without_the_l3_the_lists_hold_the_tops_only():
    cfg = config.from_dict({"base": "tiny", "l3": {"enabled": False}})
    assert build.file_list(cfg) == "tiny_chip.v\ntiny.v\n"
    core = yaml.safe_load(build.core_file(cfg).split("\n", 1)[1])
    assert core["filesets"]["chip"]["files"] == ["tiny_chip.v"]
    assert core["filesets"]["engine"]["files"] == ["tiny.v"]


def test_the_files_list_compiles_the_engine_top(folder):
    """files.f with both tops: Verilator picks dsa_tiny and finds every module it needs (and none twice)."""
    env = toolchain_env()
    proc = subprocess.run(["verilator", "--lint-only", *build._lint_options(), "-f", "files.f",
                           "--top-module", build.top_name(TINY)], cwd=folder, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------------------------
# FuseSoC core

def _fusesoc(workspace: Path, cores: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The fusesoc CLI of this environment in ``workspace`` with an empty config (no user libraries, no network)."""
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "fusesoc.conf").write_text("")
    env = dict(env or toolchain_env())
    env.update({f"XDG_{d}_HOME": str(workspace / d.lower()) for d in ("CONFIG", "CACHE", "DATA")})
    cmd = [str(Path(shutil.which("fusesoc", path=env["PATH"]) or "fusesoc")), "--config", "fusesoc.conf",
           "--cores-root", str(cores), *args]
    return subprocess.run(cmd, cwd=workspace, env=env, capture_output=True, text=True)


def test_core_file_is_the_config_and_the_file_order(folder):
    text = (folder / "tiny.core").read_text()
    assert text == build.core_file(TINY)
    assert text.startswith("CAPI=2:\n")
    core = yaml.safe_load(text.split("\n", 1)[1])
    assert core["name"] == build.vlnv(TINY)
    assert core["name"].startswith(f"dsa:accelerator:tiny_{TINY.digest()}:")
    for top in build.TOPS:
        assert core["filesets"][top]["files"] == build.verilog_sources(TINY, top)
    assert core["targets"]["default"] == core["targets"]["chip"] == {"filesets": ["chip"], "toplevel": "dsa_tiny_chip"}
    assert core["targets"]["engine"]["toplevel"] == "dsa_tiny"
    assert core["targets"]["lint"]["flow_options"]["tool"] == "verilator"


def test_fusesoc_accepts_the_core_and_its_lint_target_passes(folder, tmp_path):
    name = build.vlnv(TINY)
    info = _fusesoc(tmp_path, folder, "core-info", name)
    assert info.returncode == 0, info.stdout + info.stderr
    assert f"Name:        {name}" in info.stdout and "Core file:   tiny.core" in info.stdout
    assert re.findall(r"^(\w+)\s+:", info.stdout.split("Targets:")[1], re.M) == [
        "chip", "default", "engine", "lint", "lint_engine"]

    for target, top in (("lint", "chip"), ("lint_engine", "engine")):
        setup = _fusesoc(tmp_path, folder, "run", f"--target={target}", "--setup", name)
        assert setup.returncode == 0, setup.stdout + setup.stderr
        (work,) = tmp_path.glob(f"build/*/{target}")
        edam = yaml.safe_load(next(work.glob("*.eda.yml")).read_text())
        assert edam["toplevel"] == build.top_name(TINY, top)
        assert [Path(f["name"]).name for f in edam["files"]] == build.verilog_sources(TINY, top)
        assert all(f["file_type"] == "verilogSource" for f in edam["files"])

    lint = _fusesoc(tmp_path, folder, "run", "--target=lint", name)      # verilator --lint-only -Wall, for real
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "verilator -f" in lint.stdout


def test_lint_waivers_are_those_of_the_testbench_control_file():
    vlt = (ROOT / "sim" / "rtl" / "tb" / "waivers.vlt").read_text()
    assert re.findall(r"^lint_off -rule (\w+)", vlt, re.M) == list(build.LINT_WAIVERS)


# ---------------------------------------------------------------------------------------------------
# C header

def _expected(csrs: CsrMap) -> list[str]:
    """What the C program below prints, from the map itself."""
    lines = []
    for r in csrs:
        lines.append(f"{r.name} {r.offset} {r.offset + 4 if r.words > 1 else -1} {r.width} "
                     f"{r.reset if r.access is not Access.RO else -1}")
        lines += [f"{r.name}.{f.name} {f.lsb} {f.width} {f.mask}" for f in r.fields]
    lines += [f"{group}.{name} {value}" for group, values in codes().items() for name, value in values.items()]
    return lines


def _program(prefix: str, header: str, csrs: CsrMap) -> str:
    """A C program that prints every register's offsets, width and reset, every field and every code through the
    header's macros (not through values copied from Python)."""
    body = []
    for r in csrs:
        m = f"{prefix}_{r.name.upper()}"
        lo, hi = (f"{m}_LO", f"(long long){m}_HI") if r.words > 1 else (f"{m}_OFFSET", "-1LL")
        reset = f"(long long){m}_RESET" if r.access is not Access.RO else "-1LL"
        body.append(f'printf("{r.name} %u %lld %u %lld\\n", (unsigned){lo}, {hi}, (unsigned){m}_WIDTH, {reset});')
        for f in r.fields:
            fm = f"{m}_{f.name.upper()}"
            body.append(f'printf("{r.name}.{f.name} %u %u %llu\\n", (unsigned){fm}_SHIFT, (unsigned){fm}_WIDTH, '
                        f'(unsigned long long){fm}_MASK);')
    for group, values in codes().items():
        for name in values:
            body.append(f'printf("{group}.{name} %u\\n", (unsigned){prefix}_{group.upper()}_{name});')
    return (f'#include <stdio.h>\n#include "{header}"\n#include "{header}"  /* the guard makes this harmless */\n'
            "int main(void) {\n    " + "\n    ".join(body) + f'\n    printf("version %u\\n", {prefix}_CSR_VERSION);'
            "\n    return 0;\n}\n")


def _compile_and_run(where: Path, cfg, csrs: CsrMap, header: Path) -> list[str]:
    source = where / "print_csrs.c"
    source.write_text(_program(f"DSA_{cfg.name.upper()}", header.name, csrs))
    exe = where / "print_csrs"
    cc = subprocess.run([GCC, "-std=c99", "-Wall", "-Wextra", "-Werror", "-I", str(header.parent), str(source),
                         "-o", str(exe)], capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, check=True)
    return run.stdout.splitlines()


@needs_gcc
def test_c_header_compiles(folder):
    header = folder / c_header_name(TINY)
    assert header.read_text() == c_header(TINY)
    proc = subprocess.run([GCC, "-fsyntax-only", "-std=c99", "-Wall", "-Wextra", "-Werror", "-x", "c", str(header)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = header.read_text()
    assert text.startswith("/* tiny_csr.h: the CSR map of dsa_tiny_chip")
    assert "Generated by `dsa generate --config tiny`" in text
    assert "#ifndef DSA_TINY_CSR_H\n#define DSA_TINY_CSR_H\n" in text and text.endswith("#endif /* DSA_TINY_CSR_H */\n")


@needs_gcc
def test_c_program_prints_the_maps_offsets(folder, tmp_path):
    csrs = csr_map(TINY)
    printed = _compile_and_run(tmp_path, TINY, csrs, folder / c_header_name(TINY))
    assert printed == [*_expected(csrs), "version 1146306821"]
    # the layout the chip's host code relies on, spelled out once
    assert "program_base 40 44 40 0" in printed and "predicates 120 124 64 -1" in printed
    assert "control.start 0 1 1" in printed and "status.l3_ready 2 1 4" in printed


@needs_gcc
def test_a_changed_register_shows_up(tmp_path):
    """A register added to the map moves every later offset in the header; a config change moves widths."""
    base = list(csr_map(TINY))
    at = next(i for i, r in enumerate(base) if r.name == "cycles")
    new = Register("scratch", base[at].offset, 64, Access.RW, "a new register", reset=0x1234_5678_9A,
                   fields=(BitField("low", 0, 8), BitField("high", 32, 8)))
    moved = [Register(r.name, r.offset + 8, r.width, r.access, r.description, r.reset, r.fields) for r in base[at:]]
    changed = CsrMap([*base[:at], new, *moved])
    header = tmp_path / c_header_name(TINY)
    header.write_text(c_header(TINY, changed))
    printed = _compile_and_run(tmp_path, TINY, changed, header)
    assert printed[:-1] == _expected(changed)
    assert f"scratch {new.offset} {new.offset + 4} 64 {0x1234_5678_9A}" in printed
    assert f"cycles {base[at].offset + 8} -1 32 -1" in printed

    # fewer predicate bits: one word; three engines: a third engine's fault fields
    cfg = config.from_dict({"base": "tiny", "scheduler": {"predicates": 32, "engines": 3}})
    text = c_header(cfg)
    assert "DSA_TINY_PREDICATES_OFFSET" in text and "DSA_TINY_PREDICATES_LO" not in text
    assert "#define DSA_TINY_PAGE_FAULT_ENGINE2_STORE_MASK  0xc00u" in text
    assert "#define DSA_TINY_PAGE_FAULT_WIDTH               12u" in text


def test_header_refuses_macro_names_used_twice():
    csrs = CsrMap([Register("a", 0, 8, Access.RW, fields=(BitField("b", 0),)), Register("a_b", 4, 8, Access.RW)])
    with pytest.raises(ValueError, match="macro names used twice: DSA_TINY_A_B_WIDTH"):
        c_header(TINY, csrs)


def test_outputs_are_reproducible(folder):
    assert (folder / "files.f").read_text() == build.file_list(TINY)
    assert c_header(TINY) == c_header(TINY) and build.core_file(TINY) == build.core_file(TINY)
    readme = (folder / "README.md").read_text()
    for name in ("tiny.core", "files.f", "tiny_csr.h", build.vlnv(TINY)):
        assert name in readme
