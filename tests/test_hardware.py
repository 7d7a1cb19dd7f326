"""Machine descriptions: the shipped files load and document their sources, bad machines are
rejected with one line naming the file and the field, and the derived helpers behave."""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import assume, given
from hypothesis import strategies as st

from wpsim.errors import ConfigError
from wpsim.machines import HW_CONFIG_DIR, load_machine, machine_from_dict
from wpsim.machines.cpu import CpuMachine

SHIPPED = sorted(HW_CONFIG_DIR.glob("*.yaml"))
# CPU-specific checks run on the kind: cpu files; accelerator and GPU files (wpsim.sim.evaluate) are
# checked by tests/test_accel.py and tests/test_gpu.py, and by the source checks below.
CPU_SHIPPED = [
    p for p in SHIPPED if (yaml.safe_load(p.read_text()) or {}).get("kind", "cpu") == "cpu"
]
SPEC_CORES = {"xeon8160_2s": 48, "epyc7742": 64, "desktop8": 8, "jetson_tx2_a57": 4}
SOURCE_PREFIXES = ("spec", "measured", "estimate", "assumption", "configuration", "unused")


def minimal_machine() -> dict[str, Any]:
    """A small valid machine, as the mapping a YAML file would parse to."""
    return {
        "kind": "cpu",
        "name": "test machine",
        "sockets": 2,
        "cores_per_socket": 4,
        "clock_hz": 2.0e9,
        "peak_flops_per_cycle": {"float32": 32, "float64": 16},
        "caches": [
            {
                "name": "L1d",
                "scope": "core",
                "size_bytes": 32768,
                "bandwidth_Bps": 1e11,
                "latency_s": 2e-9,
            },
            {
                "name": "L2",
                "scope": "core",
                "size_bytes": 1048576,
                "bandwidth_Bps": 5e10,
                "latency_s": 6e-9,
            },
            {
                "name": "L3",
                "scope": "socket",
                "size_bytes": 16777216,
                "bandwidth_Bps": 3e10,
                "latency_s": 2e-8,
            },
        ],
        "memory": {"bandwidth_Bps": 1e11, "per_core_bandwidth_Bps": 1e10, "latency_s": 9e-8},
        "handoff": {"latency_s": 6e-8, "bandwidth_Bps": 3e10, "cross_socket_latency_s": 1.3e-7},
        "barrier": {"base_s": 2e-7, "per_doubling_s": 1e-7},
        "dispatch_overhead_s": 1e-6,
        "efficiency": {"gemm_by_n": [[1, 0.25], [16, 0.65], [256, 0.88]], "elementwise": 0.05},
        "corun_slowdown_per_core": 0.0,
    }


def with_value(data: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """A deep copy of ``data`` with the leaf at ``path`` replaced by ``value``."""
    data = copy.deepcopy(data)
    node: Any = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


def dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in path)


def rejection(data: Any, source: str = "bad.yaml") -> str:
    """Validate ``data``; it must fail with a one-line ConfigError naming ``source``."""
    with pytest.raises(ConfigError) as caught:
        machine_from_dict(data, source)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{source}: ")
    return message


