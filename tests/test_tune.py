"""wpsim tune: the search space, the choice, --policy/--chunk auto, and the command."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from wpsim.cli import main
from wpsim.machines import load_machine, resolve_machine_path
from wpsim.model.workload import Workload
from wpsim.policies import get_policy
from wpsim.sim.closed_forms import predict
from wpsim.tune import (
    POLICIES,
    choose,
    choose_chunk,
    chunk_candidates,
    predict_all,
    rule_chunk,
    search_space,
    tune,
)

XEON = load_machine(resolve_machine_path("xeon8160_2s"))
W = Workload(name="w", cell="lstm", layers=3, hidden=128, input=64, seq_len=24, batch=2)


def test_the_search_space_covers_every_policy_group_size_and_chunk_once():
    space = search_space(W, XEON, workers=[1, 4, 6])
    keys = [(c.policy, c.helpers, c.workers, c.chunk) for c in space]
    assert len(keys) == len(set(keys))
    assert {c.policy for c in space} == set(POLICIES)
    # helper groups divide the workers; one group is searched as helper (all) or sequential (1)
    assert {c.helpers for c in space if c.policy == "wavefront" and c.workers == 6} == {None, 2, 3}
    assert all(c.workers == 1 for c in space if c.policy == "sequential")
    assert not [c for c in space if c.policy in ("wavefront", "pipeline") and c.workers == 1]
    assert {c.chunk for c in space if c.policy == "layerwise"} == {1}  # one input GEMM anyway
    assert {c.chunk for c in space if c.policy == "wavefront"} == set(chunk_candidates(24))


def test_cores_that_are_not_whole_sockets_are_not_candidates():
    space = search_space(W, XEON, policies=["wavefront"])
    assert max(c.workers for c in space) == 48 and not [c for c in space if 24 < c.workers < 48]


def test_tune_chooses_the_lowest_predicted_makespan():
    t = tune(W, XEON, max_workers=6, simulate=0)
    everything = predict_all(W, XEON, search_space(W, XEON, workers=list(range(1, 7))))
    assert len(t.ranking) == len(everything)
    assert t.chosen.predicted_s == min(c.predicted_s for c in everything)
    one = predict(W, XEON, t.chosen.policy_object(), cores=t.chosen.workers, chunk=t.chosen.chunk)
    assert one.makespan_s == t.chosen.predicted_s
    ranked = [c.predicted_s for c in t.ranking]
    assert ranked == sorted(ranked)


def test_simulating_the_best_few_chooses_the_fastest_simulated():
    t = tune(W, XEON, max_workers=4, simulate=3)
    simulated = [c for c in t.ranking if c.simulated_s is not None]
    assert len(simulated) == 3 and t.chosen in simulated
    assert t.chosen.simulated_s == min(c.simulated_s for c in simulated)
    assert t.runner_up is not None and (
        t.runner_up.policy,
        t.runner_up.helpers,
        t.runner_up.workers,
    ) != (t.chosen.policy, t.chosen.helpers, t.chosen.workers)
    assert set(t.why) == {t.chosen.describe(), t.runner_up.describe()}


def test_choose_keeps_what_is_fixed():
    best = choose(W, XEON, get_policy("wavefront", helpers=2), 8, None)
    assert (best.policy, best.helpers, best.workers) == ("wavefront", 2, 8)
    assert best.chunk in chunk_candidates(W.seq_len)
    assert choose(W, XEON, None, 4, 3).chunk == 3
    assert choose(W, None, None, 4, None) is None  # no machine file: no model to choose with


def test_chunk_auto_without_a_calibration_follows_the_rule():
    assert rule_chunk(W, groups=1) == 24 and rule_chunk(W, groups=3) == 2
    assert choose_chunk(W, "wavefront", 3, None).source == "rule"
    choice = choose_chunk(W, "wavefront", 3, XEON)
    assert choice.source == "model" and choice.chunk in chunk_candidates(24)


def test_the_tune_command_prints_the_ranking_and_why(capsys):
    assert (
        main(
            [
                "tune",
                "-w",
                "tiny",
                "-m",
                "xeon8160_2s",
                "--workers",
                "4",
                "--simulate",
                "2",
                "--top",
                "3",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "schedules predicted" in out and "chosen:" in out and "by cause" in out
    assert main(["tune", "-w", "tiny", "-m", "xeon8160_2s", "--workers", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["chosen"]["workers"] <= 2 and data["considered"] == len(data["ranking"])


def test_tune_refuses_a_gpu_and_unknown_policies_in_one_line(capsys):
    assert main(["tune", "-m", "v100"]) == 2
    assert main(["tune", "-m", "xeon8160_2s", "--policies", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "gpu" in err and "nope" in err


def test_policy_and_chunk_auto_in_simulate(capsys):
    assert (
        main(
            [
                "simulate",
                "-w",
                "tiny",
                "-m",
                "xeon8160_2s",
                "--cores",
                "4",
                "--policy",
                "auto",
                "--chunk",
                "auto",
                "--json",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "simulate: auto:" in captured.err
    result = json.loads(captured.out)
    from wpsim.model.workload import resolve_workload

    best = choose(resolve_workload("tiny"), XEON, None, 4, None)
    assert (result["chunk"], result["policy"]) == (best.chunk, best.policy_object().describe())


def test_confirm_times_the_best_with_the_real_executor(capsys):
    assert (
        main(
            [
                "tune",
                "-w",
                "tiny",
                "-m",
                "xeon8160_2s",
                "--workers",
                "1",
                "--confirm",
                "2",
                "--repeats",
                "1",
                "--simulate",
                "1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "measured on this computer" in out and "measured" in out.splitlines()[1]


def test_policy_and_chunk_auto_in_run_and_validate(capsys):
    """run and validate choose with a machine file (here a named one; by default this
    computer's calibration) and then run what they chose with the real executor."""
    assert (
        main(
            [
                "run",
                "-w",
                "tiny",
                "-m",
                "xeon8160_2s",
                "--workers",
                "1",
                "--policy",
                "auto",
                "--chunk",
                "auto",
                "--json",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "run: auto:" in captured.err
    from wpsim.model.workload import resolve_workload

    best = choose(resolve_workload("tiny"), XEON, None, 1, None)
    assert json.loads(captured.out)["chunk"] == best.chunk
    assert (
        main(
            [
                "validate",
                "-w",
                "tiny",
                "-m",
                "xeon8160_2s",
                "--workers",
                "1",
                "--policies",
                "auto",
                "--chunk",
                "auto",
                "--repeats",
                "1",
                "--json",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "validate: auto:" in captured.err and "helpers" not in captured.err
    assert main(["validate", "-w", "tiny", "--measured", "x.csv", "--chunk", "auto"]) == 2
    assert "--chunk auto: not with --measured" in capsys.readouterr().err


def test_chunk_auto_and_choose_agree_on_a_fixed_policy():
    """One choice: --chunk auto alone (choose_chunk, the policy object in one block) and
    --policy auto's search (choose) with the policy fixed pick the same chunk."""
    for policy in (
        get_policy("wavefront", helpers=2),
        get_policy("pipeline"),
        get_policy("layerwise"),
        get_policy("helper"),
    ):
        by_chunk = choose_chunk(W, policy, 4, XEON)
        by_search = choose(W, XEON, policy, 4, None)
        assert by_chunk.chunk == by_search.chunk
        assert by_chunk.predicted_makespan_s == pytest.approx(by_search.predicted_s, rel=1e-12)


def test_policy_auto_needs_a_cpu_model_and_chunk_auto_alone_follows_the_rule(capsys):
    assert main(["run", "-w", "tiny", "--workers", "1", "--policy", "auto"]) == 2  # no calibration
    assert main(["simulate", "-w", "tiny", "-m", "v100", "--policy", "auto"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "wpsim calibrate" in err and "gpu" in err
    assert main(["simulate", "-w", "tiny", "-m", "v100", "--chunk", "auto", "--json"]) == 0
    captured = capsys.readouterr()
    assert "simulate: --chunk auto: chunk" in captured.err and "rule" in captured.err


def test_policy_auto_meets_the_size_guard_before_choosing(tmp_path, monkeypatch, capsys):
    """10^8 steps: no schedule fits the executor; refused before the model searches."""
    import wpsim.tune

    def search_nothing(*args, **kwargs):
        raise AssertionError("schedules searched before the size guard")

    monkeypatch.setattr(wpsim.tune, "choose", search_nothing)
    path = tmp_path / "long.yaml"
    path.write_text("cell: lstm\nlayers: 1024\nhidden: 16\ninput: 16\nseq_len: 100000000\n")
    for command in (["run", "--policy", "auto"], ["validate", "--policies", "auto"]):
        assert main([*command, "-w", str(path), "-m", "xeon8160_2s", "--workers", "2"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"wpsim: error: run: workload {path} needs about ")
        assert err.count("\n") == 1


def test_validate_measured_keeps_chunk_1_by_default_and_refuses_auto(tmp_path, capsys):
    """--measured: the runs were made elsewhere, so validate's default (auto) means chunk 1."""
    from wpsim.cli import build_parser

    args = build_parser().parse_args(["validate", "--measured", "x.csv"])
    assert args.chunk is None  # auto without --measured, 1 with it
    assert main(["validate", "-w", "tiny", "--measured", str(tmp_path / "none.csv")]) == 2
    assert "--chunk" not in capsys.readouterr().err  # the missing file, not the chunk


def test_confirm_repeats_short_runs_until_enough_was_timed(monkeypatch):
    """A sub-millisecond run is timed again (interleaved) until CONFIRM_MIN_TIMED_S was timed
    in all; a long one is timed ``repeats x rounds`` times only."""
    import kernels.executor
    from wpsim import tune as tune_module
    from wpsim.model.workload import resolve_workload

    seconds_of = {1: 0.002, 2: 0.5}  # by chunk: a short run and a long one
    calls: list[tuple[int, int]] = []

    class FakeRun:
        def __init__(self, seconds: float, repeats: int) -> None:
            self.extra = {"makespans_s": [seconds] * repeats}

    def fake_execute(workload, policy, workers, chunk, repeats, warmup):
        calls.append((chunk, repeats))
        return FakeRun(seconds_of[chunk], repeats)

    monkeypatch.setattr(kernels.executor, "execute", fake_execute)
    workload = resolve_workload("tiny")
    short, long = (tune_module.Candidate("sequential", None, 1, chunk, 0.0) for chunk in (1, 2))
    timed = tune_module.confirm(workload, [short, long], repeats=3, rounds=2)
    runs = {chunk: sum(n for c, n in calls if c == chunk) for chunk in (1, 2)}
    wanted = math.ceil(tune_module.CONFIRM_MIN_TIMED_S / 0.002)
    assert runs == {1: min(wanted, tune_module.CONFIRM_MAX_RUNS), 2: 6}
    assert [c for c, _ in calls] == [1, 2, 1, 2, 1, 1]  # interleaved, then the short one again
    assert [t.measured_s for t in timed] == [0.002, 0.5]


def test_confirm_times_wavefront_and_pipeline_apart(monkeypatch):
    """The closed forms give wavefront and pipeline the same makespan, the real executor does
    not: --confirm times the best of each (and each other shape once)."""
    from wpsim import tune as tune_module
    from wpsim.model.workload import resolve_workload

    timed: list = []

    def fake_confirm(workload, candidates, repeats, warmup, rounds):
        timed.extend(candidates)
        return [replace(c, measured_s=1.0 + i) for i, c in enumerate(candidates)]

    monkeypatch.setattr(tune_module, "confirm", fake_confirm)
    t = tune(resolve_workload("course_rnn"), XEON, workers=[2], simulate=0, confirm_best=20)
    shapes = [(c.policy, c.helpers, c.workers) for c in timed]
    assert len(shapes) == len(set(shapes))
    assert ("wavefront", None, 2) in shapes and ("pipeline", None, 2) in shapes
    assert t.chosen == replace(timed[0], measured_s=1.0)


def test_confirm_times_the_best_of_every_worker_count_first(monkeypatch):
    """With room for two shapes, --confirm times the best schedule and the best on the other
    worker count, even when the model ranks other 1-worker shapes above it."""
    from wpsim import tune as tune_module
    from wpsim.model.workload import resolve_workload

    timed: list = []

    def fake_confirm(workload, candidates, repeats, warmup, rounds):
        timed.extend(candidates)
        return [replace(c, measured_s=1.0) for c in candidates]

    workload = resolve_workload("demo")  # (the model's two best shapes: both on 2 workers)
    model = tune(workload, XEON, workers=[1, 2], simulate=0)
    model_best = model.chosen
    assert {c.workers for c in model.ranking[:2]} == {2}
    monkeypatch.setattr(tune_module, "confirm", fake_confirm)
    tune(workload, XEON, workers=[1, 2], simulate=0, confirm_best=2)
    assert timed[0] == model_best
    assert {c.workers for c in timed} == {1, 2}
