"""The simulator: policies, cache and bandwidth effects, determinism, traces, hooks."""

from __future__ import annotations

import json

import pytest
from conftest import make_machine

from wpsim.errors import ConfigError
from wpsim.model.graph import build
from wpsim.model.plan import compile_plan
from wpsim.model.workload import Workload
from wpsim.policies import available, get_policy, register
from wpsim.policies.base import DynamicPolicy
from wpsim.sim.closed_forms import predict
from wpsim.sim.engine import simulate

POLICIES = ["sequential", "layerwise", "wavefront", "pipeline", "helper", "multiprogram"]


def lstm(**kw) -> Workload:
    base = dict(cell="lstm", layers=3, hidden=64, input=64, seq_len=12)
    return Workload(**{**base, **kw})


def assert_valid_schedule(result, workload, policy_name, chunk=1):
    """Every dependency respected; no core runs two tasks at once; every task ran once."""
    policy = get_policy(policy_name, instances=2 if policy_name == "multiprogram" else 1)
    plan = compile_plan(build(workload, **policy.graph_options(workload, chunk)))
    trace = result.trace
    assert sorted(trace.task) == list(range(plan.n_tasks))
    index = trace.by_task()
    for tid in range(plan.n_tasks):
        start = trace.start_s[index[tid]]
        for p in plan.preds[tid]:
            assert trace.end_s[index[p]] <= start + 1e-15
    per_core: dict[int, list[tuple[float, float]]] = {}
    for cores, s, e in zip(trace.cores, trace.start_s, trace.end_s, strict=True):
        for c in cores:
            per_core.setdefault(c, []).append((s, e))
    for spans in per_core.values():
        spans.sort()
        for (_, e0), (s1, _) in zip(spans, spans[1:], strict=False):
            assert s1 >= e0 - 1e-15


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(
    "kw",
    [{}, {"bidirectional": True}, {"phase": "training"}, {"output": "softmax", "output_size": 10}],
)
def test_every_policy_gives_a_valid_schedule(policy, kw):
    w = lstm(**kw)
    p = get_policy(policy, instances=2 if policy == "multiprogram" else 1)
    r = simulate(w, make_machine(cores=4), p)
    assert_valid_schedule(r, w, policy)
    assert r.makespan_s > 0 and r.sequential_s > 0
    assert 0 < r.utilization <= 1 + 1e-9


def test_registry_lists_builtins_and_rejects_unknown():
    assert set(POLICIES) <= set(available())
    with pytest.raises(ConfigError, match="--policy: got 'fastest'"):
        get_policy("fastest")


def test_a_student_policy_in_one_class():
    register(DeepestFirst)
    w = lstm()
    r = simulate(w, make_machine(cores=2), "test-deepest-first")
    assert_valid_schedule(r, w, "test-deepest-first")


class DeepestFirst(DynamicPolicy):
    """A student's policy: the deepest ready layer first."""

    name = "test-deepest-first"

    def priority(self, tid):
        return (-self.plan.tasks[tid].layer, self.plan.generation[tid], tid)


@pytest.mark.parametrize("kw", [{}, {"bidirectional": True, "phase": "training"}])
@pytest.mark.parametrize("instances", [1, 2])
def test_ranks_follow_the_priority(kw, instances):
    """Ready queues hold ranks (Policy.rank_tasks): the order of the priority tuples, whether
    the default (ranked by numpy) or a subclass's own."""
    plan = compile_plan(build(lstm(**kw), instances=instances))
    assert [plan.layer_keys[i] for i in plan.layer_id] == [
        (t.instance, t.layer, t.direction) for t in plan.tasks
    ]
    for policy in (get_policy("wavefront"), get_policy("pipeline"), DeepestFirst()):
        policy.reset(plan, [(0,), (1,)])
        expected = sorted(range(plan.n_tasks), key=policy.priority)
        rank = policy._ranks()
        assert policy._order == expected
        assert [rank[tid] for tid in expected] == list(range(plan.n_tasks))


def test_a_priority_may_read_what_its_reset_sets_up():
    """Tasks are ranked at the first push, after a subclass's reset has run whole."""

    class LastLayerFirst(DynamicPolicy):
        name = "test-last-layer-first"

        def reset(self, plan, groups):
            super().reset(plan, groups)
            self.top = max(t.layer for t in plan.tasks)

        def priority(self, tid):
            return (self.top - self.plan.tasks[tid].layer, self.plan.generation[tid], tid)

    w = lstm()
    r = simulate(w, make_machine(cores=2), LastLayerFirst())
    assert r.n_tasks == 36


@pytest.mark.parametrize("policy", [get_policy("wavefront"), DeepestFirst()])
def test_one_core_runs_the_best_ready_task_each_time(policy):
    """On one core a dynamic policy starts, each time, the best ready task (lowest priority) of
    the layer it ran last, else the best ready task overall."""
    w = lstm(bidirectional=True, phase="training")
    plan = compile_plan(build(w))
    trace = simulate(w, make_machine(cores=1), policy).trace
    policy.reset(plan, [(0,)])  # for priority() on this plan
    remaining = [len(p) for p in plan.preds]
    ready = {tid for tid in range(plan.n_tasks) if not remaining[tid]}
    last = None
    for tid in trace.task:  # in start order: one core
        hot = [t for t in ready if plan.layer_id[t] == last]
        assert tid == min(hot or ready, key=policy.priority)
        ready.remove(tid)
        last = plan.layer_id[tid]
        for s in plan.succs[tid]:
            remaining[s] -= 1
            if not remaining[s]:
                ready.add(s)


def test_same_inputs_same_trace():
    w = lstm(bidirectional=True, phase="training")
    runs = [simulate(w, make_machine(cores=3), "wavefront") for _ in range(2)]
    a, b = (r.trace for r in runs)
    assert a.task == b.task and a.cores == b.cores
    assert a.start_s == b.start_s and a.end_s == b.end_s


