"""The closed forms without a graph against the graph-based closed forms they replace.

``tests/analytic_reference.py`` is ``wpsim.sim.closed_forms`` as it was before it stopped building the
task graph: it costs the classes of the compiled graph's tasks and walks the graph for the
critical path. Over random workloads, machines, policies, chunks and core counts the two must
agree to 1e-9 relative: makespan, baseline, tasks, DRAM bytes, utilisation and every cause of
both break-downs (to 1e-9 of the makespan), and fail with the same one-line errors.

Where they differ on purpose (see :mod:`wpsim.sim.closed_forms`): several instances of a workload under
a policy other than ``multiprogram`` (the reference used the band formula of the first instance
alone), and the op granularity (not modelled in closed form).
"""

from __future__ import annotations

from pathlib import Path

import analytic_reference as reference
import numpy as np
import pytest
from conftest import make_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wpsim.cells import cell_names
from wpsim.machines import load_machine, resolve_machine_path
from wpsim.machines.cpu import CpuMachine
from wpsim.model.workload import Workload
from wpsim.policies import get_policy
from wpsim.sim import closed_forms as analytic

ROOT = Path(__file__).resolve().parent.parent
#: every registered cell (read from their declarations), and the built-ins' other options
CELLS = [*cell_names(), "rnn(nonlinearity='relu')", "lstm(proj_size=5)", "qrnn(window=2)"]
NAMED = ["xeon8160_2s", "epyc7742", "desktop8"]
#: the calibration of a 2-core machine that the repository ships (dispatch tables, a hit curve,
#: measured element-wise steps, GEMM grids by hidden size)
CALIBRATED = ROOT / "hw_configs" / "xeon_kvm_2core.yaml"


@st.composite
def workloads(draw) -> Workload:
    output = draw(st.sampled_from(["none", "none", "linear", "softmax"]))
    return Workload(
        cell=draw(st.sampled_from(CELLS)),
        layers=draw(st.integers(1, 4)),
        hidden=draw(st.sampled_from([8, 16, 64, 256, 512])),
        input=draw(st.sampled_from([0, 4, 16, 64, 256, 700])),  # 0: skip input
        seq_len=draw(st.integers(1, 13)),
        batch=draw(st.sampled_from([1, 2, 3, 16])),
        bidirectional=draw(st.booleans()),
        phase=draw(st.sampled_from(["inference", "training"])),
        dtype=draw(st.sampled_from(["float32", "float32", "float64", "bfloat16"])),
        density=draw(st.sampled_from([1.0, 1.0, 0.3])),
        output=output,
        output_size=0 if output == "none" else draw(st.sampled_from([5, 1000])),
        streams=draw(st.sampled_from([1, 1, 1, 2])),
    )


@st.composite
def machines(draw) -> CpuMachine:
    kind = draw(st.sampled_from(["named", "calibrated", "made"]))
    if kind == "named":
        return load_machine(resolve_machine_path(draw(st.sampled_from(NAMED))))
    if kind == "calibrated":
        return load_machine(CALIBRATED)
    m = make_machine(
        cores=draw(st.sampled_from([2, 4, 6])),
        sockets=draw(st.sampled_from([1, 2])),
        l2_bytes=draw(st.sampled_from([64 << 10, 1 << 20])),
        llc_bytes=draw(st.sampled_from([1 << 20, 8 << 20])),
        dispatch_s=draw(st.sampled_from([0.0, 2e-6])),
        corun=draw(st.sampled_from([0.0, 0.05])),
    )
    update: dict = {}
    if draw(st.booleans()):
        caches = [c.model_copy() for c in m.caches]
        caches[1] = caches[1].model_copy(update={"hit_curve": [(0.5, 1.0), (1.5, 0.3), (3.0, 0.0)]})
        update["caches"] = caches
    if draw(st.booleans()):
        update["dispatch_overhead_busy_s"] = [(1e-6, 3e-6), (1e-4, 9e-6)]
        update["dispatch_overhead_sequence_s"] = 1e-6
        update["dispatch_overhead_group_s"] = [(1e-6, 2e-6), (5e-5, 4e-6)]
    efficiency = {
        "product_fixed_s": draw(st.sampled_from([0.0, 1e-6])),
        "gemm_by_n": [(1, 0.3), (4, 0.7), (64, 0.9)],
    }
    update["efficiency"] = m.efficiency.model_copy(update=efficiency)
    update["recurrent_gemv_max_batch"] = draw(st.sampled_from([0, 2]))
    update["input_split_by_time_max_bytes"] = draw(st.sampled_from([0, 1 << 20]))
    update["elementwise_split_across_helpers"] = draw(st.booleans())
    update["step_overhead_s"] = {"lstm": 1e-6, "gru": 2e-6}
    update["task_overhead_s"] = {"rnn": 3e-6, "lstm": 1e-6}
    return CpuMachine.model_validate(m.model_copy(update=update).model_dump())