def file_rejection(path: Path) -> str:
    """Load ``path``; it must fail with a one-line ConfigError naming the file."""
    with pytest.raises(ConfigError) as caught:
        load_machine(path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    return message


def write(tmp_path: Path, text: str, name: str = "machine.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---- shipped files --------------------------------------------------------------------------


def test_the_four_machine_files_ship() -> None:
    assert {"xeon8160_2s", "epyc7742", "desktop8", "xeon_kvm_2core"} <= {p.stem for p in SHIPPED}


def test_no_shipped_file_claims_to_be_this_computer() -> None:
    # `-m host` is the calibration of the computer wpsim runs on (wpsim.machines.host), never a file
    # calibrated elsewhere and committed as everyone's default
    assert "host" not in {p.stem for p in SHIPPED}
    for path in SHIPPED:
        assert "this host" not in load_machine(path).name, path


@pytest.mark.parametrize("path", CPU_SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_file_loads(path: Path) -> None:
    machine = load_machine(path)
    assert isinstance(machine, CpuMachine)
    assert machine.total_cores >= 1


@pytest.mark.parametrize(("stem", "cores"), sorted(SPEC_CORES.items()))
def test_spec_machines_have_their_core_counts(stem: str, cores: int) -> None:
    assert load_machine(HW_CONFIG_DIR / f"{stem}.yaml").total_cores == cores


def test_example_calibration_describes_the_computer_it_names() -> None:
    # Deliberately independent of os.cpu_count(): the file describes where it was written.
    machine = load_machine(HW_CONFIG_DIR / "xeon_kvm_2core.yaml")
    assert machine.total_cores == 2 and machine.calibration is not None
    assert "Xeon" in machine.name and "Xeon" in machine.calibration["cpu_model"]


def test_xeon_is_two_sockets_of_24() -> None:
    xeon = load_machine(HW_CONFIG_DIR / "xeon8160_2s.yaml")
    assert (xeon.sockets, xeon.cores_per_socket) == (2, 24)
    assert xeon.peak_flops_per_cycle["float32"] == 64
    assert xeon.peak_flops_per_cycle["float64"] == 32
    assert xeon.peak_flops_per_core("float32") == pytest.approx(xeon.clock_hz * 64)


def test_jetson_tx2_a57_peak_is_the_spec_sheets() -> None:
    # Jetson TX2 data sheet: 4 x Cortex-A57 at up to 2.0 GHz, 2 MiB shared L2; the A57 issues one
    # 128-bit FMLA per cycle: 4 fp32 lanes x 2 flop = 8, 2 fp64 lanes x 2 flop = 4.
    a57 = load_machine(HW_CONFIG_DIR / "jetson_tx2_a57.yaml")
    assert (a57.sockets, a57.cores_per_socket) == (1, 4)
    assert a57.peak_flops_per_core("float32") == pytest.approx(2.0e9 * 8)  # 16 GFLOP/s
    assert a57.peak_flops_per_core("float64") == pytest.approx(2.0e9 * 4)
    assert a57.total_cores * a57.peak_flops_per_core("float32") == pytest.approx(64e9)
    assert a57.shared_level is not None and a57.shared_level.size_bytes == 2 * 2**20


@pytest.mark.parametrize("path", CPU_SHIPPED, ids=lambda p: p.stem)
def test_shipped_values_are_physically_ordered(path: Path) -> None:
    machine = load_machine(path)
    levels = machine.caches
    # Farther levels are no faster and no closer than nearer ones; DRAM is the slowest of all.
    bandwidths = [c.bandwidth_Bps for c in levels] + [machine.memory.per_core_bandwidth_Bps]
    latencies = [c.latency_s for c in levels] + [machine.memory.latency_s]
    assert bandwidths == sorted(bandwidths, reverse=True)
    assert latencies == sorted(latencies)
    assert machine.memory.per_core_bandwidth_Bps <= machine.memory.bandwidth_Bps
    assert machine.handoff.cross_socket_latency_s >= machine.handoff.latency_s
    assert machine.shared_level is not None


@pytest.mark.parametrize("path", CPU_SHIPPED, ids=lambda p: p.stem)
def test_no_float16_peak_is_invented_for_these_cpus(path: Path) -> None:
    machine = load_machine(path)
    with pytest.raises(ConfigError, match="peak_flops_per_cycle"):
        machine.peak_flops_per_core("float16")


def test_spec_machines_share_one_efficiency_table() -> None:
    tables = {stem: load_machine(HW_CONFIG_DIR / f"{stem}.yaml").efficiency for stem in SPEC_CORES}
    assert len({(tuple(t.gemm_by_n), t.elementwise) for t in tables.values()}) == 1
    gemm = tables["xeon8160_2s"].gemm_by_n
    fractions = [fraction for _, fraction in gemm]
    assert gemm[0][0] == 1  # the GEMV point is explicit
    assert fractions == sorted(fractions)  # more right-hand columns never lower the efficiency
    assert fractions[0] < 0.5  # GEMV is far from peak


@pytest.mark.parametrize("stem", sorted(SPEC_CORES))
def test_spec_machines_carry_no_calibration_block(stem: str) -> None:
    assert load_machine(HW_CONFIG_DIR / f"{stem}.yaml").calibration is None


# ---- every numeric value says where it comes from --------------------------------------------

_NUMBER = re.compile(r"^[-+]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$")
_KEY = re.compile(r"^[A-Za-z_][\w]*\s*:\s*(.*)$")


def _numeric_value(code: str) -> bool:
    """Whether the YAML code (comment stripped) of one line holds a number or a list of numbers."""
    text = code.strip()
    if text.startswith("- "):
        text = text[2:].strip()
    match = _KEY.match(text)
    if match:
        text = match.group(1).strip()
    if _NUMBER.match(text):
        return True
    return text.startswith("[") and bool(re.search(r"\d", text))


def undocumented_numeric_lines(text: str) -> list[tuple[int, str]]:
    """Lines holding a numeric leaf without a ``#`` comment (a ``calibration:`` block is exempt:
    the block itself is the record of where its values come from)."""
    missing = []
    in_calibration = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line and not line[0].isspace() and not line.startswith("#"):
            in_calibration = line.startswith("calibration:")
        code, _, comment = line.partition("#")
        if in_calibration or not _numeric_value(code):
            continue
        if not comment.strip():
            missing.append((number, line))
    return missing


def numeric_comments(text: str) -> list[str]:
    return [
        line.partition("#")[2].strip()
        for line in text.splitlines()
        if _numeric_value(line.partition("#")[0]) and "#" in line
    ]


def test_the_source_checker_flags_bare_numbers() -> None:
    sample = "\n".join(
        [
            "sockets: 2",
            "clock_hz: 2.0e+9  # spec: data sheet",
            "name: L1d",
            "  - [1, 0.25]",
            "    size_bytes: 32768  # spec",
            "calibration:",
            "  numpy: 1.26",
        ]
    )
    assert undocumented_numeric_lines(sample) == [(1, "sockets: 2"), (4, "  - [1, 0.25]")]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_numeric_value_has_a_source_comment(path: Path) -> None:
    text = path.read_text()
    assert undocumented_numeric_lines(text) == []
    comments = numeric_comments(text)
    assert len(comments) >= 20  # the checker really saw the file's values
    for comment in comments:
        assert comment.startswith(SOURCE_PREFIXES), f"{path.name}: unknown source kind: {comment}"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_numbers_parse_as_numbers_not_strings(path: Path) -> None:
    # PyYAML reads 2.0e9 (no exponent sign) as a string; the files write 2.0e+9.
    def leaves(node: Any) -> list[Any]:
        if isinstance(node, dict):
            return [leaf for value in node.values() for leaf in leaves(value)]
        if isinstance(node, list):
            return [leaf for value in node for leaf in leaves(value)]
        return [node]

    data = yaml.safe_load(path.read_text())
    for leaf in leaves({k: v for k, v in data.items() if k not in {"kind", "name"}}):
        if isinstance(leaf, str):
            assert not re.match(r"^[-+.\d]", leaf), f"{path.name}: number read as string {leaf!r}"


# ---- bad machines: one line naming the file and the field --------------------------------------


def test_the_minimal_machine_is_valid() -> None:
    machine = machine_from_dict(minimal_machine(), "ok.yaml")
    assert machine.total_cores == 8


def test_zero_cores_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, yaml.safe_dump(with_value(minimal_machine(), ("cores_per_socket",), 0)))
    message = file_rejection(path)
    assert "field 'cores_per_socket'" in message
    assert "got 0" in message


def test_a_cache_larger_than_the_level_below_is_rejected(tmp_path: Path) -> None:
    data = with_value(minimal_machine(), ("caches", 0, "size_bytes"), 4 * 1048576)
    message = file_rejection(write(tmp_path, yaml.safe_dump(data)))
    assert "field 'caches'" in message
    assert "L2 1048576 B < L1d 4194304 B" in message


def test_negative_bandwidth_is_rejected(tmp_path: Path) -> None:
    data = with_value(minimal_machine(), ("memory", "bandwidth_Bps"), -1.0)
    message = file_rejection(write(tmp_path, yaml.safe_dump(data)))
    assert "field 'memory.bandwidth_Bps'" in message
    assert "got -1.0" in message


def test_an_elementwise_table_that_is_not_a_grid_is_rejected(tmp_path: Path) -> None:
    points = [[128, 1, 1e-5], [128, 4, 2e-5], [256, 1, 1.5e-5]]  # (256, 4) missing
    data = with_value(minimal_machine(), ("efficiency", "elementwise_step_s"), {"lstm": points})
    message = file_rejection(write(tmp_path, yaml.safe_dump(data)))
    assert "efficiency.elementwise_step_s" in message
    assert "full H x B grid" in message


@pytest.mark.parametrize(
    "index, curve, expected",
    [
        (1, [[1.0, 1.0], [0.5, 0.5]], "strictly increasing ratios"),
        (1, [[1.0, 1.5]], "less than or equal to 1"),
        (2, [[1.0, 1.0]], "hit_curve is for private"),
    ],
)
def test_a_bad_hit_curve_is_rejected(tmp_path: Path, index, curve, expected) -> None:
    data = with_value(minimal_machine(), ("caches", index, "hit_curve"), curve)
    message = file_rejection(write(tmp_path, yaml.safe_dump(data)))
    assert "caches" in message and expected in message


def test_an_unknown_field_is_rejected(tmp_path: Path) -> None:
    data = minimal_machine() | {"turbo_hz": 3.5e9}
    message = file_rejection(write(tmp_path, yaml.safe_dump(data)))
    assert "unknown field 'turbo_hz'" in message


def test_an_unknown_nested_field_is_rejected() -> None:
    data = with_value(minimal_machine(), ("caches", 1, "ways"), 16)
    assert "unknown field 'caches.1.ways'; expected one of name, scope" in rejection(data)


def test_a_misspelt_nested_field_names_the_closest_one() -> None:
    data = with_value(minimal_machine(), ("caches", 1, "size_byte"), 16)
    assert "unknown field 'caches.1.size_byte' (did you mean 'size_bytes'?)" in rejection(data)


def test_a_missing_field_is_rejected() -> None:
    data = minimal_machine()
    del data["memory"]["latency_s"]
    assert "field 'memory.latency_s': missing" in rejection(data)


@pytest.mark.parametrize("kind", ["tpu", "CPU", None, 3, ["cpu"], {"cpu": 1}])
def test_an_unknown_kind_is_rejected(kind: Any) -> None:
    message = rejection(with_value(minimal_machine(), ("kind",), kind))
    assert "field 'kind'" in message
    assert "expected one of" in message


def test_malformed_yaml_is_rejected(tmp_path: Path) -> None:
    message = file_rejection(write(tmp_path, "kind: cpu\nsockets: [1, 2\ncores_per_socket: 4\n"))
    assert "malformed YAML" in message
    assert "line" in message


def test_a_missing_file_is_rejected(tmp_path: Path) -> None:
    message = file_rejection(tmp_path / "no_such_machine.yaml")
    assert "file not found" in message


@pytest.mark.parametrize(
    "text",
    ["", "- kind: cpu\n- sockets: 2\n", "just a string\n"],
    ids=["empty", "list", "scalar"],
)
def test_a_file_that_is_not_a_mapping_is_rejected(tmp_path: Path, text: str) -> None:
    assert "expected a mapping" in file_rejection(write(tmp_path, text))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("cores_per_socket",), "many"),
        (("sockets",), 1.5),
        (("sockets",), True),  # YAML `yes`
        (("clock_hz",), "fast"),
        (("clock_hz",), False),
        (("caches",), "L1d"),
        (("caches", 0, "size_bytes"), "32K"),
        (("memory",), 1e11),
        (("peak_flops_per_cycle", "float32"), True),
        (("peak_flops_per_cycle",), [32, 16]),
        (("efficiency", "gemm_by_n"), [[1, 0.25, 3]]),
        (("efficiency", "elementwise"), "low"),
        (("caches", 0, "scope"), "cluster"),
    ],
    ids=lambda v: dotted(v) if isinstance(v, tuple) else repr(v),
)
def test_wrong_types_are_rejected_naming_the_field(
    tmp_path: Path, path: tuple[str | int, ...], value: Any
) -> None:
    data = with_value(minimal_machine(), path, value)
    message = file_rejection(write(tmp_path, yaml.safe_dump(data)))
    assert f"field '{dotted(path)}" in message


