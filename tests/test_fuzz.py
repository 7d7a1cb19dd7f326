"""Fuzzing: hostile workload, machine and sweep files and command-line flags never get a traceback.

Each case runs the command line in-process (:func:`wpsim.cli.main`) on a generated file or argv
and checks the one rule of the command line: exit status 0 (the input was fine) or 2 (it was not;
1 for a sweep whose points failed), never an exception, and on failure one line on stderr naming
what was wrong. Values come from the kinds that broke the command line before (non-finite and
huge numbers, booleans, YAML tags and aliases, dates, nested and empty collections, duplicate and
unknown keys, raw bytes), mixed with valid ones so that mutations reach past the first check.

The available memory is pretended to be 64 MB while fuzzing, so that a valid but large workload
is refused by the size guard (itself under test) instead of simulated: every case stays fast.
Examples are drawn deterministically (``derandomize``), so CI runs the same cases every time:
:data:`CASES` in all.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from unittest import mock

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wpsim import guards
from wpsim.cli import main

ROOT = Path(__file__).resolve().parent.parent
TINY = str(ROOT / "workloads" / "tiny.yaml")
EXAMPLES = {"workload": 150, "machine": 150, "sweep": 70, "cli": 150}
#: Fuzz cases the suite runs (the sum over the four tests below).
CASES = sum(EXAMPLES.values())

FUZZ = dict(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)

#: YAML text that broke, or could break, a loader or a model: tags, aliases, dates, bases...
TRICKY = [
    ".inf",
    "-.inf",
    ".nan",
    ".NaN",
    "1e400",
    "-1e400",
    "1e-400",
    "1e-320",
    "-0.0",
    "4.0",
    "1.5",
    "true",
    "false",
    "yes",
    "no",
    "on",
    "off",
    "null",
    "~",
    "''",
    "0",
    "-1",
    "1",
    "2",
    "3",
    "64",
    "100000000",
    "0x7fffffffffffffff",
    "0x8000000000000000",
    "9" * 30,
    "-" + "9" * 25,
    "1_000",
    "0o17",
    "0b101",
    "1:30:00",
    "2024-13-45",
    "2024-01-01",
    "2024-01-01T25:61:00",
    '"\\x00"',
    '"\\ud800"',
    "[]",
    "{}",
    "[1, [2, [3]]]",
    "{a: 1}",
    "[" * 70 + "]" * 70,
    "!!binary AAAA",
    "!!binary '@@@'",
    "!!float x",
    "!!int 1.5",
    "!!str 5",
    "!!timestamp x",
    "!!python/object:os.system {}",
    "!!python/name:os.system",
    "*nope",
    "&a 1",
    "!!set {a, b}",
    "!!omap [a: 1]",
    "!!pairs [a: 1]",
    "[*x]",
    "|\n  text",
    ">-\n x",
    "'",
    '"',
    "{",
    "]",
    "? a",
    "- a",
    "@x",
    "`x`",
    "%YAML 1.1",
    "---",
    "...",
    "#",
    "a: b: c",
    "\t",
    "cafe\u0301",
    "\u202e",
]

scalars = st.one_of(
    st.sampled_from(TRICKY),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=12).map(json.dumps),
)


#: Draws that are true now and then (hypothesis favours simple values: a plain
#: ``integers(0, 9) == 0`` would come out true far more often than one time in ten).
rarely = st.sampled_from([False] * 9 + [True])
sometimes = st.sampled_from([False] * 3 + [True])


def run(argv: list[str]) -> tuple[int, str, str]:
    """``wpsim ARGV`` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's own errors and --help
            code = exit_.code if isinstance(exit_.code, int) else 2
    return code, out.getvalue(), err.getvalue()


def check(argv: list[str], ok: tuple[int, ...] = (0, 2)) -> None:
    with mock.patch.object(guards, "available_memory_bytes", lambda: 64 * 2**20):
        code, _, err = run(argv)
    assert "Traceback" not in err, err
    assert code in ok, (argv, code, err)
    if code == 2:
        lines = [line for line in err.splitlines() if "warning:" not in line]
        assert len(lines) == 1, err
        assert " error: " in lines[0], err


def corrupt(text: str, data: st.DataObject) -> bytes:
    """``text`` as bytes, sometimes with raw bytes spliced in."""
    raw = text.encode()
    if data.draw(rarely, label="corrupt?"):
        at = data.draw(st.integers(0, len(raw)), label="at")
        raw = raw[:at] + data.draw(st.binary(min_size=1, max_size=8), label="bytes") + raw[at:]
    return raw


