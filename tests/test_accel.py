"""The multi-core LSTM accelerator: machine files, buffer residency, and the three modes.

These tests pin mechanisms (what fits stays, what does not streams; what each mode shares), not
the headline numbers of reports/lstm_accelerator.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from wpsim.cli import main
from wpsim.errors import ConfigError
from wpsim.machines import HW_CONFIG_DIR, load_machine, machine_from_dict
from wpsim.machines.accelerator import AcceleratorMachine
from wpsim.model.workload import Workload
from wpsim.policies import get_policy
from wpsim.sim import accelerator as accel

MACHINE_FILE = HW_CONFIG_DIR / "lstm_accel_2core.yaml"


@pytest.fixture(scope="module")
def machine() -> AcceleratorMachine:
    return load_machine(MACHINE_FILE)


def lstm(layers: int = 2, hidden: int = 128, seq_len: int = 20, **kw) -> Workload:
    return Workload(
        cell="lstm",
        layers=layers,
        hidden=hidden,
        input=kw.pop("input", hidden),
        seq_len=seq_len,
        dtype=kw.pop("dtype", "float16"),
        **kw,
    )


def layer_bytes(w: Workload) -> int:
    return w.layer_weight_bytes(1)


# ---- the machine file ------------------------------------------------------------------------


def test_the_two_core_design_loads(machine: AcceleratorMachine) -> None:
    assert machine.kind == "accelerator"
    assert machine.total_cores == 2
    assert machine.peak_flops_per_core("float16") == 2 * 256 * 1.0e9
    # the weight buffer feeds the MAC array: 2 bytes per fp16 MAC per cycle
    assert machine.weight_buffer.bandwidth_Bps == pytest.approx(256 * 2 * machine.clock_hz)


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("macs_per_cycle", "float16"), "many", "macs_per_cycle.float16"),
        (("weight_buffer", "size_bytes"), 0, "weight_buffer.size_bytes"),
        (("noc", "latency_s"), -1.0, "noc.latency_s"),
        (("mac_efficiency",), 1.5, "mac_efficiency"),
        (("cores",), True, "cores"),
        (("noc", "hops"), 3, "noc.hops"),
    ],
)
def test_bad_values_are_one_line_errors_naming_file_and_field(
    tmp_path: Path, path: tuple, value, field: str
) -> None:
    data = yaml.safe_load(MACHINE_FILE.read_text())
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    bad = tmp_path / "bad_accel.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as caught:
        load_machine(bad)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith((f"{bad}: field '{field}'", f"{bad}: unknown field '{field}'"))


def test_a_dtype_the_design_lacks_is_an_error_not_a_guess(machine) -> None:
    with pytest.raises(ConfigError, match="macs_per_cycle.*float64"):
        accel.simulate(lstm(dtype="float64"), machine, "sequential")


def test_gpu_policies_are_refused_on_the_accelerator(machine) -> None:
    with pytest.raises(ConfigError, match="persistent"):
        accel.simulate(lstm(), machine, "persistent")


def test_unknown_kind_lists_the_new_kinds() -> None:
    with pytest.raises(ConfigError, match="accelerator, cpu, gpu"):
        machine_from_dict({"kind": "tpu"}, "x.yaml")


# ---- weight buffer residency -----------------------------------------------------------------


def test_weights_that_fit_stay_others_stream_every_step(machine) -> None:
    w = lstm(layers=1, hidden=128, seq_len=10)
    fits = accel.simulate(w, machine, "sequential")
    assert fits.level_bytes["DRAM"] == pytest.approx(w.layer_weight_bytes(0))  # one cold read
    small = machine.with_weight_buffer(layer_bytes(w) // 2)
    streams = accel.simulate(w, small, "sequential")
    assert streams.level_bytes["DRAM"] == pytest.approx(10 * w.layer_weight_bytes(0))
    assert streams.makespan_s > fits.makespan_s


def test_warm_start_removes_only_the_compulsory_misses(machine) -> None:
    w = lstm(layers=2, hidden=128, seq_len=10)
    assert accel.simulate(w, machine, "sequential", warm=True).level_bytes["DRAM"] == 0.0
    small = machine.with_weight_buffer(layer_bytes(w) // 4)  # smaller than W_ih and W_hh
    streamed = accel.simulate(w, small, "sequential", warm=True).level_bytes["DRAM"]
    assert streamed == pytest.approx(10 * sum(w.layer_weight_bytes(i) for i in range(2)))


def test_lru_interleaving_thrashes_when_two_layers_do_not_fit_together(machine) -> None:
    # oldest-wavefront-first on one core interleaves the layers: each fits alone, not together
    w = lstm(layers=2, hidden=128, seq_len=10)
    buffer = int(1.5 * layer_bytes(w))
    one_core = machine.with_weight_buffer(buffer).with_cores(1)
    sequential = accel.simulate(w, one_core, "sequential", warm=True)
    interleaved = accel.simulate(w, one_core, "pipeline", warm=True)
    assert sequential.level_bytes["DRAM"] == 0.0  # layer-major: one layer at a time
    assert interleaved.level_bytes["DRAM"] > 0.0


# ---- the three modes -------------------------------------------------------------------------


def test_multiprogramming_shares_nothing_once_weights_are_resident(machine) -> None:
    w = lstm(layers=2, hidden=128, seq_len=20)
    mp = get_policy("multiprogram", instances=2)
    assert accel.simulate(w, machine, mp, warm=True).speedup == pytest.approx(2.0, rel=1e-9)
    # from a cold start both cores load their weights at once and share the DRAM
    cold = accel.simulate(w, machine, get_policy("multiprogram", instances=2))
    assert 1.0 < cold.speedup < 2.0


def test_multiprogramming_is_bandwidth_bound_when_weights_stream(machine) -> None:
    w = lstm(layers=1, hidden=256, seq_len=20)
    small = machine.with_weight_buffer(layer_bytes(w) // 4)
    mp = accel.simulate(w, small, get_policy("multiprogram", instances=2), warm=True)
    assert mp.speedup == pytest.approx(1.0, rel=0.05)  # one DRAM channel for both cores


def test_multithreading_pipelines_layers_with_fill_and_drain(machine) -> None:
    w = lstm(layers=2, hidden=128, seq_len=30)
    ideal = accel.simulate(w, machine, "pipeline", cost="ideal")
    assert ideal.speedup == pytest.approx(2 * 30 / 31)  # T + 1 steps instead of 2T
    model = accel.simulate(w, machine, "pipeline", warm=True)
    assert model.speedup < ideal.speedup  # plus the NoC hand-off of h every step
    assert model.level_bytes["handoff"] == pytest.approx(30 * w.batch * w.hidden * 2)


def test_multithreading_round_robin_is_limited_by_the_busiest_core(machine) -> None:
    w = lstm(layers=3, hidden=128, seq_len=40)  # core 0 runs layers 0 and 2
    assert accel.simulate(w, machine, "pipeline", cost="ideal").speedup < 1.55


def test_helper_cores_pay_a_barrier_and_an_all_gather_per_step(machine) -> None:
    w = lstm(layers=1, hidden=128, seq_len=20)
    helper = accel.simulate(w, machine, "helper", warm=True)
    assert helper.speedup < 2.0
    plan_model = accel.AccelCostModel(machine, accel._plan(w, get_policy("helper"), 1, "cell"))
    one = plan_model.start(0, (0,), 0)
    two = accel.AccelCostModel(machine, plan_model.plan).start(0, (0, 1), 0)
    gather = w.batch * w.hidden * w.dtype_bytes / 2 / machine.noc.bandwidth_Bps
    assert two.fixed_s - one.fixed_s == pytest.approx(machine.barrier_s(2) + gather)
    # larger layers amortise the per-step exchange
    big = accel.simulate(lstm(layers=1, hidden=512, seq_len=20), machine, "helper", warm=True)
    assert big.speedup > helper.speedup


def test_helper_row_split_makes_a_too_large_layer_fit(machine) -> None:
    w = lstm(layers=1, hidden=256, seq_len=20)
    buffer = int(0.75 * layer_bytes(w))  # the layer does not fit one core, half of it does
    m = machine.with_weight_buffer(buffer)
    helper = accel.simulate(w, m, "helper", warm=True)
    assert helper.level_bytes["DRAM"] == 0.0
    assert helper.speedup > 2.0  # super-linear: the single core streams every step


def test_mac_array_row_quantisation(machine) -> None:
    # 4H = 40 rows on a 16-row array: 3 passes (48 rows), of which 8 rows idle
    w = Workload(cell="lstm", hidden=10, input=16, seq_len=1, dtype="float16")
    model = accel.AccelCostModel(machine, accel._plan(w, get_policy("sequential"), 1, "cell"))
    mac_cycles = model._mac_cycles(2.0 * 40 * 16, ((40, 16),), 40 * 16, 1)
    assert mac_cycles == 3 * 1


@pytest.mark.parametrize(
    ("policy", "instances"),
    [("sequential", 1), ("helper", 1), ("pipeline", 1), ("multiprogram", 2), ("wavefront", 1)],
)
def test_closed_forms_track_the_simulation(machine, policy: str, instances: int) -> None:
    w = lstm(layers=2, hidden=192, seq_len=24)
    sim = accel.simulate(w, machine, get_policy(policy, instances=instances), warm=True)
    pred = accel.predict(w, machine, get_policy(policy, instances=instances), warm=True)
    assert pred.makespan_s == pytest.approx(sim.makespan_s, rel=0.03)


def test_core_sweep_keeps_the_single_core_baseline(machine) -> None:
    w = lstm(layers=4, hidden=128, seq_len=16)
    base = {n: accel.simulate(w, machine, "pipeline", cores=n, warm=True) for n in (1, 2, 4)}
    assert len({round(r.sequential_s, 15) for r in base.values()}) == 1
    assert base[1].speedup == pytest.approx(1.0, rel=0.01)
    assert base[1].makespan_s > base[2].makespan_s > base[4].makespan_s


# ---- command line ----------------------------------------------------------------------------


def test_compare_runs_on_the_accelerator(capsys, tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("cell: lstm\nlayers: 2\nhidden: 64\ninput: 64\nseq_len: 8\ndtype: float16\n")
    assert main(["compare", "-m", "lstm_accel_2core", "-w", str(path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    names = [row["policy"].split(",")[0] for row in rows]
    assert names == ["sequential", "wavefront", "pipeline", "helper", "multiprogram"]
    assert all(math.isfinite(row["speedup"]) for row in rows)
    assert main(["predict", "-m", "lstm_accel_2core", "-w", str(path), "-p", "helper"]) == 0