def test_completions_a_rounding_error_apart_are_seen_together():
    """Layer 0's second cell ends at 0.1 + 0.2 = 0.30000000000000004 s, layer 1's first at
    0.1 + 0.19999999999999998 = 0.3 s: the same time but for the last bit. The policy is offered
    both idle groups at once, after both completions, not the first group alone."""
    from wpsim.cost.base import TaskCost
    from wpsim.cost.cpu import IdealCostModel
    from wpsim.sim.engine import run_plan

    plan = compile_plan(build(lstm(layers=2, seq_len=2)))
    seconds = {(0, 0): 0.1, (0, 1): 0.2, (1, 0): 0.3 - 0.1, (1, 1): 0.1}

    class Durations(IdealCostModel):
        def start(self, tid, cores, busy_on_socket):
            task = self.plan.tasks[tid]
            return TaskCost(0.0, seconds[task.layer, task.t0], 0.0, 0.0, {}, 0)

    class Recording(get_policy("wavefront").__class__):
        offered: list[tuple[int, ...]] = []

        def assign(self, idle):
            self.offered.append(tuple(idle))
            return super().assign(idle)

    trace = run_plan(plan, [(0,), (1,)], Recording(), Durations(plan), 2, 1, ["L1", "DRAM"])
    ends = sorted(trace.end_s)
    assert ends[1] == 0.3 and ends[2] == 0.1 + 0.2  # the test's premise
    # decisions at 0, 0.1, 0.3 and the last cell's end: never group 1 alone at 0.3
    assert Recording.offered == [(0, 1)] * 4


def test_weights_that_fit_private_cache_hit_from_the_second_step():
    # one layer: W_ih + W_hh = 2 x 4*64*64*4 B = 128 KiB, fits a 1 MiB L2 (not the 32 KiB L1)
    w = lstm(layers=1)
    r = simulate(w, make_machine(cores=1), "sequential")
    trace = r.trace
    first, rest = trace.records().__next__(), list(trace.records())[1:]
    assert first["DRAM_bytes"] > 0 and not first["hit"]
    assert all(rec["L2_bytes"] > 0 and rec["DRAM_bytes"] == 0 and rec["hit"] for rec in rest)


def with_hit_curve(machine, curve, level="L2"):
    caches = [
        c.model_copy(update={"hit_curve": curve}) if c.name == level else c for c in machine.caches
    ]
    return type(machine).model_validate({**machine.model_dump(), "caches": caches})


def test_a_hit_curve_serves_part_of_weights_a_little_larger_than_the_cache():
    w = lstm(layers=1)
    plan = compile_plan(build(w))
    total = sum(size for _, size in plan.tasks[0].weights)  # one layer's weights, re-read each step
    l2 = int(total / 1.5)  # they overflow the L2 by half
    strict = make_machine(cores=1, l2_bytes=l2)
    soft = with_hit_curve(strict, [[1.0, 1.0], [2.0, 0.0]])  # at 1.5x: about half served
    served = (2.0 - total / l2) * total  # each block's reuse distance is the whole layer
    steady = [list(simulate(w, m, "sequential").trace.records())[2:] for m in (strict, soft)]
    assert all(r["L2_bytes"] == 0 and r["L3_bytes"] == pytest.approx(total) for r in steady[0])
    for r in steady[1]:
        assert r["L2_bytes"] == pytest.approx(served)
        assert r["L3_bytes"] == pytest.approx(total - served)
    # within the curve's first point (here a level twice as large) everything hits, as in an LRU
    roomy = with_hit_curve(make_machine(cores=1, l2_bytes=2 * total), [[0.5, 1.0], [2.0, 0.0]])
    for r in list(simulate(w, roomy, "sequential").trace.records())[1:]:
        assert r["L2_bytes"] == pytest.approx(total) and r["hit"]


def test_a_hit_curve_serves_part_of_a_block_larger_than_the_cache():
    w = lstm(layers=1)
    plan = compile_plan(build(w))
    blocks = [size for _, size in plan.tasks[0].weights]
    total = sum(blocks)
    l2 = int(min(blocks) / 1.2)  # every block is larger than the L2 on its own
    soft = with_hit_curve(make_machine(cores=1, l2_bytes=l2), [[1.0, 1.0], [3.0, 0.0]])
    served = (3.0 - total / l2) / 2.0 * total  # each block's reuse distance is the whole layer
    assert 0 < served < total
    for r in list(simulate(w, soft, "sequential").trace.records())[2:]:
        assert r["L2_bytes"] == pytest.approx(served)
        assert r["L3_bytes"] == pytest.approx(total - served)


def test_a_hit_curve_blends_the_closed_form_bandwidth():
    import numpy as np

    from wpsim.sim.closed_forms.costs import level_for, level_name

    def _level_for(machine, private_ws, shared_ws, n_sockets):
        index, bw = level_for(
            machine, np.array([private_ws]), np.array([shared_ws]), np.array([n_sockets])
        )
        return level_name(machine, int(index[0])), float(bw[0])

    strict = make_machine(l2_bytes=1 << 20)
    soft = with_hit_curve(strict, [[1.0, 1.0], [2.0, 0.0]])
    assert _level_for(strict, 1.5 * (1 << 20), 1.5 * (1 << 20), 1) == ("L3", 50e9)
    name, bw = _level_for(soft, 1.5 * (1 << 20), 1.5 * (1 << 20), 1)
    assert name == "L2" and bw == pytest.approx(1 / (0.5 / 200e9 + 0.5 / 50e9))
    assert _level_for(soft, 0.5 * (1 << 20), 0.5 * (1 << 20), 1) == ("L2", 200e9)
    assert _level_for(soft, 3 * (1 << 20), 3 * (1 << 20), 1) == ("L3", 50e9)