# ---- workload files ---------------------------------------------------------------------------
WORKLOAD = {
    "name": "tiny",
    "cell": "lstm",
    "layers": "3",
    "hidden": "16",
    "input": "8",
    "seq_len": "6",
    "batch": "1",
    "bidirectional": "false",
    "phase": "inference",
    "dtype": "float32",
    "density": "1.0",
    "output": "none",
    "output_size": "0",
}


@settings(max_examples=EXAMPLES["workload"], **FUZZ)
@given(data=st.data())
def test_workload_files(tmp_path_factory, data):
    fields = dict(WORKLOAD)
    for key in data.draw(st.lists(st.sampled_from(sorted(fields)), max_size=2), label="bad"):
        fields[key] = data.draw(scalars, label=key)
    lines = [f"{k}: {v}" for k, v in fields.items()]
    extra = data.draw(st.sampled_from(["", "", "", "drop", "unknown", "duplicate", "typo"]))
    if extra == "drop":
        lines.pop(data.draw(st.integers(0, len(lines) - 1)))
    elif extra == "unknown":
        lines.append(f"{data.draw(st.text(min_size=1, max_size=8))!r}: 1")
    elif extra == "duplicate":
        lines.append(data.draw(st.sampled_from(lines)))
    elif extra == "typo":
        lines.append("hiden: 16")
    path = tmp_path_factory.mktemp("w") / "w.yaml"
    path.write_bytes(corrupt("\n".join(lines) + "\n", data))
    command = data.draw(st.sampled_from(["graph", "predict", "simulate"]), label="command")
    check([command, "-w", str(path), "--json"])


# ---- machine files ----------------------------------------------------------------------------
MACHINES = {"xeon8160_2s": "wavefront", "lstm_accel_2core": "wavefront", "v100": "persistent"}


