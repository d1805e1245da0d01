"""Generate the Verilog of a config and the sidecar files everyone else reads.

``generate(cfg, out)`` writes ``out/<name>-<digest>/``:
  <name>_chip.v   the whole chip (top module ``dsa_<name>_chip``): host CSRs, the ASA scheduler, the engines and
                  the memory side (``hwgen/rtl/chip.py``)
  csr_map.md/json its CSR map (``hwgen/spec/csr_map.py``)
  <name>_csr.h    the CSR map as a C header (offsets, widths, bit fields, reset values, the version, the codes)
  <name>.v        one engine and its memory side with a task-stream interface (top module ``dsa_<name>``), for
                  engine-level verification and for hosts that feed descriptors themselves
  l3_*_ram_*.v    with the L3: its tag and data RAM modules (behavioural, no initial contents)
  config.json     the full config, its digest and derived values
  component.json  the top's interface (amaranth.lib.meta)
  README.md       a table of the top's ports
  <name>.core     a FuseSoC CAPI2 core (``core_file``): the Verilog of each top in compile order, a lint target
  files.f         every Verilog file of the folder in compile order, one name a line (``file_list``)
Output is byte-identical for the same config, so the folder can be regenerated instead of stored.
"""
from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Callable
from pathlib import Path

from amaranth.back import verilog

from hwgen.rtl.chip import Chip
from hwgen.rtl.chip import axi_ports as chip_axi_ports
from hwgen.rtl.memory import l3_cache
from hwgen.rtl.memory.axi import VivadoTop
from hwgen.rtl.top import axi_ports, chip, hbm_prefix
from hwgen.spec import isa
from hwgen.spec.config import HwConfig
from hwgen.spec.csr_map import c_header, c_header_name, csr_map
from hwgen.spec.page_table import PTE, PTE_BITS, Fault

DERIVED = ("line_bytes", "l1_lines", "lines_per_bank", "out_line_bits", "out_lines", "macs_per_cycle",
           "acc_min", "acc_max")


TOPS = ("engine", "chip")
#: Verilator warnings the generated Verilog raises by construction (Amaranth's backend), waived in the core's lint
#: target under -Wall; the same rules as the lint_off lines of sim/rtl/tb/waivers.vlt
LINT_WAIVERS = ("WIDTHEXPAND", "WIDTHTRUNC", "UNUSEDSIGNAL", "PROCASSINIT", "CASEINCOMPLETE", "DECLFILENAME")


def top_name(cfg: HwConfig, top: str = "engine") -> str:
    return f"dsa_{cfg.name}" if top == "engine" else f"dsa_{cfg.name}_chip"


def verilog_name(cfg: HwConfig, top: str = "engine") -> str:
    return f"{cfg.name}.v" if top == "engine" else f"{cfg.name}_chip.v"


def build_dir(cfg: HwConfig, out: str | Path) -> Path:
    return Path(out) / cfg.build_name


def config_json(cfg: HwConfig) -> dict:
    return {"name": cfg.name, "digest": cfg.digest(), "top": top_name(cfg),
            "config": cfg.model_dump(mode="json"),
            "derived": {k: getattr(cfg, k) for k in DERIVED},
            "descriptor": [{"name": f.name, "bits": f.bits, "doc": f.doc} for f in isa.DESCRIPTOR]}


def _hbm_text(cfg: HwConfig) -> str:
    """The HBM ports in the README's protocol text."""
    bits = cfg.beat_bytes * 8
    ports = cfg.memory.ports
    if ports == 1:
        return f"the AXI4 master `{hbm_prefix(0)}_*`, {bits}-bit data"
    return (f"the {ports} AXI4 masters `{hbm_prefix(0)}_*` .. `{hbm_prefix(ports - 1)}_*`, {bits}-bit data each; "
            f"a burst at byte address a goes to port (a / {cfg.memory.interleave_bytes}) mod {ports}"
            + (" (through that port's L3 slice)" if cfg.l3.enabled else "") + ", no burst "
            "crosses an interleave boundary, R beats and B responses come back to the engine in request order "
            "over all ports, and a port's response waits (VALID high) until the earlier ports' are taken")