def test_efficiency_points_must_increase() -> None:
    data = with_value(minimal_machine(), ("efficiency", "gemm_by_n"), [[16, 0.6], [1, 0.2]])
    assert "field 'efficiency.gemm_by_n'" in rejection(data)


def test_private_levels_come_before_shared_ones() -> None:
    data = with_value(minimal_machine(), ("caches", 1, "scope"), "socket")
    data["caches"][2]["scope"] = "core"
    assert "field 'caches'" in rejection(data)


def test_duplicate_cache_names_are_rejected() -> None:
    data = with_value(minimal_machine(), ("caches", 1, "name"), "L1d")
    assert "distinct cache names" in rejection(data)


# ---- property tests of the validators ---------------------------------------------------------

BANDWIDTH_PATHS = [
    ("memory", "bandwidth_Bps"),
    ("memory", "per_core_bandwidth_Bps"),
    ("handoff", "bandwidth_Bps"),
    ("caches", 0, "bandwidth_Bps"),
    ("caches", 1, "bandwidth_Bps"),
    ("caches", 2, "bandwidth_Bps"),
    ("clock_hz",),
    ("peak_flops_per_cycle", "float32"),
]
LATENCY_PATHS = [
    ("memory", "latency_s"),
    ("handoff", "latency_s"),
    ("handoff", "cross_socket_latency_s"),
    ("caches", 0, "latency_s"),
    ("barrier", "base_s"),
    ("barrier", "per_doubling_s"),
    ("dispatch_overhead_s",),
    ("corun_slowdown_per_core",),
]
non_positive = st.one_of(
    st.floats(max_value=0.0, allow_nan=False),
    st.integers(max_value=0),
)


