"""`dsa fpga export`: the Vitis RTL kernel's files agree with each other and with the generated top."""
import re
from xml.etree import ElementTree

import pytest

from hwgen.spec import config
from hwgen.spec.csr_map import csr_map
from sim.fpga.export import TOP
from tests.test_cli import invoke

SMALL = {"base": "u55c", "name": "kernel", "engine": {"rows": 1, "lanes": 4, "scan_bytes": 32},
         "l1": {"bytes": 4096, "out_bytes": 4096}, "memory": {"ports": 2, "tlb_entries": 4},
         "scheduler": {"engines": 1, "window": 4, "tasks": 64, "successors": 256, "descriptors": 256}}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import yaml
    root = tmp_path_factory.mktemp("export")
    path = root / "kernel.yaml"
    path.write_text(yaml.safe_dump(SMALL))
    result = invoke("fpga", "export", "--board", "u55c", "--config", path, "--out", root / "out")
    assert result.exit_code == 0, result.output
    cfg = config.load(path)
    return cfg, root / "out" / f"{cfg.build_name}-u55c"


def _ports(verilog: str) -> dict[str, tuple[str, int]]:
    """The top module's ports: name -> (direction, width)."""
    body = verilog[verilog.index(f"module {TOP}("):]
    body = body[:body.index("endmodule")]
    found = {}
    for direction, msb, name in re.findall(r"^\s+(input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);", body, re.M):
        found[name] = (direction, int(msb) + 1 if msb else 1)
    return found


def test_the_kernel_top_has_only_what_an_rtl_kernel_may_have(exported):
    cfg, folder = exported
    ports = _ports((folder / f"{TOP}.v").read_text())
    assert ports["ap_clk"] == ("input", 1) and ports["ap_rst_n"] == ("input", 1)
    assert ports["interrupt"] == ("output", 1)
    assert all(re.match(r"(ap_clk|ap_rst_n|interrupt|s_axi_control_\w+|m_axi_hbm[01]_\w+)$", p) for p in ports), ports
    for i in range(cfg.memory.ports):
        assert ports[f"m_axi_hbm{i}_araddr"] == ("output", 64)
        assert ports[f"m_axi_hbm{i}_rdata"] == ("input", cfg.beat_bytes * 8)
    assert ports["s_axi_control_wdata"] == ("input", 32)


def test_kernel_xml_agrees_with_the_top_and_the_csr_map(exported):
    cfg, folder = exported
    ports = _ports((folder / f"{TOP}.v").read_text())
    kernel = ElementTree.parse(folder / "kernel.xml").getroot().find("kernel")
    assert kernel.get("name") == TOP and kernel.get("hwControlProtocol") == "user_managed"
    declared = {p.get("name"): p for p in kernel.find("ports")}
    assert set(declared) == {"s_axi_control", "m_axi_hbm0", "m_axi_hbm1"}
    for name, port in declared.items():
        assert ports[f"{name}_wdata"][1] == int(port.get("dataWidth"))
    assert int(declared["s_axi_control"].get("range"), 16) == 1 << ports["s_axi_control_awaddr"][1]
    (arg,) = kernel.find("args")
    assert int(arg.get("offset"), 16) == csr_map(cfg)["program_base"].offset and arg.get("port") == "m_axi_hbm0"


def test_packaging_constraints_and_connectivity_name_every_port_and_file(exported):
    cfg, folder = exported
    tcl = (folder / "package_kernel.tcl").read_text()
    verilog = sorted(p.name for p in folder.glob("*.v") if p.name != f"{TOP}.v") + [f"{TOP}.v"]
    assert len(verilog) > 1                               # the L3's RAM modules come first
    assert "add_files -norecurse [list " + " ".join(f"$here/{v}" for v in verilog) + "]" in tcl
    for bus in ("s_axi_control", "m_axi_hbm0", "m_axi_hbm1"):
        assert f"ipx::associate_bus_interfaces -busif {bus} -clock ap_clk $core" in tcl
    assert "package_xo -force -xo_path $here/dsa_kernel.xo" in tcl
    assert (folder / "connectivity.cfg").read_text().splitlines()[-2:] == [
        "sp=dsa_kernel_1.m_axi_hbm0:HBM[0]", "sp=dsa_kernel_1.m_axi_hbm1:HBM[1]"]
    assert "create_clock -period 3.333 -name ap_clk [get_ports ap_clk]" in (folder / f"{TOP}.xdc").read_text()
    assert "Not tested: Vivado and Vitis never ran" in (folder / "README.md").read_text()


@pytest.mark.parametrize(("args", "line"), [
    (["--board", "vcu118"], "error: --board: 'vcu118' is not allowed (allowed: u55c, u280)"),
])
def test_bad_export_input_exits_2_before_any_work(tmp_path, args, line):
    result = invoke("fpga", "export", *args, "--out", tmp_path)
    assert result.exit_code == 2
    assert line in result.output
    assert not any(tmp_path.iterdir())


def test_more_ports_than_hbm_has_are_refused(tmp_path):
    path = tmp_path / "wide.yaml"
    path.write_text("base: u55c\nmemory:\n  ports: 64\n")
    result = invoke("fpga", "export", "--board", "u55c", "--config", path, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert "error: memory.ports: 64 is not allowed: must be a power of two in [1, 32]" in result.output
