"""hwgen.spec.config: every error path with the exact lines users see, presets, base chains, digest, YAML round trip."""
from __future__ import annotations

import pydantic
import pytest

from hwgen.spec.config import ConfigError, HwConfig, from_dict, load, preset_names

YAML_BOOL_HINT = " (YAML 1.1 reads unquoted yes/no/on/off as booleans: quote the value)"
ENGINE_KEYS = "rows, lanes, scan_bytes, operand_bits, acc_bits, overflow, threshold"


def problems_of(data) -> list[str]:
    with pytest.raises(ConfigError) as info:
        from_dict(data)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def load_problems(path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(path)
    return info.value.problems


def write(tmp_path, text: str, name: str = "cfg.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


# ---- from_dict: one problem each ------------------------------------------------------------------

@pytest.mark.parametrize("data, line", [
    # unknown keys, with the allowed ones
    ({"foo": 1},
     "foo: unknown key (allowed: name, engine, l1, attention, memory, l3, scheduler, energy, clock, board)"),
    ({"engine": {"lane": 4}}, f"engine.lane: unknown key (allowed: {ENGINE_KEYS})"),
    ({"l1": {"size": 4}}, "l1.size: unknown key (allowed: bytes, banks, out_bytes)"),
    ({"clock": {"ghz": 1}}, "clock.ghz: unknown key (allowed: mhz)"),
    # powers of two
    ({"engine": {"lanes": 12}}, "engine.lanes: 12 is not allowed: must be a power of two in [2, 64]"),
    ({"engine": {"lanes": 1}}, "engine.lanes: 1 is not allowed: must be a power of two in [2, 64]"),
    ({"engine": {"lanes": 128, "scan_bytes": 256}},
     "engine.lanes: 128 is not allowed: must be a power of two in [2, 64]"),
    ({"l1": {"banks": 3}}, "l1.banks: 3 is not allowed: must be a power of two in [1, 16]"),
    ({"l1": {"banks": 0}}, "l1.banks: 0 is not allowed: must be a power of two in [1, 16]"),
    ({"engine": {"scan_bytes": 48}}, "engine.scan_bytes: 48 is not allowed: must be a power of two in [8, 256]"),
    ({"engine": {"scan_bytes": 4}}, "engine.scan_bytes: 4 is not allowed: must be a power of two in [8, 256]"),
    ({"l1": {"bytes": 1000}}, "l1.bytes: 1000 is not allowed: must be a power of two in [256, 67108864]"),
    ({"l1": {"out_bytes": 1000}}, "l1.out_bytes: 1000 is not allowed: must be a power of two in [256, 67108864]"),
    # scan_bytes must cover lanes
    ({"engine": {"scan_bytes": 16, "lanes": 32}},
     "engine.scan_bytes: 16 is not allowed: must be >= lanes (32), since one L1 line holds a whole B segment"),
    # bad literals, including YAML 1.1 booleans that reach us as bool
    ({"engine": {"overflow": "clamp"}},
     "engine.overflow: 'clamp' is not allowed: Input should be 'wrap' or 'saturate'"),
    ({"engine": {"overflow": False}},
     "engine.overflow: False is not allowed: Input should be 'wrap' or 'saturate'" + YAML_BOOL_HINT),
    ({"engine": {"operand_bits": 4}}, "engine.operand_bits: 4 is not allowed: Input should be 8"),
    ({"scheduler": {"window": 3}}, "scheduler.window: 3 is not allowed: must be a power of two in [2, 64]"),
    ({"scheduler": {"policy": "fifo"}},
     "scheduler.policy: 'fifo' is not allowed: Input should be 'in_order', 'static_list' or 'adaptive'"),
    ({"scheduler": {"engines": 0}}, "scheduler.engines: 0 is not allowed: Input should be greater than or equal to 1"),
    ({"scheduler": {"tasks": 8}}, "scheduler.tasks: 8 is not allowed: must be a power of two in [16, 65536]"),
    # strict types
    ({"engine": {"rows": "16"}}, "engine.rows: '16' is not allowed: Input should be a valid integer"),
    ({"engine": {"rows": 4.0}}, "engine.rows: 4.0 is not allowed: Input should be a valid integer"),
    ({"engine": {"rows": True}}, "engine.rows: True is not allowed: Input should be a valid integer"),
    ({"engine": 5}, "engine: 5 is not allowed: Input should be a valid dictionary or instance of EngineConfig"),
    # ranges
    ({"engine": {"rows": 0}}, "engine.rows: 0 is not allowed: Input should be greater than or equal to 1"),
    ({"engine": {"rows": 17}}, "engine.rows: 17 is not allowed: Input should be less than or equal to 16"),
    ({"engine": {"acc_bits": 8}}, "engine.acc_bits: 8 is not allowed: Input should be greater than or equal to 16"),
    ({"engine": {"acc_bits": 65}}, "engine.acc_bits: 65 is not allowed: Input should be less than or equal to 64"),
    ({"engine": {"threshold": 200}},
     "engine.threshold: 200 is not allowed: Input should be less than or equal to 128"),
    ({"clock": {"mhz": 0}}, "clock.mhz: 0 is not allowed: Input should be greater than 0"),
    ({"name": "Bad-Name"},
     "name: 'Bad-Name' is not allowed: String should match pattern '^[a-z][a-z0-9_]{0,31}$'"),
])
def test_single_problem(data, line):
    assert problems_of(data) == [line]


# The whole-config checks. CURRENT TEXT PINNED, it is wrong: _format_errors only treats a value_error as
# Cross-field checks name their own field(s); two problems give two lines.
def test_l1_too_small():
    data = {"l1": {"bytes": 256}}
    assert problems_of(data) == [
        "l1.bytes: 256 is too small: must hold one double-buffered tile, >= banks x line x 2 = 512"]


def test_l1_too_small_for_banks():
    data = {"l1": {"bytes": 512, "banks": 16}}
    assert problems_of(data) == [
        "l1.bytes: 512 is too small: must hold one double-buffered tile, >= banks x line x 2 = 2048"]


def test_out_bytes_too_small():
    data = {"l1": {"out_bytes": 256}, "engine": {"lanes": 64, "acc_bits": 64}}
    assert problems_of(data) == [
        "l1.out_bytes: 256 is too small: must hold >= 2 output lines of 512 bytes"]


def test_both_sizes_too_small_give_one_line_each():
    data = {"l1": {"bytes": 256, "out_bytes": 256}, "engine": {"lanes": 64, "acc_bits": 64}}
    assert problems_of(data) == [
        "l1.bytes: 256 is too small: must hold one double-buffered tile, >= banks x line x 2 = 512",
        "l1.out_bytes: 256 is too small: must hold >= 2 output lines of 512 bytes"]


def test_smallest_sizes_that_fit_are_accepted():
    cfg = from_dict({"l1": {"bytes": 512, "out_bytes": 256}, "engine": {"lanes": 16, "acc_bits": 64}})
    assert cfg.l1_lines == 8 and cfg.out_lines == 2


def test_many_problems_one_line_each():
    data = {"engine": {"lanes": 12, "overflow": "clamp", "rows": "2"}, "l1": {"banks": 3}, "foo": 1}
    assert problems_of(data) == [
        "engine.rows: '2' is not allowed: Input should be a valid integer",
        "engine.lanes: 12 is not allowed: must be a power of two in [2, 64]",
        "engine.overflow: 'clamp' is not allowed: Input should be 'wrap' or 'saturate'",
        "l1.banks: 3 is not allowed: must be a power of two in [1, 16]",
        "foo: unknown key (allowed: name, engine, l1, attention, memory, l3, scheduler, energy, clock, board)",
    ]


def test_from_dict_base():
    assert from_dict({"base": "tiny"}) == load("tiny")
    data = {"base": "tiny", "engine": {"lanes": 8}}
    cfg = from_dict(data)
    assert (cfg.name, cfg.engine.lanes, cfg.engine.rows, cfg.l1.bytes) == ("tiny", 8, 2, 4096)
    assert data == {"base": "tiny", "engine": {"lanes": 8}}  # the caller's dict is not changed
    assert problems_of({"base": "huge"}) == ["base: 'huge' is not a preset (allowed: default, tiny)"]
    assert problems_of({"base": "tiny", "engine": {"lanes": 32}}) == [
        "engine.scan_bytes: 16 is not allowed: must be >= lanes (32), since one L1 line holds a whole B segment"]


def test_float_field_takes_an_int():
    assert from_dict({"clock": {"mhz": 100}}).clock.mhz == 100.0


# ---- YAML files ----------------------------------------------------------------------------------

def test_duplicate_key_top_level(tmp_path):
    path = write(tmp_path, "name: a\nname: b\n")
    assert load_problems(path) == [f"name: duplicate key ({path}, line 2)"]


def test_duplicate_key_nested(tmp_path):
    path = write(tmp_path, "engine:\n  lanes: 4\n  lanes: 8\n")
    assert load_problems(path) == [f"engine.lanes: duplicate key ({path}, line 3)"]


@pytest.mark.parametrize("word, shown", [("no", "False"), ("off", "False"), ("yes", "True"), ("on", "True")])
def test_yaml_11_booleans_are_rejected(tmp_path, word, shown):
    path = write(tmp_path, f"engine:\n  overflow: {word}\n")
    assert load_problems(path) == [f"engine.overflow: {shown} is not allowed: Input should be 'wrap' or 'saturate'"
                                   + YAML_BOOL_HINT]


def test_quoted_string_is_not_an_int(tmp_path):
    path = write(tmp_path, 'engine:\n  rows: "16"\n')
    assert load_problems(path) == ["engine.rows: '16' is not allowed: Input should be a valid integer"]


def test_many_problems_from_a_file(tmp_path):
    path = write(tmp_path, "engine:\n  lanes: 12\n  overflow: no\nl1:\n  banks: 3\nextra: 1\n")
    assert load_problems(path) == [
        "engine.lanes: 12 is not allowed: must be a power of two in [2, 64]",
        "engine.overflow: False is not allowed: Input should be 'wrap' or 'saturate'" + YAML_BOOL_HINT,
        "l1.banks: 3 is not allowed: must be a power of two in [1, 16]",
        "extra: unknown key (allowed: name, engine, l1, attention, memory, l3, scheduler, energy, clock, board)",
    ]


def test_top_level_not_a_mapping(tmp_path):
    path = write(tmp_path, "- 1\n- 2\n")
    assert load_problems(path) == [f"{path}: top level must be a mapping, got list"]


def test_invalid_yaml_is_one_line_with_its_place(tmp_path):
    path = write(tmp_path, "engine: [\n")
    (line,) = load_problems(path)
    assert line == f"{path}, line 2 column 1: not valid YAML (while parsing a flow node expected the node content, " \
                   "but found '<stream end>')"


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_an_empty_file_is_an_error_not_the_base(tmp_path, text):
    (line,) = load_problems(write(tmp_path, text))
    assert "is empty (allowed: differences from a preset" in line


def test_base_chain_with_overrides(tmp_path):
    path = write(tmp_path, "base: tiny\nname: mine\nengine:\n  lanes: 8\n  overflow: saturate\n")
    cfg = load(path)
    tiny = load("tiny")
    assert cfg.name == "mine"
    assert cfg.engine.lanes == 8 and cfg.engine.overflow == "saturate"   # overridden
    assert cfg.engine.rows == tiny.engine.rows == 2                       # from tiny
    assert cfg.engine.scan_bytes == 16 and cfg.l1 == tiny.l1              # from tiny
    assert cfg.engine.acc_bits == HwConfig().engine.acc_bits              # from the defaults under tiny
    assert cfg.clock == HwConfig().clock


def test_base_without_overrides_is_the_preset(tmp_path):
    assert load(write(tmp_path, "base: tiny\n")) == load("tiny")
    assert load(write(tmp_path, "base: default\n", "d.yaml")) == load("default")


def test_base_override_is_validated_against_the_merge(tmp_path):
    path = write(tmp_path, "base: tiny\nengine:\n  lanes: 32\n")  # tiny has scan_bytes 16
    assert load_problems(path) == [
        "engine.scan_bytes: 16 is not allowed: must be >= lanes (32), since one L1 line holds a whole B segment"]


@pytest.mark.parametrize("value, shown", [("huge", "'huge'"), ("5", "5")])
def test_unknown_base(tmp_path, value, shown):
    path = write(tmp_path, f"base: {value}\n")
    assert load_problems(path) == [f"base: {shown} is not a preset (allowed: default, tiny)"]


def test_unknown_preset_name():
    assert load_problems("huge") == ["config: 'huge' is neither a preset (allowed: default, tiny) nor a YAML file"]


def test_missing_file(tmp_path):
    path = tmp_path / "missing.yaml"
    assert load_problems(path) == [f"config: file {str(path)!r} does not exist"]


def test_directory_is_not_a_file(tmp_path):
    assert load_problems(tmp_path) == [f"config: {str(tmp_path)!r} is not a file"]


# ---- presets, digest, round trip, frozen -------------------------------------------------------------

def test_presets_load_and_are_valid():
    assert preset_names() == ["default", "tiny"]
    for name in preset_names():
        cfg = load(name)
        assert cfg.name == name
        assert from_dict(cfg.model_dump()) == cfg   # re-validates
        assert cfg.l1_lines * cfg.line_bytes == cfg.l1.bytes
        assert cfg.lines_per_bank * cfg.l1.banks == cfg.l1_lines
        assert cfg.out_lines >= 2 and cfg.acc_min == -cfg.acc_max - 1
    tiny = load("tiny")
    assert (tiny.engine.rows, tiny.engine.lanes, tiny.line_bytes, tiny.l1.bytes) == (2, 4, 16, 4096)
    assert tiny.numeric() == {"acc_bits": 32, "overflow": "wrap"}


def test_digest_stable_and_distinct():
    a, b = load("tiny"), load("tiny")
    assert a.digest() == a.digest() == b.digest()
    assert len(a.digest()) == 10 and a.build_name == f"tiny-{a.digest()}"
    others = {load("default").digest(), HwConfig().digest(), a.digest(),
              from_dict({"name": "tiny", "engine": {"rows": 2, "lanes": 4, "scan_bytes": 16, "overflow": "saturate"},
                         "l1": {"bytes": 4096, "banks": 2, "out_bytes": 4096}}).digest(),
              from_dict({"clock": {"mhz": 999.0}}).digest()}
    assert len(others) == 5


def test_digest_ignores_key_order_and_int_vs_float():
    x = from_dict({"engine": {"lanes": 8, "rows": 2}, "clock": {"mhz": 500}})
    y = from_dict({"clock": {"mhz": 500.0}, "engine": {"rows": 2, "lanes": 8}})
    assert x == y and x.digest() == y.digest()


@pytest.mark.parametrize("source", ["tiny", "default", "custom"])
def test_yaml_round_trip(tmp_path, source):
    cfg = (from_dict({"name": "custom", "engine": {"overflow": "saturate", "acc_bits": 20, "threshold": 3},
                      "clock": {"mhz": 250.5}}) if source == "custom" else load(source))
    path = tmp_path / "saved.yaml"
    cfg.save(path)
    back = load(path)
    assert back == cfg and back.digest() == cfg.digest()
    assert back.to_yaml() == cfg.to_yaml() == path.read_text()


def test_frozen():
    cfg = load("tiny")
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        cfg.name = "other"
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        cfg.engine.lanes = 8
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        cfg.l1.bytes = 8192
    assert cfg == load("tiny")
    assert hash(cfg) == hash(load("tiny"))


@pytest.mark.parametrize("data, problem", [
    ({"l3": {"ways": 3}}, "l3.ways: 3 is not allowed: must be a power of two in [1, 256]"),
    ({"l3": {"banks": 6}}, "l3.banks: 6 is not allowed: must be a power of two in [1, 256]"),
    ({"l3": {"bytes": 1024}}, "l3.bytes: 1024 is too small: must hold at least one set per bank "
                              "(line_bytes x ways x banks = 16384)"),
    ({"memory": {"page_bytes": 4096}, "l3": {"line_bytes": 8192}},
     "memory.page_bytes: 4096 is not allowed: must be a multiple of l3.line_bytes (8192)"),
    ({"l3": {"line_bytes": 32}}, "l3.line_bytes: 32 is not allowed: must be >= one L1 line (64), the DMA beat"),
    ({"memory": {"ports": 3}}, "memory.ports: 3 is not allowed: must be a power of two in [1, 32]"),
    ({"memory": {"burst_beats": 512}}, "memory.burst_beats: 512 is not allowed: must be a power of two in [1, 256]"),
    ({"memory": {"interleave_bytes": 64}, "engine": {"scan_bytes": 128}, "l3": {"line_bytes": 128}},
     "memory.interleave_bytes: 64 is not allowed: must be >= one L1 line (128), the AXI beat"),
    ({"l3": {"replacement": "plru"}}, "l3.replacement: 'plru' is not allowed: Input should be 'lru' or 'random'"),
])
def test_memory_hierarchy_problems(data, problem):
    with pytest.raises(ConfigError) as err:
        from_dict(data)
    assert err.value.problems == [problem]