def _paging_text(cfg: HwConfig) -> str:
    pte = ", ".join(f"{f.name} bit{'s' if f.bits > 1 else ''} {PTE.shift[f.name]}"
                    + (f"..{PTE.shift[f.name] + f.bits - 1}" if f.bits > 1 else "") for f in PTE)
    return ("Paging: LOAD / STORE `hbm_addr` are virtual. Before offering tasks set `page_table_base` (physical "
            f"byte address of the table: one {PTE_BITS}-bit little-endian entry per virtual page of "
            f"{cfg.memory.page_bytes} bytes; {pte}) and `page_table_entries` (its length; a page at or beyond it "
            "faults without a walk); pulse `tlb_flush` after changing the table. Each DMA unit translates every "
            f"burst through its own TLB ({cfg.memory.tlb_entries} entries, {cfg.memory.tlb_sets} set(s)); a miss "
            "reads the entry with ARID 1. `page_fault` holds the LOAD (bits 1:0) and STORE (bits 3:2) fault: "
            + ", ".join(f"{f.value} {f.name.lower()}" for f in Fault) + "; while nonzero no task is taken (reset "
            "clears it). `tlb_hits` / `tlb_misses` / `tlb_walks` count over both TLBs since reset.\n\n")


def _l3_text(cfg: HwConfig) -> str:
    if not cfg.l3.enabled:
        return ""
    c, P = cfg.l3, cfg.memory.ports
    where = "between the engine and the HBM port" if P == 1 else (
        f"in {P} slices of {c.bytes // P} B, one in front of each HBM port (slice i holds the lines of port i's "
        "interleave chunks)")
    return (f"L3: {c.bytes} B, {c.ways} ways, {c.line_bytes}-byte lines, {c.banks} banks, {c.mshrs} MSHRs, "
            f"{c.replacement}, {c.write_policy}, bypass {c.bypass}, hit {cfg.l3_hit_cycles} cycles, {where}. After "
            "reset it clears its tags; `l3_ready` rises when it is done: offer the first task then. `l3_hits`, "
            "`l3_misses`, `l3_evictions`, `l3_writebacks` count line accesses since reset"
            + (" (all slices)" if P > 1 else "") + ". Its tag and data arrays are the RAM modules in the `*.v` "
            "files beside this one" + (" (every slice instantiates them)" if P > 1 else "") + ".\n\n")


def _port_rows(meta: dict) -> str:
    rows = []

    def walk(members: dict):
        for member in members.values():
            if member["type"] == "port":
                rows.append(f"| `{member['name']}` | {member['dir']} | {member['width']} |")
            else:
                walk(member["members"])

    walk(meta["interface"]["members"])
    return "| port | dir | width |\n|---|---|---|\n" + "\n".join(rows) + "\n"


def _chip_readme(cfg: HwConfig, meta: dict) -> str:
    from hwgen.spec.task_table import HEADER, TASK
    s = cfg.scheduler

    def table(t) -> str:
        return "| field | bits | meaning |\n|---|---|---|\n" + "\n".join(
            f"| `{f.name}` | {f.bits} | {f.doc} |" for f in t) + "\n"
    return (f"# {top_name(cfg, 'chip')} ({cfg.build_name})\n\n"
            f"Generated by `dsa generate --config {cfg.name}`; do not edit. The whole chip "
            f"(`{verilog_name(cfg, 'chip')}`): "
            f"an AXI4-Lite CSR block `s_axi_ctrl_*`, the ASA scheduler ({s.window}-task window, {s.tasks} tasks, "
            f"{s.successors} successors, {s.descriptors} descriptors, {s.predicates} predicate bits, policy "
            f"`{s.policy}` after reset), {s.engines} DSA engines and the memory side: "
            + _hbm_text(cfg) + ". `irq` rises when a program is done (with `irq_enable`).\n\n"
            "Host protocol: wait for `status.l3_ready`; place the program (hwgen/compiler/dag.py: tensors in pages, "
            "the page table, then the header, task table, successor lists and descriptors) in HBM; write "
            "`program_base` (and `policy`); write 1 to `control.start`; wait for `irq` or `status.done`; write 1 "
            "to `control.l3_flush` and wait for `status.l3_flushing` to fall before reading results from HBM.\n\n"
            "## CSR map (`csr_map.md`, `csr_map.json`)\n\n" + csr_map(cfg).to_markdown() + "\n\n"
            "## Program header (at `program_base`, fields LSB first)\n\n" + table(HEADER)
            + "\n## Task-table entry (fields LSB first)\n\n" + table(TASK)
            + "\n## Ports\n\n" + _port_rows(meta) + "\n")