@given(path=st.sampled_from(BANDWIDTH_PATHS), value=non_positive)
def test_any_non_positive_rate_is_rejected_naming_the_field(
    path: tuple[str | int, ...], value: float
) -> None:
    message = rejection(with_value(minimal_machine(), path, value))
    assert f"field '{dotted(path)}'" in message


@given(path=st.sampled_from(BANDWIDTH_PATHS), value=st.floats(min_value=1e-30, max_value=1e30))
def test_any_positive_rate_is_accepted(path: tuple[str | int, ...], value: float) -> None:
    machine_from_dict(with_value(minimal_machine(), path, value), "ok.yaml")


@given(
    path=st.sampled_from(LATENCY_PATHS),
    value=st.floats(max_value=0.0, exclude_max=True, allow_nan=False),
)
def test_any_negative_time_is_rejected_naming_the_field(
    path: tuple[str | int, ...], value: float
) -> None:
    message = rejection(with_value(minimal_machine(), path, value))
    assert f"field '{dotted(path)}'" in message


@given(
    field=st.sampled_from(["sockets", "cores_per_socket"]),
    value=st.integers(max_value=0),
)
def test_any_non_positive_core_count_is_rejected_naming_the_field(field: str, value: int) -> None:
    message = rejection(with_value(minimal_machine(), (field,), value))
    assert f"field '{field}'" in message