POLICIES = [
    ("sequential", {}),
    ("layerwise", {}),
    ("wavefront", {}),
    ("pipeline", {}),
    ("helper", {}),
    ("helper", {"helpers": 2}),
    ("wavefront", {"helpers": 2}),
    ("pipeline", {"helpers": 3}),
    ("multiprogram", {"instances": 2}),
    ("multiprogram", {"instances": 3, "helpers": 2}),
]


def _run(predict, workload, machine, policy, cores, chunk, cost):
    try:
        return predict(
            workload,
            machine,
            get_policy(policy[0], **policy[1]),
            cores=cores,
            chunk=chunk,
            cost=cost,
        )
    except Exception as error:  # noqa: BLE001 - compared below
        return error


def assert_same(old, new) -> None:
    if isinstance(old, Exception) or isinstance(new, Exception):
        assert type(old) is type(new) and str(old) == str(new), (old, new)
        return
    for name in ("makespan_s", "sequential_s", "dram_bytes", "utilization"):
        a, b = getattr(old, name), getattr(new, name)
        assert b == pytest.approx(a, rel=1e-9, abs=1e-300), name
    assert old.n_tasks == new.n_tasks
    for view in ("breakdown_s", "core_breakdown_s"):
        a, b = getattr(old, view), getattr(new, view)
        assert set(a) == set(b), view
        for cause in a:
            assert abs(a[cause] - b[cause]) <= 1e-9 * old.makespan_s, (view, cause, a, b)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    workload=workloads(),
    machine=machines(),
    policy=st.sampled_from(POLICIES),
    cores_fraction=st.floats(0.0, 1.0),
    chunk=st.integers(1, 5),
    cost=st.sampled_from(["model", "model", "ideal"]),
)
def test_closed_forms_equal_the_graph_based_ones(
    workload, machine, policy, cores_fraction, chunk, cost
):
    cores = max(1, round(cores_fraction * machine.total_cores))
    old = _run(reference.predict, workload, machine, policy, cores, chunk, cost)
    new = _run(analytic.predict, workload, machine, policy, cores, chunk, cost)
    assert_same(old, new)


