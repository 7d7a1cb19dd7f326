"""wpsim.cost: what a task costs (TaskCost), the cache state kept between tasks (LRUCache), and
the CPU's and the idealised cost models on small plans; the engine's use of them is tested in
test_engine, the GPU's model in test_gpu."""

from __future__ import annotations

import math

import pytest
from conftest import make_machine

from wpsim.cost.base import DRAM, TaskCost
from wpsim.cost.caches import LRUCache
from wpsim.cost.cpu import CpuCostModel, IdealCostModel
from wpsim.model.graph import build
from wpsim.model.plan import compile_plan
from wpsim.model.workload import Workload


def test_a_task_costs_its_fixed_part_plus_the_longer_of_compute_and_memory() -> None:
    cost = TaskCost(
        fixed_s=1.0, compute_s=2.0, cache_s=0.5, dram_bytes=10.0, level_bytes={}, handoff_bytes=0
    )
    assert cost.cached_s == 3.0  # nothing from DRAM: 1 + max(2, 0.5)
    assert cost.duration(dram_share_Bps=10.0) == 3.0  # compute-bound: 1 + max(2, 0.5 + 1)
    assert cost.duration(dram_share_Bps=2.0) == 6.5  # memory-bound: 1 + max(2, 0.5 + 5)


def test_lru_cache_evicts_the_least_recently_used_block() -> None:
    cache = LRUCache(capacity_bytes=100.0)
    cache.insert("a", 40.0)
    cache.insert("b", 40.0)
    assert cache.lookup("a")  # a is now the most recently used
    cache.insert("c", 40.0)  # evicts b
    assert not cache.lookup("b") and cache.lookup("a") and cache.lookup("c")
    assert cache.used == 80.0
    cache.insert("huge", 101.0)  # larger than the cache: streams, evicts nothing
    assert not cache.lookup("huge") and cache.used == 80.0


def test_reuse_distance_counts_the_bytes_used_since() -> None:
    cache = LRUCache(capacity_bytes=100.0)
    for key, size in (("a", 10.0), ("b", 20.0), ("c", 30.0)):
        cache.insert(key, size)
    assert cache.reuse_distance("a") == 60.0  # c, b and a itself
    assert cache.reuse_distance("a") == 10.0  # just used
    assert cache.reuse_distance("missing") == 0.0


def plan_of(workload: Workload):
    return compile_plan(build(workload))


def test_the_ideal_model_divides_flops_by_the_cores() -> None:
    plan = plan_of(Workload(cell="rnn", layers=1, hidden=4, input=4, seq_len=2))
    ideal = IdealCostModel(plan, flops_per_s=1e9)
    flops = plan.tasks[0].flops
    assert ideal.start(0, (0,), 1).duration(math.inf) == pytest.approx(flops / 1e9)
    assert ideal.start(0, (0, 1), 2).duration(math.inf) == pytest.approx(flops / 2e9)
    assert ideal.dram_share_Bps(8) == math.inf


def test_weights_come_from_dram_once_then_from_the_private_cache() -> None:
    w = Workload(cell="lstm", layers=1, hidden=32, input=32, seq_len=3)
    plan = plan_of(w)
    model = CpuCostModel(make_machine(cores=2), plan)
    first = model.start(0, (0,), 1)
    second = model.start(1, (0,), 1)
    assert first.dram_bytes > 0 and first.level_bytes[DRAM] > 0
    assert second.dram_bytes == 0 and DRAM not in second.level_bytes
    assert second.duration(1.0) < first.duration(1.0)


def test_dispatch_is_part_of_the_fixed_time() -> None:
    w = Workload(cell="rnn", layers=1, hidden=8, input=8, seq_len=2)
    plan = plan_of(w)
    without = CpuCostModel(make_machine(), plan).start(0, (0,), 1)
    with_dispatch = CpuCostModel(make_machine(dispatch_s=5e-6), plan).start(0, (0,), 1)
    assert with_dispatch.dispatch_s == 5e-6 and without.dispatch_s == 0.0
    assert with_dispatch.fixed_s == pytest.approx(without.fixed_s + 5e-6)


def test_cores_streaming_from_dram_share_its_bandwidth() -> None:
    w = Workload(cell="rnn", layers=1, hidden=8, input=8, seq_len=2)
    model = CpuCostModel(make_machine(dram_Bps=20e9, per_core_dram_Bps=8e9), plan_of(w))
    assert model.dram_share_Bps(1) == 8e9  # one core: its own limit
    assert model.dram_share_Bps(4) == 5e9  # four: the socket's bandwidth split