@given(sockets=st.integers(1, 64), cores=st.integers(1, 4096))
def test_any_positive_core_count_is_accepted(sockets: int, cores: int) -> None:
    data = minimal_machine() | {"sockets": sockets, "cores_per_socket": cores}
    assert machine_from_dict(data, "ok.yaml").total_cores == sockets * cores


@given(size=st.integers(max_value=0), level=st.integers(0, 2))
def test_any_non_positive_cache_size_is_rejected(size: int, level: int) -> None:
    message = rejection(with_value(minimal_machine(), ("caches", level, "size_bytes"), size))
    assert f"field 'caches.{level}.size_bytes'" in message


def cache_list(sizes: list[int], n_private: int) -> list[dict[str, Any]]:
    return [
        {
            "name": f"C{i}",
            "scope": "core" if i < n_private else "socket",
            "size_bytes": size,
            "bandwidth_Bps": 1e10,
            "latency_s": 1e-9 * (i + 1),
        }
        for i, size in enumerate(sizes)
    ]


@given(data=st.data())
def test_any_non_decreasing_cache_sizes_are_accepted(data: st.DataObject) -> None:
    sizes = sorted(data.draw(st.lists(st.integers(1, 2**40), min_size=1, max_size=5)))
    n_private = data.draw(st.integers(0, len(sizes)))
    machine = machine_from_dict(
        minimal_machine() | {"caches": cache_list(sizes, n_private)}, "ok.yaml"
    )
    assert [c.size_bytes for c in machine.caches] == sizes
    assert len(machine.private_levels) == n_private