def test_weights_larger_than_the_shared_cache_come_from_dram_and_contend():
    # H=512 LSTM layer: 2 x 4 MiB of weights > a 2 MiB LLC -> every step streams from DRAM
    w = Workload(cell="lstm", layers=1, hidden=512, input=512, seq_len=4)
    alone = simulate(w, make_machine(cores=2, l2_bytes=256 << 10, llc_bytes=2 << 20), "sequential")
    assert all(not rec["hit"] for rec in alone.trace.records())
    # two independent instances on two cores share the DRAM bandwidth: each step twice as long
    both = simulate(
        w,
        make_machine(cores=2, l2_bytes=256 << 10, llc_bytes=2 << 20),
        get_policy("multiprogram", instances=2),
    )
    assert both.makespan_s == pytest.approx(2 * alone.makespan_s, rel=0.02)
    # with per-core bandwidth the limit (not the socket), they do not slow each other down
    roomy = make_machine(cores=2, l2_bytes=256 << 10, llc_bytes=2 << 20, dram_Bps=40e9)
    both_roomy = simulate(w, roomy, get_policy("multiprogram", instances=2))
    assert both_roomy.makespan_s == pytest.approx(alone.makespan_s, rel=0.02)


def test_processor_sharing_reschedules_running_tasks():
    # instance 1 is one step shorter: when it finishes, instance 0 gets the full bandwidth back
    m = make_machine(cores=2, l2_bytes=256 << 10, llc_bytes=2 << 20)
    w = Workload(cell="lstm", layers=1, hidden=512, input=512, seq_len=3)
    r = simulate(w, m, get_policy("multiprogram", instances=2))
    ends = sorted(r.trace.end_s)
    assert ends[-1] == pytest.approx(ends[-2], rel=1e-9)  # symmetric: both end together


def test_dram_pool_is_processor_sharing():
    """Three streams on one socket of 1 B/s, worked out by hand: A (2 B) alone from t=0, B (1 B)
    from t=1, C (0.5 B) from t=1.5. A has 1 B left at 1; A and B 0.75 B each at 1.5; at a third
    each, C ends at 3.0, then A and B, with 0.25 B each at half, at 3.5 (A, set first, first)."""
    import simpy

    from wpsim.cost.base import TaskCost
    from wpsim.sim.dram import DramPool

    class OneBytePerSecond:
        def dram_share_Bps(self, streams):
            return 1.0 / max(streams, 1)

    env = simpy.Environment()
    done = []
    pool = DramPool(env, OneBytePerSecond(), 1, lambda group: done.append((group, env.now)))

    def stream(group, start_s, nbytes):
        yield env.timeout(start_s)
        pool.join(group, TaskCost(0.0, 0.0, 0.0, nbytes, {}, 0), {0: 1})

    for group, start_s, nbytes in ((0, 0.0, 2.0), (1, 1.0, 1.0), (2, 1.5, 0.5)):
        env.process(stream(group, start_s, nbytes))
    env.run()
    assert [g for g, _ in done] == [2, 0, 1]
    assert [t for _, t in done] == pytest.approx([3.0, 3.5, 3.5], rel=1e-12)


def test_dram_streams_within_their_cores_bandwidth_keep_their_completion_times():
    """A socket of 4 B/s whose cores draw 1 B/s each: up to four streams, each gets its core's
    1 B/s and ends at its start plus its bytes, exactly (no progress banked at the others'
    starts and ends); a fifth changes the share, and the four then running are slowed down."""
    import simpy

    from wpsim.cost.base import TaskCost
    from wpsim.sim.dram import DramPool

    class FourBytesPerSecond:
        def dram_share_Bps(self, streams):
            return min(1.0, 4.0 / max(streams, 1))

    env = simpy.Environment()
    done = {}
    pool = DramPool(env, FourBytesPerSecond(), 1, lambda group: done.setdefault(group, env.now))

    def stream(group, start_s, nbytes):
        yield env.timeout(start_s)
        pool.join(group, TaskCost(0.0, 0.0, 0.0, nbytes, {}, 0), {0: 1})

    for group, start_s in enumerate((0.0, 0.25, 0.5, 0.75)):
        env.process(stream(group, start_s, 1.5))
    env.run()
    assert done == {0: 1.5, 1: 1.75, 2: 2.0, 3: 2.25}
    # a fifth stream from 1.0 to its end: 4/5 B/s each, until group 0's end
    env = simpy.Environment()
    done.clear()
    pool = DramPool(env, FourBytesPerSecond(), 1, lambda group: done.setdefault(group, env.now))
    for group, start_s in enumerate((0.0, 0.25, 0.5, 0.75, 1.0)):
        env.process(stream(group, start_s, 1.5))
    env.run()
    # group 0 has 0.5 B left at 1.0, at 0.8 B/s: it ends at 1.625
    assert done[0] == pytest.approx(1.625, rel=1e-12)


def test_no_streaming_task_beats_its_dram_bandwidth():
    # Regression: a stale completion timeout of a group's previous streaming task once ended
    # its next one early (versions were counted per task, so they repeated).
    from wpsim.machines import load_machine, resolve_machine_path

    m = load_machine(resolve_machine_path("desktop8"))
    w = Workload(cell="lstm", layers=3, hidden=1024, input=1024, seq_len=12, batch=4)
    for chunk in (1, 4):
        r = simulate(w, m, "wavefront", cores=4, chunk=chunk, sequential_s=1.0)
        per_core_Bps = m.memory.per_core_bandwidth_Bps
        streamed = [
            (rec["DRAM_bytes"], rec["end_s"] - rec["start_s"])
            for rec in r.trace.records()
            if rec["DRAM_bytes"]
        ]
        assert streamed
        assert all(seconds >= nbytes / per_core_Bps for nbytes, seconds in streamed)