@settings(max_examples=40, deadline=None)
@given(
    workload=workloads(),
    machine=machines(),
    chunk=st.integers(1, 4),
    policy=st.sampled_from(POLICIES[:8]),
    cost=st.sampled_from(["model", "ideal"]),
)
def test_a_block_of_points_equals_each_point(workload, machine, chunk, policy, cost):
    """:func:`wpsim.sim.closed_forms.predict_many` over mixed sizes, chunks and cores gives each
    point's :func:`~wpsim.sim.closed_forms.predict`, bit for bit (errors for the points that fail)."""
    points = []
    for hidden, seq_len, extra_chunk in [
        (workload.hidden, workload.seq_len, 0),
        (32, 40, 1),
        (workload.hidden, 2, 0),
        (128, 1, 2),
    ]:
        w = workload.model_copy(update={"hidden": hidden, "seq_len": seq_len})
        for cores in sorted({1, 2, machine.total_cores // 2 or 1, machine.total_cores}):
            points.append((w, cores, chunk + extra_chunk))
    p = get_policy(policy[0], **policy[1])
    many = analytic.predict_many(
        [w for w, _, _ in points],
        machine,
        p,
        [c for _, c, _ in points],
        [k for _, _, k in points],
        cost=cost,
    )
    for i, (w, cores, k) in enumerate(points):
        one = _run(analytic.predict, w, machine, policy, cores, k, cost)
        if isinstance(one, Exception):
            assert str(many.errors[i]) == str(one)
            continue
        assert i not in many.errors
        assert float(many.makespan_s[i]) == one.makespan_s
        assert float(many.sequential_s[i]) == one.sequential_s
        assert float(many.dram_bytes[i]) == one.dram_bytes
        assert int(many.n_tasks[i]) == one.n_tasks


@settings(max_examples=20, deadline=None)
@given(
    workload=workloads(),
    machine=machines(),
    chunk=st.integers(1, 3),
    policies=st.lists(st.sampled_from(POLICIES[:8]), min_size=2, max_size=3),
    cost=st.sampled_from(["model", "ideal"]),
)
def test_policies_sharing_their_baselines_give_the_same_answers(
    workload, machine, chunk, policies, cost
):
    """``predict_many(..., baselines=)`` shared by several policies on one machine (as a sweep's
    worker does) answers each as a call of its own: the same numbers and errors."""
    points = []
    for hidden in (workload.hidden, 32):
        w = workload.model_copy(update={"hidden": hidden})
        for cores in sorted({1, machine.total_cores // 2 or 1, machine.total_cores}):
            points.append((w, cores))
    baselines: dict = {}
    for name, options in policies:
        args = (
            [w for w, _ in points],
            machine,
            get_policy(name, **options),
            [c for _, c in points],
            [chunk] * len(points),
            "cell",
            cost,
        )
        alone = analytic.predict_many(*args)
        shared = analytic.predict_many(*args, baselines)
        for field in ("makespan_s", "sequential_s", "n_tasks", "dram_bytes", "utilization"):
            assert np.array_equal(getattr(alone, field), getattr(shared, field), equal_nan=True)
        assert {i: str(e) for i, e in alone.errors.items()} == {
            i: str(e) for i, e in shared.errors.items()
        }


def test_long_sequences_cost_no_more_than_short_ones():
    """8 layers x 10^8 steps: 800 million tasks, answered from the same few classes."""
    m = load_machine(resolve_machine_path("xeon8160_2s"))
    w = Workload(
        cell="lstm",
        layers=8,
        hidden=512,
        input=512,
        seq_len=100_000_000,
        bidirectional=True,
        phase="training",
    )
    r = analytic.predict(w, m, "wavefront", cores=16, chunk=3)
    assert r.n_tasks == 2 * (2 * 8 * 33_333_334) + 2 * 8  # forward, backward, weight gradients
    assert np.isfinite(r.makespan_s) and r.speedup > 1.0


def test_op_granularity_is_refused_with_a_pointer_to_simulate():
    m = load_machine(resolve_machine_path("xeon8160_2s"))
    w = Workload(cell="lstm", layers=2, hidden=16, input=16, seq_len=4)
    with pytest.raises(Exception, match="granularity op.*simulate"):
        analytic.predict(w, m, "wavefront", granularity="op")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)  # (patched per example)
@given(
    workload=workloads(),
    machine=st.sampled_from(["v100", "titanx_maxwell", "t4"]),
    policy=st.sampled_from(["gemm", "sparse_gemm", "persistent", "persistent_barrier"]),
    seq_len=st.integers(1, 40),
)
def test_gpu_steps_fast_forwarded_equal_every_step_walked(
    workload, machine, policy, seq_len, monkeypatch
):
    """The one-kernel-at-a-time GPU closed form adds the repeating steps of a layer at once
    (wpsim.sim.gpu._OneAtATime._repeat); walking every step gives the same answer."""
    from wpsim.sim import gpu

    w = workload.model_copy(update={"seq_len": seq_len, "dtype": "float32"})
    m = load_machine(resolve_machine_path(machine))
    fast = _run_gpu(gpu, w, m, policy)

    def every_step(self, phase, times, step):
        for _ in range(times):
            self._add(phase, step())

    with monkeypatch.context() as patch:
        patch.setattr(gpu._OneAtATime, "_repeat", every_step)
        walked = _run_gpu(gpu, w, m, policy)
    if isinstance(walked, Exception):
        assert str(fast) == str(walked)
        return
    for name in ("makespan_s", "sequential_s", "dram_bytes"):
        assert getattr(fast, name) == pytest.approx(getattr(walked, name), rel=1e-12)
    for cause, seconds in walked.breakdown_s.items():
        assert fast.breakdown_s[cause] == pytest.approx(seconds, rel=1e-9, abs=1e-18)


def _run_gpu(gpu, workload, machine, policy):
    try:
        return gpu.evaluate("predict", workload, machine, policy)
    except Exception as error:  # noqa: BLE001 - compared
        return error


@pytest.mark.parametrize("runtime", ["onednn_fused_cpu", "pytorch_eager_cpu", "tf_keras_cpu"])
@pytest.mark.parametrize("policy", ["sequential", "layerwise", "wavefront", "helper"])
def test_runtimes_adapt_the_closed_forms_as_they_adapted_the_graph_based_ones(runtime, policy):
    """A runtime changes the machine and the policy's graph (per-step input products, the
    directions of a bidirectional layerwise side by side on two groups): the same answers."""
    from wpsim.sim import runtime as runtimes

    w = Workload(
        cell="lstm", layers=2, hidden=64, input=32, seq_len=7, bidirectional=True, phase="training"
    )
    m = load_machine(resolve_machine_path("xeon8160_2s"))
    r = runtimes.load_runtime(runtime)

    def run(predict):
        return runtimes.evaluate(
            "predict",
            w,
            m,
            get_policy(policy),
            r,
            lambda _engine, *args, **options: predict(*args, **options),
            cores=4,
            chunk=2,
        )

    assert_same(run(reference.predict), run(analytic.predict))


@pytest.mark.parametrize("cell", ["gru", "sru", "qrnn(window=2)"])
@pytest.mark.parametrize("input_size", [0, 8])
@pytest.mark.parametrize("policy", [("sequential", {}), ("wavefront", {}), ("layerwise", {})])
def test_streams_read_their_shared_weights_cold_once(cell, input_size, policy):
    """A second stream's first task finds the weights the first stream read (found by the
    comparison above: a skip-input GRU with 2 streams read them cold twice)."""
    w = Workload(cell=cell, layers=2, hidden=8, input=input_size, seq_len=3, streams=2)
    machine = load_machine(CALIBRATED)
    for cores in (1, 2):
        old = _run(reference.predict, w, machine, policy, cores, 1, "model")
        new = _run(analytic.predict, w, machine, policy, cores, 1, "model")
        assert_same(old, new)