@given(sizes=st.lists(st.integers(1, 2**40), min_size=2, max_size=5))
def test_any_decreasing_cache_sizes_are_rejected(sizes: list[int]) -> None:
    assume(any(outer < inner for inner, outer in zip(sizes, sizes[1:], strict=False)))
    message = rejection(minimal_machine() | {"caches": cache_list(sizes, len(sizes))})
    assert "field 'caches'" in message
    assert "at least as large" in message


# ---- derived helpers ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def xeon() -> CpuMachine:
    return load_machine(HW_CONFIG_DIR / "xeon8160_2s.yaml")


@pytest.mark.parametrize(
    ("cores", "sockets", "per_socket"),
    [(1, 1, 1), (8, 1, 8), (24, 1, 24), (48, 2, 24)],
)
def test_with_cores_fills_socket_zero_first(
    xeon: CpuMachine, cores: int, sockets: int, per_socket: int
) -> None:
    smaller = xeon.with_cores(cores)
    assert (smaller.sockets, smaller.cores_per_socket) == (sockets, per_socket)
    assert smaller.total_cores == cores
    assert smaller.caches == xeon.caches
    assert smaller.memory == xeon.memory
    assert xeon.total_cores == 48  # the original is unchanged


@pytest.mark.parametrize("cores", [0, -1, 49, 1000])
def test_with_cores_outside_the_machine_is_rejected(xeon: CpuMachine, cores: int) -> None:
    with pytest.raises(ConfigError, match=r"--cores .*expected 1\.\.48"):
        xeon.with_cores(cores)


def test_with_cores_rejects_a_partial_second_socket(xeon: CpuMachine) -> None:
    with pytest.raises(ConfigError, match="whole sockets"):
        xeon.with_cores(30)