def test_layerwise_slice_that_fits_a_core_cache_stays_there():
    # H=256: W_hh = 4*256*256*4 = 1 MiB; a quarter per core (256 KiB) fits L2 but the whole
    # matrix does not fit one core's 512 KiB L2
    w = Workload(cell="lstm", layers=1, hidden=256, input=256, seq_len=6)
    m = make_machine(cores=4, l2_bytes=512 << 10, llc_bytes=2 << 20)
    r = simulate(w, m, "layerwise")
    records = list(r.trace.records())
    cells = [
        rec for rec, tid in zip(records, r.trace.task, strict=True) if r.tasks[tid].kind == "cell"
    ]
    assert cells[0]["DRAM_bytes"] > 0
    assert all(rec["L2_bytes"] > 0 and rec["DRAM_bytes"] == 0 for rec in cells[1:])
    single = simulate(w, m, "sequential")
    assert all(rec["L2_bytes"] == 0 for rec in list(single.trace.records())[1:])


def test_wavefront_keeps_a_layer_on_its_core():
    w = lstm(layers=2, seq_len=20)
    r = simulate(w, make_machine(cores=2), "wavefront")
    cores_of_layer = {}
    for tid, cores in zip(r.trace.task, r.trace.cores, strict=True):
        cores_of_layer.setdefault(r.tasks[tid].layer, set()).update(cores)
    assert all(len(c) == 1 for c in cores_of_layer.values())
    assert r.level_bytes["DRAM"] == pytest.approx(
        sum(size for k, size in r.tasks[0].weights) + sum(size for k, size in r.tasks[20].weights)
    )


def test_pipeline_maps_layers_round_robin():
    w = lstm(layers=4, seq_len=5)
    r = simulate(w, make_machine(cores=2), "pipeline")
    for tid, cores in zip(r.trace.task, r.trace.cores, strict=True):
        assert cores == (r.tasks[tid].layer % 2,)


def test_helpers_split_cells_and_pay_synchronisation():
    w = lstm(layers=2, seq_len=6)
    m = make_machine(cores=4)
    r = simulate(w, m, get_policy("wavefront", helpers=2))
    assert all(len(c) == 2 for c in r.trace.cores)
    ideal = simulate(w, m, get_policy("wavefront", helpers=2), cost="ideal")
    assert ideal.makespan_s < simulate(w, m, "wavefront", cost="ideal").makespan_s


def test_bad_options_are_one_line_errors():
    w = lstm()
    with pytest.raises(ConfigError, match="--helpers"):
        simulate(w, make_machine(cores=2), get_policy("wavefront", helpers=3))
    with pytest.raises(ConfigError, match="--instances"):
        simulate(w, make_machine(cores=2), get_policy("multiprogram", instances=3))
    with pytest.raises(ConfigError, match="--cores"):
        simulate(w, make_machine(cores=2), "wavefront", cores=5)


def test_dispatch_overhead_and_corun_slowdown_add_time():
    w = lstm()
    base = simulate(w, make_machine(cores=2), "wavefront").makespan_s
    assert simulate(w, make_machine(cores=2, dispatch_s=1e-6), "wavefront").makespan_s > base
    assert simulate(w, make_machine(cores=2, corun=0.3), "wavefront").makespan_s > base


def test_hooks_see_every_task_and_chrome_trace_loads(tmp_path):
    seen = []
    w = lstm(layers=2, seq_len=4)
    r = simulate(w, make_machine(cores=2), "wavefront", hooks=[seen.append])
    assert sorted(rec["task"] for rec in seen) == list(range(8))
    path = tmp_path / "t.json"
    r.trace.to_chrome(path, [t.label for t in r.tasks], [t.layer for t in r.tasks])
    events = [e for e in json.loads(path.read_text())["traceEvents"] if e["ph"] == "X"]
    assert len(events) == 8 and {e["tid"] for e in events} == {0, 1}
    assert all(e["dur"] > 0 for e in events)
    r.trace.to_csv(tmp_path / "t.csv", [t.label for t in r.tasks])
    assert len((tmp_path / "t.csv").read_text().splitlines()) == 9


def test_trace_memory_grows_with_tasks_not_time():
    # ten times longer steps (10x hidden work) do not add records
    short = simulate(lstm(hidden=16, input=16), make_machine(cores=2), "wavefront")
    long = simulate(lstm(hidden=160, input=160), make_machine(cores=2), "wavefront")
    assert len(short.trace) == len(long.trace) == short.n_tasks


def test_step_overhead_adds_a_fixed_cost_per_recurrent_step():
    w = lstm(layers=1, seq_len=8)
    base = make_machine(cores=1)
    slow = base.model_copy(update={"step_overhead_s": {"lstm": 1e-6}})
    for chunk in (1, 4):
        a = simulate(w, base, "sequential", chunk=chunk).makespan_s
        b = simulate(w, slow, "sequential", chunk=chunk).makespan_s
        assert b - a == pytest.approx(8 * 1e-6, rel=1e-6)  # 8 steps, however chunked
    # the overhead is per cell type: a GRU pays nothing for an LSTM-only entry
    gru = Workload(cell="gru", layers=1, hidden=64, input=64, seq_len=8)
    assert (
        simulate(gru, slow, "sequential").makespan_s == simulate(gru, base, "sequential").makespan_s
    )


