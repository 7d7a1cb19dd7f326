"""GPU models: on-chip capacity of persistent kernels, step-time mechanisms, algorithms.

The tests pin the mechanisms (capacity limits, latency- vs throughput-bound steps, what each
synchronisation and layout optimisation changes), not the published headline numbers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from wpsim.cli import main
from wpsim.cost import gpu as gpu_cost
from wpsim.errors import ConfigError
from wpsim.machines import HW_CONFIG_DIR, load_machine
from wpsim.machines.gpu import DIAMOS_2016, ZHU_2018, GpuMachine, PersistentKernel
from wpsim.model.workload import Workload
from wpsim.sim import gpu
from wpsim.sim.engine import simulate as cpu_simulate


@pytest.fixture(scope="module")
def titanx() -> GpuMachine:
    return load_machine(HW_CONFIG_DIR / "titanx_maxwell.yaml")


@pytest.fixture(scope="module")
def v100() -> GpuMachine:
    return load_machine(HW_CONFIG_DIR / "v100.yaml")


def rnn(hidden: int = 1152, batch: int = 4, **kw) -> Workload:
    return Workload(
        cell=kw.pop("cell", "rnn"),
        hidden=hidden,
        input=kw.pop("input", hidden),
        seq_len=kw.pop("seq_len", 16),
        batch=batch,
        **kw,
    )


# ---- machine files ---------------------------------------------------------------------------


#: SMs and FP32 peak (TFLOP/s) on each GPU's spec sheet
GPU_SPECS = {
    "titanx_maxwell": (24, 6.144),
    "v100": (80, 15.67),
    "m40": (24, 6.84),
    "p100_pcie": (56, 9.34),
    "titanx_pascal": (28, 10.97),
    "titan_xp": (30, 12.15),
    "gtx1080ti": (28, 11.34),
    "t4": (40, 8.14),
    "jetson_tx1": (2, 0.511),
    "mi25": (64, 12.29),
    "vega_fe": (64, 13.11),
    "h100_sxm": (132, 66.9),
    "h200_sxm": (132, 66.9),
}


def all_gpus() -> list[GpuMachine]:
    return [load_machine(HW_CONFIG_DIR / f"{stem}.yaml") for stem in GPU_SPECS]


@pytest.mark.parametrize("stem", sorted(GPU_SPECS))
def test_gpu_files_load_with_their_spec_values(stem: str) -> None:
    machine = load_machine(HW_CONFIG_DIR / f"{stem}.yaml")
    assert machine.kind == "gpu"
    sms, tflops = GPU_SPECS[stem]
    assert machine.sms == sms
    assert machine.peak_flops("float32") == pytest.approx(tflops * 1e12, rel=0.005)


def test_every_gpu_file_is_tested() -> None:
    stems = {
        path.stem
        for path in HW_CONFIG_DIR.glob("*.yaml")
        if yaml.safe_load(path.read_text()).get("kind") == "gpu"
    }
    assert stems <= set(GPU_SPECS)


def test_titanx_register_file_is_the_readme_6_3_mb(titanx) -> None:
    assert titanx.register_file_bytes == pytest.approx(6.29e6, rel=0.01)


def test_gpu_files_share_the_rules_that_have_no_spec() -> None:
    gpus = all_gpus()
    first = gpus[0]
    ratio = first.sync.global_barrier_s / first.l2.latency_s
    for machine in gpus[1:]:
        # the persistent-kernel rules (the warp width is the vendor's: 32, or 64 on AMD)
        shared = machine.persistent.model_copy(update={"warp_width": first.persistent.warp_width})
        assert shared == first.persistent
        assert machine.gemm.kernels_per_step == first.gemm.kernels_per_step
        assert machine.gemm.sparse_bandwidth_efficiency == first.gemm.sparse_bandwidth_efficiency
        assert (machine.kernel_launch_s, machine.kernel_gap_s) == (
            first.kernel_launch_s,
            first.kernel_gap_s,
        )
        # the global barrier is the same number of L2 round trips on every GPU
        assert machine.sync.global_barrier_s / machine.l2.latency_s == pytest.approx(
            ratio, rel=0.01
        )


#: GPUs with no public GEMM benchmark: their files take, by a stated rule, another GPU's tables
GEMM_TABLES_BY_RULE = {"h100_sxm": "v100", "h200_sxm": "v100"}


def test_each_gpu_has_its_own_gemm_efficiency_and_bandwidth() -> None:
    gpus = all_gpus()
    measured = [
        m for stem, m in zip(GPU_SPECS, gpus, strict=True) if stem not in GEMM_TABLES_BY_RULE
    ]
    curves = {tuple(m.gemm.efficiency_by_n) for m in measured}
    assert len(curves) == len(measured)  # measured per GPU, not one shared table
    for stem, source in GEMM_TABLES_BY_RULE.items():
        borrowed = load_machine(HW_CONFIG_DIR / f"{stem}.yaml").gemm
        assert (
            borrowed.efficiency_by_n
            == load_machine(HW_CONFIG_DIR / f"{source}.yaml").gemm.efficiency_by_n
        )
    for m in gpus:
        efficiencies = [m.gemm.efficiency(n) for n in (1, 16, 64, 7000)]
        # narrower than measured (16): the 16-column value (GEMV-like, bandwidth-bound kernels)
        assert efficiencies[0] == efficiencies[1] < efficiencies[2] <= 1.0
        assert efficiencies[-1] <= 1.0
        assert m.memory.bandwidth_Bps < m.l2.bandwidth_Bps


def test_a_small_weight_matrix_fills_fewer_sms(v100) -> None:
    large = v100.gemm.efficiency(32, 4096 * 4096)
    assert v100.gemm.efficiency(32) == large
    assert v100.gemm.efficiency(32, 512 * 512) < v100.gemm.efficiency(32, 1024 * 512) < large
    # thousands of columns give every SM tiles, whatever the weight matrix
    assert v100.gemm.efficiency(7000, 512 * 512) == v100.gemm.efficiency(7000)
    assert v100.gemm.efficiency(128, 512 * 512) < v100.gemm.efficiency(1000, 512 * 512)


def test_no_fp16_peak_is_invented_for_maxwell(titanx) -> None:
    with pytest.raises(ConfigError, match="flops_per_cycle_per_sm.*float16"):
        titanx.peak_flops("float16")


def test_fp16_gemms_run_on_tensor_cores_and_element_wise_work_on_the_vector_units(v100) -> None:
    assert v100.uses_tensor_cores("float16") and not v100.uses_tensor_cores("float32")
    assert v100.gemm_peak_flops("float16") == pytest.approx(4 * v100.peak_flops("float16"))
    assert v100.gemm_peak_flops("float32") == v100.peak_flops("float32")
    w16 = rnn(hidden=4096, batch=256, dtype="float16")
    gemm16 = gpu_cost.gemm_s(v100, w16, 1e12, 128, 4096 * 4096)
    expected = 1e12 / (v100.gemm_peak_flops("float16") * v100.gemm.tensor_efficiency_by_n[-2][1])
    assert gemm16 == pytest.approx(expected)
    assert gpu_cost.elementwise_s(v100, w16, 1e9, 256) == pytest.approx(
        1e9 / (v100.peak_flops("float16") * v100.gemm.efficiency(256))
    )


def test_bfloat16_needs_a_bfloat16_entry(v100) -> None:
    w = rnn(hidden=256, dtype="bfloat16")
    with pytest.raises(ConfigError, match="flops_per_cycle_per_sm.*bfloat16"):
        gpu.evaluate("predict", w, v100, "gemm")
    ampere = v100.model_copy(
        update={
            "flops_per_cycle_per_sm": {**v100.flops_per_cycle_per_sm, "bfloat16": 256},
            "tensor_flops_per_cycle_per_sm": {"float16": 1024, "bfloat16": 1024},
        }
    )
    assert gpu.evaluate("predict", w, ampere, "gemm").makespan_s > 0


def test_a_bad_gpu_value_is_one_line_naming_file_and_field(tmp_path: Path) -> None:
    data = yaml.safe_load((HW_CONFIG_DIR / "v100.yaml").read_text())
    data["persistent"]["register_fraction"] = 1.5
    bad = tmp_path / "bad_gpu.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as caught:
        load_machine(bad)
    assert str(caught.value).startswith(f"{bad}: field 'persistent.register_fraction'")
    assert "\n" not in str(caught.value)


# ---- capacity --------------------------------------------------------------------------------


def test_largest_fp32_persistent_layer_on_titanx(titanx) -> None:
    w = rnn(hidden=8, batch=1)
    assert gpu_cost.max_persistent_hidden(titanx, w) == 1152
    # the whole register file would hold ~1254 units (the README's "about 1200")
    whole = titanx.model_copy(
        update={"persistent": titanx.persistent.model_copy(update={"register_fraction": 1.0})}
    )
    assert gpu_cost.max_persistent_hidden(whole, w) == math.isqrt(titanx.register_file_bytes // 4)


def test_capacity_follows_dtype_gates_and_density(v100) -> None:
    dense = gpu_cost.max_persistent_hidden(v100, rnn(batch=1))
    half = gpu_cost.max_persistent_hidden(v100, rnn(batch=1, dtype="float16"))
    lstm = gpu_cost.max_persistent_hidden(v100, rnn(batch=1, cell="lstm"))
    assert half == pytest.approx(dense * math.sqrt(2), rel=0.01)
    assert lstm == pytest.approx(dense / 2, rel=0.01)
    sparse = [
        gpu_cost.max_persistent_hidden(v100, rnn(batch=1, density=d)) for d in (0.7, 0.2, 0.05)
    ]
    assert dense < sparse[1] < sparse[2]
    # 4-byte value + 2-byte index: above density 2/3 a sparse layer holds less than a dense one
    assert sparse[0] < dense


def test_sparse_rows_are_padded_to_the_warp_width(v100) -> None:
    entries = gpu_cost.stored_entries(v100, rnn(hidden=1000, density=0.1))  # 100 per row -> 128
    assert entries == 1000 * 128
    assert gpu_cost.stored_entries(v100, rnn(hidden=1000, density=0.001)) == 1000 * 32
    # an LSTM's W_hh has 4H rows; SRU has no recurrent matrix to keep on chip
    assert gpu_cost.stored_entries(v100, rnn(hidden=1000, density=0.1, cell="lstm")) == 4000 * 128
    assert gpu_cost.stored_entries(v100, rnn(hidden=1000, cell="sru")) == 0


def test_sparse_gemm_reads_csr_whatever_the_density(v100) -> None:
    # cuSPARSE holds a dense matrix in CSR too: 4 B values + 4 B indices + row pointers
    dense = gpu_cost.gemm_step(v100, rnn(hidden=1000, cell="lstm"), sparse=True)
    assert dense["weight_bytes"] == 4000 * 1000 * 8 + 4001 * 4


def test_one_column_of_activations_must_fit_shared_memory(v100) -> None:
    # very sparse weights fit the registers; h of one column (H x 4 B) must fit 72 KiB of smem
    assert gpu_cost.fits_on_chip(v100, rnn(hidden=16000, batch=32, density=0.001))
    assert not gpu_cost.fits_on_chip(v100, rnn(hidden=20000, batch=1, density=0.001))


def test_a_projected_lstm_is_sized_by_its_declaration(v100) -> None:
    """A projected LSTM's recurrent products read h, P wide, and its W_hr (P x H) stays on chip
    with W_hh (4H x P): sized from the declaration, not by H (which would cap it at the H
    whose h fills shared memory)."""
    capacity = gpu_cost.activation_capacity_bytes(v100)
    registers = gpu_cost.weight_capacity_bytes(v100)
    # dense, P = 16: the registers decide, 4 B x (4H x 16 + 16 x H) <= capacity
    dense = rnn(hidden=2048, batch=1, cell="lstm(proj_size=16)", input=16)
    largest = gpu_cost.max_persistent_hidden(v100, dense)
    assert largest == int(registers // (4 * (4 * 16 + 16)))
    assert largest * 4 > capacity  # sizing h by H would have stopped at capacity / 4
    assert gpu_cost.activation_bytes(dense, largest) == 16 * 4
    # sparse, H = 20000: the weights fit either way, h of one column only when it is P wide
    shape = dict(hidden=20000, batch=1, density=0.001, input=64)
    projected = rnn(cell="lstm(proj_size=64)", **shape)
    plain = rnn(cell="lstm", **shape)
    assert gpu_cost.stored_entries(v100, projected) == 4 * 20000 * 32 + 64 * 32  # padded rows
    assert gpu_cost.activation_bytes(projected) == 64 * 4 < capacity
    assert gpu_cost.activation_bytes(plain) == 20000 * 4 > capacity
    assert gpu_cost.fits_on_chip(v100, projected) and not gpu_cost.fits_on_chip(v100, plain)
    # a cell whose recurrence is element-wise keeps no matrix and reads no one else's state;
    # it has no persistent kernel, and the note says why rather than "does not fit"
    sru = rnn(cell="sru", hidden=512)
    assert gpu_cost.activation_bytes(sru) == 0 and gpu_cost.stored_entries(v100, sru) == 0
    note = gpu.evaluate("simulate", sru, v100, "persistent").extra["note"]
    assert note == "sru has no recurrent matrix to keep on chip; ran gemm per step instead"


def test_a_layer_too_large_falls_back_to_per_step_gemm(titanx) -> None:
    w = rnn(hidden=1536, batch=4)
    result = gpu.evaluate("simulate", w, titanx, "persistent")
    assert result.extra["algorithm"] == "gemm"
    assert not result.extra["persistent_fits"]
    assert "does not fit" in result.extra["note"]
    assert result.speedup == pytest.approx(1.0)


# ---- persistent step time --------------------------------------------------------------------


def test_barrier_kernel_is_latency_bound_at_small_batch(titanx) -> None:
    steps = [
        gpu_cost.persistent_step(titanx, rnn(batch=b), DIAMOS_2016)["step_s"] for b in (1, 2, 3)
    ]
    assert steps[0] == pytest.approx(steps[1]) == pytest.approx(steps[2])  # throughput ~ batch
    big = gpu_cost.persistent_step(titanx, rnn(batch=64), DIAMOS_2016)
    tflops = big["flops"] / big["step_s"]
    plateau = titanx.peak_flops("float32") * titanx.persistent.efficiency
    assert tflops == pytest.approx(plateau, rel=0.01)


def test_timestamp_flags_expose_less_synchronisation(v100) -> None:
    for batch in (1, 4, 32):
        w = rnn(hidden=1024, batch=batch)
        flags = gpu_cost.persistent_step(v100, w, PersistentKernel("flags", False, False))["step_s"]
        barrier = gpu_cost.persistent_step(v100, w, PersistentKernel("barrier", False, False))[
            "step_s"
        ]
        assert flags <= barrier
    w1 = rnn(hidden=1024, batch=1)
    assert (
        gpu_cost.persistent_step(v100, w1, ZHU_2018)["step_s"]
        < gpu_cost.persistent_step(v100, w1, DIAMOS_2016)["step_s"]
    )


def test_bank_aware_layout_and_wide_loads_raise_sparse_issue_rate(v100) -> None:
    w = rnn(hidden=2304, batch=4, density=0.3)
    factor = {
        (bank, wide): gpu_cost.persistent_step(v100, w, PersistentKernel("flags", bank, wide))[
            "issue_factor"
        ]
        for bank in (False, True)
        for wide in (False, True)
    }
    assert factor[(True, True)] == pytest.approx(4 / 5)  # 4 FMAs per entry + 1 wide load
    assert factor[(True, False)] == pytest.approx(4 / 8)
    assert factor[(False, False)] == pytest.approx(4 / (4 + 4 * 3.53))
    assert factor[(False, False)] < factor[(False, True)] < factor[(True, True)]
    dense = gpu_cost.persistent_step(v100, rnn(hidden=2304, batch=4), ZHU_2018)
    assert dense["issue_factor"] == 1.0


def test_dense_gemm_reads_weights_from_l2_only_when_they_fit(v100) -> None:
    fits = gpu_cost.gemm_step(v100, rnn(hidden=1024, batch=1))  # 4 MiB fp32
    spills = gpu_cost.gemm_step(v100, rnn(hidden=2048, batch=1))  # 16 MiB
    assert fits["level"] == "L2" and spills["level"] == "DRAM"
    assert spills["memory_s"] == pytest.approx(2048**2 * 4 / v100.memory.bandwidth_Bps)


# ---- whole runs ------------------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["inference", "training"])
@pytest.mark.parametrize("hidden", [512, 1536])  # all weights in L2 / none
@pytest.mark.parametrize("policy", ["gemm", "sparse_gemm", "persistent", "persistent_barrier"])
def test_one_kernel_at_a_time_closed_form_equals_simulation(v100, policy, hidden, phase) -> None:
    w = Workload(
        cell="lstm",
        layers=2,
        hidden=hidden,
        input=0 if phase == "training" else 256,
        seq_len=12,
        batch=2,
        density=0.4,
        output="linear",
        output_size=64,
        phase=phase,
        bidirectional=hidden > 512,
    )
    sim = gpu.evaluate("simulate", w, v100, policy)
    pred = gpu.evaluate("predict", w, v100, policy)
    assert pred.makespan_s == pytest.approx(sim.makespan_s, rel=1e-9)
    assert pred.dram_bytes == pytest.approx(sim.dram_bytes, rel=1e-9)
    for name, seconds in sim.extra["phase_s"].items():
        assert pred.extra["phase_s"][name] == pytest.approx(seconds, rel=1e-9, abs=1e-15)


def test_training_time_splits_into_forward_backward_data_and_weights(v100) -> None:
    w = Workload(cell="gru", hidden=1024, input=0, seq_len=20, batch=32, phase="training")
    for engine in ("simulate", "predict"):
        r = gpu.evaluate(engine, w, v100, "gemm")
        phases = r.extra["phase_s"]
        assert sum(phases.values()) == pytest.approx(r.makespan_s)
        # the transposed product runs at the machine's T N rate (element-wise work aside)
        elements = 3 * 1024 * 1024
        forward_rate = v100.gemm.efficiency(32, elements)
        slower = forward_rate / v100.gemm.efficiency(32, elements, transposed=True)
        assert slower > 1.1  # DeepBench's V100 T N GEMMs at 32 columns: 0.49 of peak, N N 0.59
        assert phases["backward_data"] == pytest.approx(phases["forward"] * slower, rel=0.05)
        assert 0 < phases["backward_weights"] < phases["forward"]  # one GEMM of B*T columns
    # without a transposed curve the backward product costs what the forward one does
    plain = v100.model_copy(
        update={"gemm": v100.gemm.model_copy(update={"transposed_efficiency_by_n": None})}
    )
    phases = gpu.evaluate("predict", w, plain, "gemm").extra["phase_s"]
    assert phases["backward_data"] == pytest.approx(phases["forward"], rel=0.05)
    inference = gpu.evaluate("predict", w.model_copy(update={"phase": "inference"}), v100, "gemm")
    assert inference.extra["phase_s"]["backward_data"] == 0.0


def test_skip_input_drops_the_input_gemm(v100) -> None:
    skip = Workload(cell="lstm", hidden=1024, input=0, seq_len=20, batch=32)
    full = skip.model_copy(update={"input": 1024})
    for engine in ("simulate", "predict"):
        with_input = gpu.evaluate(engine, full, v100, "gemm")
        without = gpu.evaluate(engine, skip, v100, "gemm")
        assert without.makespan_s < with_input.makespan_s
        assert with_input.n_tasks == without.n_tasks + 1  # the hoisted input GEMM


def test_short_kernels_wait_for_the_host_long_ones_expose_the_gap(v100) -> None:
    tiny = gpu_cost.gemm_step(v100, rnn(hidden=32, batch=1))
    big = gpu_cost.gemm_step(v100, rnn(hidden=4096, batch=64))
    k = v100.gemm.kernels_per_step
    assert tiny["step_s"] == pytest.approx(k * v100.kernel_launch_s)
    assert big["launch_s"] == pytest.approx(k * v100.kernel_gap_s)


def test_streams_overlap_layers_when_weights_stay_in_l2(v100) -> None:
    deep_small = Workload(cell="lstm", layers=4, hidden=128, input=128, seq_len=40, batch=8)
    sim = gpu.evaluate("simulate", deep_small, v100, "streams")
    assert sim.speedup > 2.0  # launch-bound steps of 4 layers overlap
    pred = gpu.evaluate("predict", deep_small, v100, "streams")
    assert pred.makespan_s == pytest.approx(sim.makespan_s, rel=0.1)
    one_layer = Workload(cell="lstm", layers=1, hidden=128, input=128, seq_len=40, batch=8)
    assert gpu.evaluate("simulate", one_layer, v100, "streams").speedup <= 1.0


def test_cpu_names_map_to_gpu_policies_and_cpu_only_modes_are_refused(v100) -> None:
    w = rnn(hidden=256, batch=2)
    assert gpu.evaluate("predict", w, v100, "layerwise").policy == "gemm"
    assert gpu.evaluate("predict", w, v100, "wavefront").policy == "streams"
    with pytest.raises(ConfigError, match="not a GPU policy"):
        gpu.evaluate("predict", w, v100, "pipeline")


def test_gpu_policies_are_refused_by_the_cpu_engine() -> None:
    xeon = load_machine(HW_CONFIG_DIR / "xeon8160_2s.yaml")
    with pytest.raises(ConfigError, match="gpu machine"):
        cpu_simulate(rnn(hidden=32), xeon, "persistent", cores=2)


# ---- command line ----------------------------------------------------------------------------


def test_simulate_json_reports_the_largest_persistent_layer(capsys, tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("cell: rnn\nhidden: 1152\ninput: 1152\nseq_len: 8\nbatch: 4\n")
    args = ["simulate", "-m", "titanx_maxwell", "-w", str(path), "-p", "persistent", "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["max_persistent_hidden"] == 1152
    assert out["algorithm"] == "persistent"
    assert main(["simulate", "-m", "titanx_maxwell", "-w", str(path), "-p", "persistent"]) == 0
    assert "max persistent hidden  1152" in capsys.readouterr().out


def test_compare_runs_on_a_gpu(capsys, tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("cell: rnn\nhidden: 1024\ninput: 1024\nseq_len: 8\nbatch: 4\ndensity: 0.2\n")
    assert main(["compare", "-m", "v100", "-w", str(path), "--json"]) == 0
    rows = {row["policy"]: row for row in json.loads(capsys.readouterr().out)["rows"]}
    assert set(rows) == {"gemm", "sparse_gemm", "streams", "persistent_barrier", "persistent"}
    assert rows["persistent"]["speedup"] > rows["gemm"]["speedup"] == pytest.approx(1.0)