def leaves(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from leaves(value, (*path, index))
    yield path


@settings(max_examples=EXAMPLES["machine"], **FUZZ)
@given(data=st.data())
def test_machine_files(tmp_path_factory, data):
    name = data.draw(st.sampled_from(sorted(MACHINES)), label="machine")
    machine = yaml.safe_load((ROOT / "hw_configs" / f"{name}.yaml").read_text())
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        path = data.draw(st.sampled_from([p for p in leaves(machine) if p]), label="path")
        node = machine
        for key in path[:-1]:
            node = node[key]
        action = data.draw(st.sampled_from(["set", "set", "set", "drop", "unknown"]))
        if action == "drop":
            del node[path[-1]]
        elif action == "unknown" and isinstance(node, dict):
            node[path[-1] + "x"] = 1
        else:
            node[path[-1]] = "@@HOSTILE@@"
            text = yaml.safe_dump(machine, sort_keys=False)
            machine = text.replace("'@@HOSTILE@@'", data.draw(scalars, label="value"), 1)
            break
    text = machine if isinstance(machine, str) else yaml.safe_dump(machine, sort_keys=False)
    path = tmp_path_factory.mktemp("m") / "m.yaml"
    path.write_bytes(corrupt(text, data))
    check(["predict", "-w", TINY, "-m", str(path), "-p", MACHINES[name], "--cores", "2", "--json"])


# ---- sweep files ------------------------------------------------------------------------------
PARAMS = [
    "workload.layers",
    "workload.hidden",
    "workload.seq_len",
    "workload.cell",
    "workload.hiden",
    "hardware.clock_hz",
    "hardware.caches.L2.size_bytes",
    "hardware.caches.9.size_bytes",
    "hardware.memory.bandwidth_Bps",
    "hardware.nope",
    "cores",
    "chunk",
    "helpers",
    "instances",
    "granularity",
    "cost",
    "policy",
    "policy.helpers",
    "run.nope",
    "nonsense",
]


#: Valid values of each varied parameter, mixed with hostile ones in the lists.
VALID = {
    "workload.layers": ["2", "3"],
    "workload.hidden": ["8", "16"],
    "workload.seq_len": ["4", "6"],
    "workload.cell": ["lstm", "gru"],
    "hardware.clock_hz": ["2.0e9", "3.0e9"],
    "hardware.caches.L2.size_bytes": ["1048576"],
    "hardware.memory.bandwidth_Bps": ["1.0e11"],
    "cores": ["1", "2", "4"],
    "chunk": ["1", "2"],
    "helpers": ["1", "2"],
    "instances": ["1", "2"],
    "granularity": ["cell", "op"],
    "cost": ["model", "ideal"],
    "policy": ["wavefront", "layerwise", "{name: wavefront, helpers: 2}"],
    "policy.helpers": ["1", "2"],
}
PARAMS = [
    *VALID,
    "workload.hiden",
    "hardware.caches.9.size_bytes",
    "hardware.nope",
    "run.nope",
    "nonsense",
]


def values(param: str) -> st.SearchStrategy[str]:
    valid = VALID.get(param, ["1"])
    return st.one_of(st.sampled_from(valid), st.sampled_from(valid), scalars)


@settings(max_examples=EXAMPLES["sweep"], **FUZZ)
@given(data=st.data())
def test_sweep_files(tmp_path_factory, data):
    mode = data.draw(st.sampled_from(["grid", "zip", "random"]), label="mode")
    if data.draw(rarely, label="bad mode?"):
        mode = data.draw(scalars, label="mode value")
    lines = ["workload: tiny", "hardware: xeon8160_2s", f"mode: {mode}"]
    if mode == "random" or data.draw(rarely, label="samples?"):
        lines.append(f"samples: {data.draw(st.one_of(st.sampled_from(['3', '1']), scalars))}")
    for key in ("seed", "engine", "policy", "run"):
        if data.draw(rarely, label=f"{key}?"):
            lines.append(f"{key}: {data.draw(scalars, label=key)}")
    lines.append("vary:")
    params = data.draw(st.lists(st.sampled_from(PARAMS), min_size=1, max_size=3, unique=True))
    length = data.draw(st.integers(1, 3), label="length")  # one length: zip mode works too
    for param in params:
        if mode == "random" and data.draw(sometimes, label="range?"):
            low = data.draw(st.one_of(st.sampled_from(["1", "2"]), scalars), label="min")
            high = data.draw(st.one_of(st.sampled_from(["4", "8"]), scalars), label="max")
            value = f"{{min: {low}, max: {high}}}"
        else:
            drawn = data.draw(st.lists(values(param), min_size=length, max_size=length))
            value = "[" + ", ".join(drawn) + "]"
        lines.append(f"  {param}: {value}")
    folder = tmp_path_factory.mktemp("s")
    spec = folder / "s.yaml"
    spec.write_bytes(corrupt("\n".join(lines) + "\n", data))
    check(
        ["sweep", str(spec), "--out", str(folder / "out"), "-j", "1", "-q", "--max-points", "3"],
        ok=(0, 1, 2),
    )


# ---- command-line flags -----------------------------------------------------------------------
WORDS = st.one_of(
    st.sampled_from(
        [
            "0",
            "-1",
            "1",
            "2",
            "7",
            "48",
            "49",
            "100000",
            "1e3",
            "2.5",
            "",
            " ",
            "x",
            "nan",
            "inf",
            "-5",
            "9" * 40,
            "--",
            "-",
            "tiny",
            "demo",
            "deep_lstm",
            "wavefront",
            "layerwise",
            "helper",
            "multiprogram",
            "persistent",
            "nope",
            "cell",
            "op",
            "ideal",
            "model",
            "xeon8160_2s",
            "v100",
            "lstm_accel_2core",
            "/dev/zero",
            "/dev/full",
            "/",
            "/proc",
            "/nonexistent/x",
            "g.xyz",
            "/proc/x.png",
            "~",
            "a,b",
            "1,2",
            "\u202e",
        ]
    ),
    st.text(
        alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
        max_size=10,
    ),
)
FLAGS = [
    "-w",
    "--workload",
    "--granularity",
    "--chunk",
    "-m",
    "--hardware",
    "-p",
    "--policy",
    "--cores",
    "--helpers",
    "--instances",
    "--cost",
    "--json",
    "--profile",
    "--analytic",
    "--policies",
    "--allow-large",
    "--gantt",
    "--plot",
    "--graphml",
    "--dot",
    "--trace",
    "--nope",
    "-h",
]
VALUELESS = {"--json", "--profile", "--analytic", "--allow-large", "-h"}


@settings(max_examples=EXAMPLES["cli"], **FUZZ)
@given(data=st.data())
def test_command_line_flags(tmp_path_factory, data):
    command = data.draw(st.sampled_from(["graph", "simulate", "predict", "compare", "nope", ""]))
    argv = [command] if command else []
    for flag in data.draw(st.lists(st.sampled_from(FLAGS), max_size=5), label="flags"):
        argv.append(flag)
        if flag not in VALUELESS:
            value = data.draw(WORDS, label=flag)
            if flag in ("--gantt", "--plot", "--trace", "--graphml", "--dot") and value == "x":
                # a writable target (a figure's .json suffix is refused: no slow drawing)
                value = str(tmp_path_factory.mktemp("o") / "out.json")
            argv.append(value)
    check(argv)