def test_task_overhead_adds_a_fixed_cost_per_recurrent_task():
    w = lstm(layers=1, seq_len=8)
    base = make_machine(cores=1)
    slow = base.model_copy(update={"task_overhead_s": {"lstm": 1e-6}})
    for chunk, tasks in ((1, 8), (4, 2)):  # once per task: fewer, longer tasks pay less
        a = simulate(w, base, "sequential", chunk=chunk).makespan_s
        b = simulate(w, slow, "sequential", chunk=chunk).makespan_s
        assert b - a == pytest.approx(tasks * 1e-6, rel=1e-6)
    # the closed form charges it alike
    closed = [predict(w, m, "sequential", cores=1, chunk=4).makespan_s for m in (base, slow)]
    assert closed[1] - closed[0] == pytest.approx(2 * 1e-6, rel=1e-6)


def test_busy_dispatch_applies_only_when_every_core_is_busy():
    w = Workload(cell="lstm", layers=1, hidden=64, input=64, seq_len=6)
    base = make_machine(cores=2, dispatch_s=1e-6)
    busy = base.model_copy(update={"dispatch_overhead_busy_s": 50e-6})
    # one core used of two: the other stays free for the runtime, so no busy dispatch
    one = simulate(w, busy, "sequential", cores=1)
    assert one.makespan_s == pytest.approx(simulate(w, base, "sequential", cores=1).makespan_s)
    # two independent instances keep both cores busy: every task pays the busy dispatch
    both = simulate(w, busy, get_policy("multiprogram", instances=2))
    ref = simulate(w, base, get_policy("multiprogram", instances=2))
    assert both.makespan_s > ref.makespan_s + 5 * 40e-6


def test_dispatch_variants_and_their_fallbacks():
    m = make_machine(cores=2, dispatch_s=1e-6)
    assert m.dispatch_s(all_busy=True) == m.dispatch_s(all_busy=False) == 1e-6
    m = m.model_copy(update={"dispatch_overhead_busy_s": 5e-5})
    assert m.dispatch_s(all_busy=True) == 5e-5
    assert m.dispatch_s(all_busy=False, whole_socket_group=True) == 5e-5  # busy stands in
    m = m.model_copy(update={"dispatch_overhead_group_s": 2e-5})
    assert m.dispatch_s(all_busy=True, whole_socket_group=True) == 2e-5
    assert m.dispatch_s(all_busy=True) == 5e-5


def test_a_run_with_one_group_pays_the_sequence_dispatch():
    m = make_machine(cores=2, dispatch_s=3e-5).model_copy(
        update={"dispatch_overhead_sequence_s": 2e-6, "dispatch_overhead_group_s": 1e-5}
    )
    assert m.dispatch_s(all_busy=False, sequence=True) == 2e-6
    assert m.dispatch_s(all_busy=False) == 3e-5
    # a whole-socket group keeps its own value, and without the field the usual one stands in
    assert m.dispatch_s(all_busy=True, whole_socket_group=True, sequence=True) == 1e-5
    plain = m.model_copy(update={"dispatch_overhead_sequence_s": None})
    assert plain.dispatch_s(all_busy=False, sequence=True) == 3e-5
    from wpsim.measure.validate import simulate_with_dispatch

    w = Workload(cell="rnn", layers=2, hidden=8, input=8, seq_len=4)
    _, charged = simulate_with_dispatch(w, m, "sequential", 1, 1, sequential_s=1.0)
    assert charged == pytest.approx([2e-6] * 8)  # one group: the order is handed out at once
    _, charged = simulate_with_dispatch(w, m, "wavefront", 2, 1, sequential_s=1.0)
    assert min(charged) == pytest.approx(3e-5)  # several groups: every task via the scheduler
    seq_ms = simulate(w, m, "sequential", cores=1).makespan_s
    assert seq_ms == pytest.approx(
        simulate(w, plain, "sequential", cores=1).makespan_s - 8 * 2.8e-5
    )
    assert predict(w, m, "sequential", cores=1).makespan_s == pytest.approx(seq_ms)


def test_elementwise_update_does_not_overlap_the_weight_reads():
    """A task's products overlap its weight reads (``max``); its element-wise update adds."""
    from wpsim.cost.cpu import CpuCostModel

    grid = [[128, 1, 30e-6], [512, 1, 30e-6]]
    base = make_machine(dram_Bps=5e9, per_core_dram_Bps=5e9)
    table = {"gemm_by_n": [[1, 1.0]], "elementwise": 0.01, "elementwise_step_s": {"lstm": grid}}
    m = base.model_copy(update={"efficiency": type(base.efficiency).model_validate(table)})
    w = Workload(cell="lstm", layers=1, hidden=256, input=256, seq_len=2)
    plan = compile_plan(build(w, chunk=2))
    cell = next(t for t in plan.tasks if t.kind == "cell")
    model = CpuCostModel(m, plan)
    products, elementwise = model.compute_parts(cell.id, 1)
    assert elementwise == pytest.approx(2 * 30e-6)
    assert model.compute_s(cell.id, 1) == pytest.approx(products + elementwise)
    tc = model.start(cell.id, (0,), 0)
    memory = tc.cache_s + tc.dram_bytes / model.dram_share_Bps(1)
    assert memory > products  # weights from DRAM: reading them takes longer than the products
    assert tc.duration(model.dram_share_Bps(1)) == pytest.approx(
        m.dispatch_s(all_busy=False) + elementwise + memory
    )