def _ports_readme(cfg: HwConfig, meta: dict) -> str:
    fields = "\n".join(f"| `{f.name}` | {f.bits} | {f.doc} |" for f in isa.DESCRIPTOR)
    return (f"# {top_name(cfg)} (one engine)\n\n"
            f"`{verilog_name(cfg)}`: one DSA engine: "
            f"{cfg.engine.rows} row units x {cfg.engine.lanes} lanes, int8 x int8 -> int{cfg.engine.acc_bits} "
            f"({cfg.engine.overflow}), L1 {cfg.l1.bytes} B in {cfg.l1.banks} banks of {cfg.line_bytes}-byte lines, "
            f"output buffer {cfg.l1.out_bytes} B. Clock `clk`, synchronous reset `rst`.\n\n"
            "Protocol: offer task descriptors in order on `task_payload` / `task_valid`; one is taken in "
            "each cycle where `task_ready` is high. LOAD and STORE tasks move lines between HBM ("
            + _hbm_text(cfg) + ") and L1 / the output buffer; compute "
            "tasks run on the row units. When `idle` is high again, every task has finished. "
            "`fill_*` writes L1 lines and `out_*` reads the output buffer (one cycle latency) while idle; "
            "`clear` zeroes `cycles` (cycles with a task offered or a unit busy), `elems` and `gated`.\n\n"
            + _paging_text(cfg) + _l3_text(cfg) + _port_rows(meta) +
            "\n## Descriptor (`desc`, fields LSB first)\n\n| field | bits | meaning |\n|---|---|---|\n"
            + fields + "\n")


def _ip_readme(cfg: HwConfig) -> str:
    chip_files = " ".join(verilog_sources(cfg, "chip"))
    lint_options = " ".join(_lint_options())
    return (f"\n# Integration files\n\n"
            f"- `{core_name(cfg)}`: a FuseSoC (CAPI2) core, `{vlnv(cfg)}`. Filesets `chip` and `engine` hold each "
            "top's Verilog in compile order (the RAM modules first), `csr_header` the C header. Targets: "
            f"`default` and `chip` (toplevel `{top_name(cfg, 'chip')}`), `engine` (`{top_name(cfg)}`), `lint` and "
            "`lint_engine` (Verilator `--lint-only -Wall`, waiving only what Amaranth's Verilog raises by "
            f"construction: {', '.join(LINT_WAIVERS)}). Use: `fusesoc --cores-root <this folder> run "
            f"--target=lint {vlnv(cfg).rsplit(':', 1)[0]}`.\n"
            "- `files.f`: every Verilog file of this folder in compile order, one name a line, relative to this "
            "folder: the RAM modules, the chip top, the engine top (no module is defined twice, so it serves "
            f"either top: `verilator --lint-only {lint_options} -f files.f --top-module {top_name(cfg, 'chip')}` "
            f"from here). The chip alone: {chip_files}.\n"
            f"- `{c_header_name(cfg)}`: the CSR map for C drivers: per register `DSA_{cfg.name.upper()}_<REG>_OFFSET` "
            "(registers wider than 32 bits: `_LO` and `_HI`, one word each), `_WIDTH`, `_RESET` (writable "
            "registers), per bit field `_SHIFT`, `_WIDTH`, `_MASK`; "
            f"`DSA_{cfg.name.upper()}_CSR_VERSION` (the value of `version`) and the error, policy and fault codes.\n")


def extra_sources(cfg: HwConfig) -> dict[str, str]:
    """Verilog files the top instantiates besides its own (the L3's RAM modules): {file name: text}."""
    return l3_cache.ram_modules(cfg) if cfg.l3.enabled else {}


def verilog_sources(cfg: HwConfig, top: str = "engine") -> list[str]:
    """File names of a build folder to compile for ``top``, in order: the RAM modules, then the top."""
    return [*sorted(extra_sources(cfg)), verilog_name(cfg, top)]


def file_list_sources(cfg: HwConfig) -> list[str]:
    """Every Verilog file of a build folder in compile order: the RAM modules, the chip top, the engine top. No
    module name is defined twice (each top's modules are named under it), so the list compiles either top."""
    return [*sorted(extra_sources(cfg)), verilog_name(cfg, "chip"), verilog_name(cfg, "engine")]


def file_list(cfg: HwConfig) -> str:
    """``files.f``: ``file_list_sources``, one file name (relative to the build folder) a line."""
    return "".join(f"{name}\n" for name in file_list_sources(cfg))


def _lint_options() -> list[str]:
    return ["-Wall", *(f"-Wno-{rule}" for rule in LINT_WAIVERS)]


def core_name(cfg: HwConfig) -> str:
    return f"{cfg.name}.core"


def vlnv(cfg: HwConfig) -> str:
    """The core's vendor:library:name:version: the build (config name and digest) and the generator's version."""
    try:
        version = importlib.metadata.version("dsa")
    except importlib.metadata.PackageNotFoundError:      # run from a source tree that was never installed
        version = "0"
    return f"dsa:accelerator:{cfg.build_name.replace('-', '_')}:{version}"