@given(cores=st.integers(1, 48))
def test_with_cores_keeps_whole_sockets_or_fails(cores: int) -> None:
    machine = load_machine(HW_CONFIG_DIR / "xeon8160_2s.yaml")
    if cores <= 24 or cores % 24 == 0:
        smaller = machine.with_cores(cores)
        assert smaller.total_cores == cores
        assert smaller.cores_per_socket == min(cores, 24)
    else:
        with pytest.raises(ConfigError):
            machine.with_cores(cores)


def test_barrier_examples(xeon: CpuMachine) -> None:
    base, step = xeon.barrier.base_s, xeon.barrier.per_doubling_s
    assert xeon.barrier_s(1) == 0.0
    assert xeon.barrier_s(0) == 0.0
    assert xeon.barrier_s(2) == pytest.approx(base + step)
    assert xeon.barrier_s(3) == pytest.approx(base + 2 * step)
    assert xeon.barrier_s(4) == pytest.approx(base + 2 * step)
    assert xeon.barrier_s(5) == pytest.approx(base + 3 * step)
    assert xeon.barrier_s(48) == pytest.approx(base + 6 * step)
    assert 0.5e-6 < xeon.barrier_s(48) < 2e-6  # order of EPCC syncbench on a 2-socket node


@given(
    n=st.integers(1, 1 << 20),
    base=st.floats(0, 1e-5, allow_nan=False),
    step=st.floats(0, 1e-5, allow_nan=False),
)
def test_barrier_is_a_tree_of_ceil_log2_levels(n: int, base: float, step: float) -> None:
    data = with_value(minimal_machine(), ("barrier",), {"base_s": base, "per_doubling_s": step})
    machine = machine_from_dict(data, "ok.yaml")
    expected = 0.0 if n == 1 else base + step * math.ceil(math.log2(n))
    assert machine.barrier_s(n) == pytest.approx(expected)
    assert machine.barrier_s(n + 1) >= machine.barrier_s(n)


def test_a_cell_a_calibrated_file_misses_is_charged_by_the_defaults_and_noted() -> None:
    """The example calibration predates SRU: SRU takes the defaults every cell takes on a file
    without per-cell tables, and the note says which tables are missing; an option of a
    registered cell (a projected LSTM, a ReLU RNN) takes its name's tables."""
    from wpsim.machines.cpu import CELL_KERNEL_TABLES

    machine = load_machine(HW_CONFIG_DIR / "xeon_kvm_2core.yaml")
    assert isinstance(machine, CpuMachine)
    sru = machine.cell_calibration("sru")
    assert sru.elementwise_step_s is None
    assert (sru.task_overhead_s, sru.step_overhead_s) == (0.0, 0.0)
    assert sru.gemm_by_n_h == machine.efficiency.gemm_by_n_h
    assert sru.missing == CELL_KERNEL_TABLES
    note = machine.fallback_note("sru", "sru")
    assert note is not None and "'sru'" in note and "predates" in note
    assert "gru, lstm, rnn" in note and "efficiency.elementwise" in note
    lstm = machine.cell_calibration("lstm")
    assert lstm.missing == () and lstm.elementwise_step_s == (
        machine.efficiency.elementwise_step_s or {}
    ).get("lstm")
    assert machine.task_overhead_s["lstm"] == lstm.task_overhead_s > 0
    yaml_cell = machine.cell_calibration(None)
    assert yaml_cell.missing == CELL_KERNEL_TABLES and yaml_cell.elementwise_step_s is None
    assert "declared in YAML" in (machine.fallback_note(None, "cells/mine.yaml") or "")
    # a table the file gives no cell is no fallback: nothing to note
    partial = machine.model_copy(update={"task_overhead_s": {}})
    assert partial.cell_calibration("sru").missing == (
        "efficiency.elementwise_step_s",
        "step_overhead_s",
    )
    spec_sheet = load_machine(HW_CONFIG_DIR / "xeon8160_2s.yaml")
    assert isinstance(spec_sheet, CpuMachine)
    assert spec_sheet.fallback_note("sru", "sru") is None