def test_a_split_products_share_that_fits_the_private_cache_runs_at_the_hot_rate():
    """``gemm_by_n_h_hot`` serves a product whose weights on one core fit its largest private
    cache; the streamed grid serves the others."""
    from wpsim.cost.cpu import CpuCostModel

    def grid(f: float) -> list[list[float]]:
        return [[n, h, f] for n in (1, 2) for h in (128, 512)]

    table = {
        "gemm_by_n": [[1, 1.0]],
        "elementwise": 1.0,
        "gemm_by_n_h": grid(0.1),
        "gemm_by_n_h_hot": {"lstm": grid(0.5)},
    }
    base = make_machine(cores=2, l2_bytes=1 << 20)
    m = base.model_copy(update={"efficiency": type(base.efficiency).model_validate(table)})
    peak = m.peak_flops_per_core("float32")
    # H = 256: W_ih and W_hh are 1 MiB plus half the biases each, so only half of one fits
    # the 1 MiB L2 (both products are split by gate rows)
    w = Workload(cell="lstm", layers=1, hidden=256, input=256, seq_len=2)
    plan = compile_plan(build(w, chunk=1))
    cell = next(t for t in plan.tasks if t.kind == "cell")
    model = CpuCostModel(m, plan)
    whole, _ = model.compute_parts(cell.id, 1)
    assert whole == pytest.approx((cell.flops_in + cell.flops_rec) / (0.1 * peak))
    split, _ = model.compute_parts(cell.id, 2)
    assert split == pytest.approx((cell.flops_in + cell.flops_rec) / (0.5 * peak) / 2)
    # without the hot grid, the streamed one serves both
    plain = m.model_copy(
        update={
            "efficiency": type(base.efficiency).model_validate({**table, "gemm_by_n_h_hot": None})
        }
    )
    split_plain, _ = CpuCostModel(plain, plan).compute_parts(cell.id, 2)
    assert split_plain == pytest.approx((cell.flops_in + cell.flops_rec) / (0.1 * peak) / 2)


def test_whole_socket_group_tasks_pay_the_group_dispatch():
    w = Workload(cell="rnn", layers=1, hidden=8, input=8, seq_len=10)
    m = make_machine(cores=2, dispatch_s=1e-6).model_copy(
        update={"dispatch_overhead_busy_s": 5e-5, "dispatch_overhead_group_s": 2e-5}
    )
    r = simulate(w, m, "layerwise", cores=2, sequential_s=1.0)
    durations = [e - s for s, e in zip(r.trace.start_s, r.trace.end_s, strict=True)]
    assert all(2e-5 <= d < 5e-5 for d in durations)  # tiny tasks: dispatch is nearly all
    from wpsim.measure.validate import simulate_with_dispatch

    _, charged = simulate_with_dispatch(w, m, "layerwise", 2, 1, sequential_s=1.0)
    assert charged == pytest.approx([2e-5] * len(durations))


def test_split_tasks_cost_what_the_executor_splits():
    from wpsim.cost.cpu import CpuCostModel

    table = {"gemm_by_n": [[1, 0.1], [2, 0.2], [4, 0.4], [8, 0.8]], "elementwise": 0.05}
    m = make_machine(cores=2).model_copy(
        update={
            "efficiency": type(make_machine().efficiency).model_validate(table),
            "elementwise_split_across_helpers": False,
        }
    )
    peak = m.peak_flops_per_core("float32")
    w = Workload(cell="lstm", layers=1, hidden=16, input=16, seq_len=8, batch=2)
    policy = get_policy("layerwise")
    plan = compile_plan(build(w, **policy.graph_options(w, 1)))
    model = CpuCostModel(m, plan)
    gemm = next(t for t in plan.tasks if t.flops_in and not t.flops_rec)
    step = next(t for t in plan.tasks if t.flops_rec)
    # the input GEMM of T steps is split over time: each member has B * T/2 = 8 columns
    assert model.compute_s(gemm.id, 2) == pytest.approx(gemm.flops_in / (0.8 * 2 * peak))
    # a step: the recurrent product split over rows (B = 2 columns), the gate math on every member
    split = (step.flops_rec / 0.2 / 2 + step.flops_elem / 0.05) / peak
    assert model.compute_s(step.id, 2) == pytest.approx(split)
    whole = (step.flops_rec / 0.2 + step.flops_elem / 0.05) / peak
    assert model.compute_s(step.id, 1) == pytest.approx(whole)
    # on one core, a batch within recurrent_gemv_max_batch runs as B GEMVs (one column each)
    gemv = CpuCostModel(m.model_copy(update={"recurrent_gemv_max_batch": 4}), plan)
    as_gemvs = (step.flops_rec / 0.1 + step.flops_elem / 0.05) / peak
    assert gemv.compute_s(step.id, 1) == pytest.approx(as_gemvs)
    assert gemv.compute_s(step.id, 2) == pytest.approx(split)  # a split product stays one GEMM
    # a threaded runtime splits the element-wise work as well (the default)
    threaded = CpuCostModel(m.model_copy(update={"elementwise_split_across_helpers": True}), plan)
    halves = (step.flops_rec / 0.2 + step.flops_elem / 0.05) / 2 / peak
    assert threaded.compute_s(step.id, 2) == pytest.approx(halves)


def test_a_products_fixed_part_is_not_split_among_members():
    from wpsim.cost.cpu import CpuCostModel

    base = make_machine(cores=2)
    fixed = base.model_copy(
        update={"efficiency": base.efficiency.model_copy(update={"product_fixed_s": 1e-6})}
    )
    w = Workload(cell="rnn", layers=1, hidden=64, input=64, seq_len=4, batch=1)
    plan = compile_plan(build(w, **get_policy("layerwise").graph_options(w, 1)))
    step = next(t for t in plan.tasks if t.flops_rec)
    (whole_0, _), (split_0, _) = (
        CpuCostModel(base, plan).compute_parts(step.id, k) for k in (1, 2)
    )
    (whole_1, _), (split_1, _) = (
        CpuCostModel(fixed, plan).compute_parts(step.id, k) for k in (1, 2)
    )
    assert whole_1 == pytest.approx(whole_0)  # on one core the grid's time holds it already
    fixed_s = min(1e-6 * step.steps, whole_0)
    assert split_1 == pytest.approx(fixed_s + (whole_0 - fixed_s) / 2)
    assert split_0 == pytest.approx(whole_0 / 2) and split_1 > split_0


