"""wpsim.policies: the registry, and the rules each built-in policy states (core groups, which
group runs a task, in what order); the engines' schedules under them are tested in test_engine."""

from __future__ import annotations

import pytest

from wpsim import policies
from wpsim.errors import ConfigError
from wpsim.model.graph import build
from wpsim.model.plan import compile_plan
from wpsim.model.workload import Workload
from wpsim.policies import DynamicPolicy, get_policy, register
from wpsim.policies.registry import BUILTINS

W = Workload(cell="lstm", layers=3, hidden=8, input=8, seq_len=4)
BUILT_IN = [
    "gemm",
    "helper",
    "layerwise",
    "multiprogram",
    "persistent",
    "persistent_barrier",
    "pipeline",
    "sequential",
    "sparse_gemm",
    "streams",
    "wavefront",
]


def planned(name: str, n_cores: int, **options):
    """The policy reset on the plan it asks for, with its groups of ``n_cores`` cores."""
    policy = get_policy(name, **options)
    plan = compile_plan(build(W, **policy.graph_options(W, 1)))
    groups = policy.core_groups(n_cores)
    policy.reset(plan, groups)
    return policy, plan, groups


def run_order(policy, plan, n_groups: int) -> list[tuple[int, int]]:
    """``(task, group)`` in the order the policy starts them (``assign`` gives ``(group, task)``)
    when every task takes the same time
    and finishes in start order (a check of push/assign, not of an engine)."""
    remaining = [len(p) for p in plan.preds]
    for tid in range(plan.n_tasks):
        if not remaining[tid]:
            policy.push(tid)
    order, running = [], []
    idle = list(range(n_groups))
    while len(order) < plan.n_tasks:
        started = policy.assign(idle)
        assert started or running, "deadlock: nothing ready and nothing running"
        for g, tid in started:
            idle.remove(g)
            running.append((tid, g))
            order.append((tid, g))
        tid, g = running.pop(0)
        idle = sorted(idle + [g])
        for s in plan.succs[tid]:
            remaining[s] -= 1
            if not remaining[s]:
                policy.push(s)
    return order


def test_the_registry_knows_every_built_in() -> None:
    # (other tests may have registered policies of their own: the built-ins are those of wpsim)
    assert [n for n in policies.available() if policies.REGISTRY[n] in BUILTINS] == BUILT_IN
    assert sorted(cls.name for cls in BUILTINS) == BUILT_IN
    assert all(policies.REGISTRY[cls.name] is cls for cls in BUILTINS)
    assert all(cls.description for cls in BUILTINS)


def test_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"--policy: got 'nope', expected one of ") as error:
        get_policy("nope")
    listed = str(error.value).split("expected one of ")[1].removesuffix(", or FILE.py:Class")
    names = listed.split(", ")
    assert names == sorted(policies.REGISTRY) and set(BUILT_IN) <= set(names)


def test_register_adds_a_policy_by_its_name() -> None:
    @register
    class Deepest(DynamicPolicy):
        name = "test-deepest"

    try:
        assert isinstance(get_policy("test-deepest"), Deepest)
        assert "test-deepest" in policies.available()
    finally:
        del policies.REGISTRY["test-deepest"]

    class Nameless(DynamicPolicy):
        pass

    with pytest.raises(ValueError, match="needs a non-empty 'name'"):
        register(Nameless)


@pytest.mark.parametrize(
    ("options", "message"), [({"helpers": 0}, "--helpers"), ({"instances": 0}, "--instances")]
)
def test_bad_options_are_one_line_errors(options, message) -> None:
    with pytest.raises(ConfigError, match=message):
        get_policy("wavefront", **options)


def test_core_groups() -> None:
    assert get_policy("sequential").core_groups(4) == [(0,)]
    assert get_policy("layerwise").core_groups(4) == [(0, 1, 2, 3)]
    assert get_policy("wavefront").core_groups(4) == [(0,), (1,), (2,), (3,)]
    assert get_policy("wavefront", helpers=2).core_groups(5) == [(0, 1), (2, 3)]
    assert get_policy("helper").core_groups(3) == [(0, 1, 2)]
    with pytest.raises(ConfigError, match="at most the 2 cores"):
        get_policy("pipeline", helpers=3).core_groups(2)


def test_sequential_runs_in_task_id_order_on_one_group() -> None:
    policy, plan, groups = planned("sequential", 4)
    assert run_order(policy, plan, len(groups)) == [(t, 0) for t in range(plan.n_tasks)]


def test_pipeline_maps_layers_to_groups_round_robin() -> None:
    policy, plan, groups = planned("pipeline", 2)
    for tid, g in run_order(policy, plan, len(groups)):
        assert g == plan.tasks[tid].layer % 2


def test_wavefront_starts_every_task_once_respecting_dependencies() -> None:
    policy, plan, groups = planned("wavefront", 3)
    order = run_order(policy, plan, len(groups))
    assert sorted(t for t, _ in order) == list(range(plan.n_tasks))
    position = {t: i for i, (t, _) in enumerate(order)}
    assert all(position[p] < position[t] for t in range(plan.n_tasks) for p in plan.preds[t])


def test_layerwise_hoists_the_input_projection_of_all_steps() -> None:
    options = get_policy("layerwise").graph_options(W, chunk=4)
    assert options["chunk"] == 1 and options["hoist_input"] == W.seq_len


def test_gpu_policies_refuse_a_cpu_engine() -> None:
    with pytest.raises(ConfigError, match="a GPU policy; use a gpu machine"):
        get_policy("persistent").core_groups(4)


def test_describe_names_the_options() -> None:
    assert get_policy("wavefront").describe() == "wavefront"
    assert get_policy("wavefront", helpers=2).describe().startswith("wavefront")