def core_file(cfg: HwConfig) -> str:
    """A FuseSoC CAPI2 core of the build folder: a fileset per top (``verilog_sources`` order) and the C header;
    targets ``default`` and ``chip`` (the chip top), ``engine``, and ``lint`` / ``lint_engine`` (verilator
    --lint-only -Wall, waiving ``LINT_WAIVERS``)."""
    def files(names) -> str:
        return "".join(f"      - {name}\n" for name in names)

    def target(name: str, top: str, lint: bool = False) -> str:
        text = f"  {name}:\n    filesets: [{top}]\n    toplevel: {top_name(cfg, top)}\n"
        if lint:
            options = ", ".join(_lint_options())
            text += (f"    description: verilator --lint-only -Wall on the {top} top\n    flow: lint\n"
                     f"    flow_options:\n      tool: verilator\n      verilator_options: [{options}]\n")
        return text

    description = (f"dsa {cfg.name} ({cfg.build_name}): the whole chip {top_name(cfg, 'chip')} and one engine "
                   f"{top_name(cfg)}")
    return ("CAPI=2:\n"
            f"# Generated by `dsa generate --config {cfg.name}`; do not edit.\n"
            f"name: {vlnv(cfg)}\n"
            f"description: {json.dumps(description)}\n\n"
            "filesets:\n"
            + "".join(f"  {top}:\n    file_type: verilogSource\n    files:\n{files(verilog_sources(cfg, top))}"
                      for top in ("chip", "engine"))
            + f"  csr_header:\n    file_type: cSource\n    files:\n      - {c_header_name(cfg)}: "
              "{is_include_file: true}\n\n"
            "targets:\n"
            + target("default", "chip") + target("chip", "chip") + target("engine", "engine")
            + target("lint", "chip", lint=True) + target("lint_engine", "engine", lint=True))


def top_component(cfg: HwConfig, top: str = "engine") -> VivadoTop:
    """``top`` under Vivado-inferable AXI names (``m_axi_hbm0_araddr`` ... ``m_axi_hbm<P-1>_*``; the chip's CSRs
    ``s_axi_ctrl_*``): "engine" is ``hwgen.rtl.top.chip`` (the engine and its memory side), "chip" is
    ``hwgen.rtl.chip.Chip``."""
    if top == "chip":
        return VivadoTop(Chip(cfg), chip_axi_ports(cfg))
    return VivadoTop(chip(cfg), axi_ports(cfg))


def generate(cfg: HwConfig, out: str | Path, stage: Callable[[str], None] = lambda what: None,
             platform=None) -> Path:
    """Write the Verilog and sidecars; returns the build folder. ``stage`` hears what is being done (it takes
    seconds for ``tiny``, minutes for ``default``). ``platform`` is what the design is elaborated for: None
    (the portable Verilog of ``dsa generate``, which simulators run) or an FPGA target (``dsa fpga synth``:
    on an ECP5 the block RAMs are DP16KD tiles, ``hwgen.rtl.block_ram``)."""
    folder = build_dir(cfg, out)
    folder.mkdir(parents=True, exist_ok=True)
    metas = {}
    for top in TOPS:
        stage(f"elaborating and converting the {top} top of {cfg.build_name} to Verilog")
        component = top_component(cfg, top)
        metas[top] = component.metadata.as_json()
        text = verilog.convert(component, name=top_name(cfg, top), emit_src=False, platform=platform)
        (folder / verilog_name(cfg, top)).write_text(text)
    stage("writing the RAM modules and sidecars")
    for name, module in extra_sources(cfg).items():
        (folder / name).write_text(module)
    csrs = csr_map(cfg)
    (folder / "csr_map.md").write_text(csrs.to_markdown() + "\n")
    (folder / "csr_map.json").write_text(json.dumps(csrs.to_json(), indent=2) + "\n")
    (folder / c_header_name(cfg)).write_text(c_header(cfg, csrs))
    (folder / core_name(cfg)).write_text(core_file(cfg))
    (folder / "files.f").write_text(file_list(cfg))
    (folder / "config.json").write_text(json.dumps(config_json(cfg), indent=2, sort_keys=True) + "\n")
    (folder / "component.json").write_text(json.dumps(metas["engine"], indent=2, sort_keys=True) + "\n")
    (folder / "chip_component.json").write_text(json.dumps(metas["chip"], indent=2, sort_keys=True) + "\n")
    (folder / "README.md").write_text(_chip_readme(cfg, metas["chip"]) + _ports_readme(cfg, metas["engine"])
                                      + _ip_readme(cfg))
    return folder