def test_a_small_input_projection_is_split_over_time_steps():
    from wpsim.cost.cpu import CpuCostModel

    table = {"gemm_by_n": [[1, 0.1], [8, 0.5], [16, 1.0]], "elementwise": 0.05}
    m = make_machine(cores=2).model_copy(
        update={"efficiency": type(make_machine().efficiency).model_validate(table)}
    )
    peak = m.peak_flops_per_core("float32")
    w = Workload(cell="lstm", layers=1, hidden=16, input=16, seq_len=8, batch=2)
    plan = compile_plan(build(w, **get_policy("layerwise").graph_options(w, 1)))
    gemm = next(t for t in plan.tasks if t.kind == "input_gemm")
    ih_bytes = sum(size for key, size in gemm.weights if key.endswith(".ih"))
    by_rows = CpuCostModel(m, plan)
    by_time = CpuCostModel(m.model_copy(update={"input_split_by_time_max_bytes": ih_bytes}), plan)
    # by gate rows: B * T = 16 columns and 1/2 of W_ih each; by time: 8 columns, all of W_ih
    assert by_rows.compute_s(gemm.id, 2) == pytest.approx(gemm.flops_in / (1.0 * 2 * peak))
    assert by_time.compute_s(gemm.id, 2) == pytest.approx(gemm.flops_in / (0.5 * 2 * peak))
    assert by_rows.member_weight_bytes(gemm.id, 2) == pytest.approx(ih_bytes / 2)
    assert by_time.member_weight_bytes(gemm.id, 2) == pytest.approx(ih_bytes)
    read = {
        name: sum(by.start(gemm.id, (0, 1), 0).level_bytes.values())
        for name, by in (("rows", by_rows), ("time", by_time))
    }
    assert read == pytest.approx({"rows": ih_bytes, "time": 2 * ih_bytes})
    # one core, or a W_ih over the bound: by rows
    assert by_time.member_weight_bytes(gemm.id, 1) == pytest.approx(ih_bytes)
    small = m.model_copy(update={"input_split_by_time_max_bytes": ih_bytes - 1})
    assert CpuCostModel(small, plan).member_weight_bytes(gemm.id, 2) == pytest.approx(ih_bytes / 2)


def test_efficiency_grid_interpolates_in_columns_and_hidden_size():
    from wpsim.cost.cpu import CpuCostModel

    grid = [[1, 128, 0.2], [1, 256, 0.4], [4, 128, 0.4], [4, 256, 0.8]]
    table = {"gemm_by_n": [[1, 0.4], [4, 0.8]], "elementwise": 1.0, "gemm_by_n_h": grid}
    m = make_machine().model_copy(
        update={"efficiency": type(make_machine().efficiency).model_validate(table)}
    )
    w = Workload(cell="lstm", layers=1, hidden=181, input=181, seq_len=2)  # log2 H ~ 7.5
    model = CpuCostModel(m, compile_plan(build(w)))
    # halfway in log2 n (1 -> 4: n = 2) and about halfway in log2 H: the mean of the corners
    assert model.efficiency(2) == pytest.approx((0.2 + 0.4 + 0.4 + 0.8) / 4, rel=0.01)
    assert model.efficiency(1) == pytest.approx(0.3, rel=0.01)
    # outside the grid: clamped to its edges
    assert model.efficiency(64) == pytest.approx(0.6, rel=0.01)
    # an incomplete grid is ignored: gemm_by_n (best over H) instead
    partial = {**table, "gemm_by_n_h": grid[:3]}
    m2 = m.model_copy(update={"efficiency": type(m.efficiency).model_validate(partial)})
    assert CpuCostModel(m2, compile_plan(build(w))).efficiency(4) == pytest.approx(0.8)


def test_a_cell_uses_its_own_efficiency_grid_where_the_machine_has_one():
    from wpsim.cost.cpu import CpuCostModel

    lstm_grid = [[1, 128, 0.2], [1, 256, 0.2], [4, 128, 0.4], [4, 256, 0.4]]
    rnn_grid = [[1, 128, 0.5], [1, 256, 0.5], [4, 128, 0.9], [4, 256, 0.9]]
    table = {
        "gemm_by_n": [[1, 0.1]],
        "elementwise": 1.0,
        "gemm_by_n_h": lstm_grid,
        "gemm_by_n_h_by_cell": {"rnn": rnn_grid},
    }
    base = make_machine()
    m = base.model_copy(update={"efficiency": type(base.efficiency).model_validate(table)})

    def efficiency(cell: str, n: int) -> float:
        w = Workload(cell=cell, layers=1, hidden=181, input=181, seq_len=2)
        return CpuCostModel(m, compile_plan(build(w))).efficiency(n)

    assert efficiency("rnn", 1) == pytest.approx(0.5) and efficiency("rnn", 4) == pytest.approx(0.9)
    assert efficiency("lstm", 1) == pytest.approx(0.2) and efficiency("gru", 4) == pytest.approx(
        0.4
    )


def test_measured_elementwise_grid_replaces_the_efficiency_for_forward_cells():
    from wpsim.cost.cpu import CpuCostModel

    grid = [[128, 1, 10e-6], [128, 4, 30e-6], [512, 1, 20e-6], [512, 4, 70e-6]]
    table = {"gemm_by_n": [[1, 0.5]], "elementwise": 0.01, "elementwise_step_s": {"lstm": grid}}
    base = make_machine()
    m = base.model_copy(
        update={
            "efficiency": type(base.efficiency).model_validate(table),
            "step_overhead_s": {"lstm": 4e-6},
        }
    )
    peak = m.peak_flops_per_core("float32")
    # H = 256, B = 2: halfway in log2 H and in log2 B, so the mean of the four corners
    w = Workload(cell="lstm", layers=1, hidden=256, input=256, seq_len=6, batch=2)
    plan = compile_plan(build(w, chunk=3))
    model = CpuCostModel(m, plan)
    cell = next(t for t in plan.tasks if t.kind == "cell")
    gemms = (cell.flops_in + cell.flops_rec) / 0.5 / peak
    per_step = (10 + 30 + 20 + 70) / 4 * 1e-6
    assert model.compute_s(cell.id, 1) == pytest.approx(gemms + cell.steps * per_step)
    # a table for another cell type, or none, leaves the efficiency in charge
    other = {**table, "elementwise_step_s": {"gru": grid}}
    m2 = m.model_copy(update={"efficiency": type(m.efficiency).model_validate(other)})
    by_flops = gemms + cell.flops_elem / 0.01 / peak
    assert CpuCostModel(m2, plan).compute_s(cell.id, 1) == pytest.approx(by_flops)
    # tasks other than forward cells (here a training graph's backward cells) keep it too
    wt = w.model_copy(update={"phase": "training"})
    plan_t = compile_plan(build(wt, chunk=3))
    bwd = next(t for t in plan_t.tasks if t.kind == "cell_bwd" and t.flops_elem)
    expected = (
        bwd.flops_in / CpuCostModel(m, plan_t).efficiency(2 * bwd.steps)
        + bwd.flops_rec / 0.5
        + bwd.flops_elem / 0.01
    ) / peak
    assert CpuCostModel(m, plan_t).compute_s(bwd.id, 1) == pytest.approx(expected)


@pytest.mark.parametrize(
    "policy, helpers", [("wavefront", None), ("layerwise", None), ("helper", 2)]
)
def test_private_cache_shortcut_is_exact(policy, helpers):
    """The fixed-point shortcut of a group's private LRUs changes no number of the trace, for
    one core a group and for tasks split across groups of helpers."""
    from wpsim.cost.cpu import CpuCostModel
    from wpsim.machines import load_machine, resolve_machine_path
    from wpsim.sim.engine import machine_levels, run_plan

    class NoShortcut(CpuCostModel):
        def start(self, tid, cores, busy_on_socket):
            for core in cores:  # forget it: every lookup walks the caches, every cost computed
                self._fixed_point[core] = None
            return super().start(tid, cores, busy_on_socket)

    desktop = load_machine(resolve_machine_path("desktop8")).with_cores(4)
    levels = set()
    # layers that fit a private cache, and layers of 4 MiB whose 6 overflow the shared one; and
    # an L2 with a hit curve (partial hits), whose fixed points the shortcut must replay alike
    soft = with_hit_curve(desktop, [[0.5, 1.0], [1.0, 0.7], [3.0, 0.0]])
    # and a 3 MiB shared level that evicts blocks of a group still at its private fixed point
    # (with partial hits in its L2)
    small_llc = with_hit_curve(
        make_machine(cores=4, llc_bytes=3 << 20), [[0.5, 1.0], [1.0, 0.7], [3.0, 0.0]]
    )
    for m, hidden in ((desktop, 64), (desktop, 512), (soft, 160), (small_llc, 256)):
        w = Workload(cell="lstm", layers=6, hidden=hidden, input=hidden, seq_len=20)
        traces = []
        for model in (CpuCostModel, NoShortcut):
            p = get_policy(policy, helpers=helpers)
            plan = compile_plan(build(w, **p.graph_options(w, 1)))
            cost = model(m, plan)
            trace = run_plan(
                plan, p.core_groups(4), p, cost, m.cores_per_socket, m.sockets, machine_levels(m)
            )
            traces.append(list(trace.records()))
            if model is CpuCostModel:  # groups of the policy's size reached a fixed point
                group_size = len(p.core_groups(4)[0])
                assert any(f and len(f.cores) == group_size for f in cost._fixed_point)
        assert traces[0] == traces[1]
        if m is soft and policy == "wavefront":  # partial hits: part from the L2, part the L3
            assert sum(1 for r in traces[0] if r["L2_bytes"] and r["L3_bytes"]) > len(traces[0]) / 2
        levels |= {name for name in ("L2", "L3", "DRAM") for r in traces[0] if r[f"{name}_bytes"]}
    assert levels == {"L2", "L3", "DRAM"}  # every path of the shortcut was taken


def test_busy_dispatch_table_is_read_at_the_task_time():
    from wpsim.measure.validate import simulate_with_dispatch

    m = make_machine(cores=2, dispatch_s=1e-6).model_copy(
        update={"dispatch_overhead_busy_s": [[1e-6, 2e-5], [1e-3, 8e-5]]}
    )
    two = get_policy("multiprogram", instances=2)
    tiny = Workload(cell="rnn", layers=1, hidden=8, input=8, seq_len=4)
    big = Workload(cell="lstm", layers=1, hidden=1024, input=1024, seq_len=4, batch=64)
    _, short = simulate_with_dispatch(tiny, m, two, 2, 1, sequential_s=1.0)
    _, long = simulate_with_dispatch(big, m, two, 2, 1, sequential_s=1.0)
    busy = 1e-6  # anything else was charged as busy
    assert {round(d, 9) for d in short if d != busy} == {2e-5}  # tiny tasks: the first point
    assert all(4e-5 < d <= 8e-5 for d in long if d != busy)  # long tasks: towards the second


def test_gc_is_paused_during_a_run_and_restored_after():
    import gc

    from wpsim.sim.engine import gc_paused

    seen = []
    hook = lambda record: seen.append(gc.isenabled())  # noqa: E731
    simulate(lstm(), make_machine(), "wavefront", hooks=[hook], sequential_s=1.0)
    assert seen and not any(seen) and gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        assert not gc.isenabled()
        raise RuntimeError("interrupted")
    assert gc.isenabled()
