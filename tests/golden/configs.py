"""The golden set: about 200 configurations whose makespans and per-task schedules must not move.

Refactors are checked against it: ``tests/test_golden.py`` re-runs every configuration and compares
makespans to 12 significant digits and every task's (cores, start, end) exactly as stored (12
significant digits). A change that is *meant* to move numbers regenerates the file with
``python tests/golden/generate.py`` and says why in its commit message.

A configuration is plain data (workload fields, machine name, policy and options); the only code
that depends on wpsim's API is :func:`run_config` in ``generate.py``.
"""

from __future__ import annotations

import itertools

#: Small workloads: every cell, uni/bi, inference/training, sparse, an output layer.
WORKLOADS: dict[str, dict] = {
    "lstm2": dict(cell="lstm", layers=2, hidden=64, input=32, seq_len=8, batch=1),
    "lstm4": dict(cell="lstm", layers=4, hidden=256, input=256, seq_len=12, batch=1),
    "gru3bi": dict(
        cell="gru", layers=3, hidden=128, input=64, seq_len=6, batch=2, bidirectional=True
    ),
    "rnn3out": dict(
        cell="rnn",
        layers=3,
        hidden=128,
        input=64,
        seq_len=8,
        batch=1,
        output="softmax",
        output_size=50,
    ),
    "lstm2train": dict(
        cell="lstm", layers=2, hidden=128, input=64, seq_len=6, batch=2, phase="training"
    ),
    "gru2trainbi": dict(
        cell="gru",
        layers=2,
        hidden=64,
        input=64,
        seq_len=5,
        batch=1,
        bidirectional=True,
        phase="training",
    ),
    "lstm3sparse": dict(
        cell="lstm", layers=3, hidden=512, input=512, seq_len=6, batch=4, density=0.3
    ),
    "lstm6big": dict(cell="lstm", layers=6, hidden=1024, input=1024, seq_len=10, batch=1),
    "rnn6train": dict(
        cell="rnn", layers=6, hidden=1024, input=1024, seq_len=6, batch=1, phase="training"
    ),
}

CPU_POLICIES = [
    ("sequential", {}),
    ("layerwise", {}),
    ("wavefront", {}),
    ("pipeline", {}),
    ("helper", {"helpers": 2}),
    ("wavefront", {"helpers": 2}),
    ("multiprogram", {"instances": 2}),
]


def configs() -> list[dict]:
    """Every configuration, in a fixed order, each with a unique ``id``."""
    out: list[dict] = []
    # CPU: every workload x policy on 8 cores of the Xeon node (both engines), plus variations
    for wname, (policy, opts) in itertools.product(WORKLOADS, CPU_POLICIES):
        for engine in ("simulate", "predict"):
            out.append(
                dict(
                    engine=engine,
                    workload=wname,
                    machine="xeon8160_2s",
                    policy=policy,
                    options=opts,
                    cores=8,
                    chunk=1,
                    granularity="cell",
                )
            )
    for wname, machine, cores, chunk in itertools.product(
        ["lstm4", "gru3bi", "lstm2train"], ["epyc7742", "desktop8"], [4], [1, 3]
    ):
        for policy in ("wavefront", "layerwise"):
            out.append(
                dict(
                    engine="simulate",
                    workload=wname,
                    machine=machine,
                    policy=policy,
                    options={},
                    cores=cores,
                    chunk=chunk,
                    granularity="cell",
                )
            )
    for wname in ["lstm2", "rnn3out", "lstm2train"]:
        for chunk in (1, 2):
            out.append(
                dict(
                    engine="simulate",
                    workload=wname,
                    machine="xeon8160_2s",
                    policy="wavefront",
                    options={},
                    cores=4,
                    chunk=chunk,
                    granularity="op",
                )
            )
    for cores in (1, 2, 24, 48):
        out.append(
            dict(
                engine="simulate",
                workload="lstm6big",
                machine="xeon8160_2s",
                policy="wavefront",
                options={},
                cores=cores,
                chunk=1,
                granularity="cell",
            )
        )
    for policy, opts in CPU_POLICIES:
        out.append(
            dict(
                engine="simulate",
                workload="lstm4",
                machine="xeon8160_2s",
                policy=policy,
                options=opts,
                cores=8,
                chunk=1,
                granularity="cell",
                cost="ideal",
            )
        )
    # accelerator modes
    for wname, (policy, opts) in itertools.product(
        ["lstm2", "lstm4", "gru3bi"],
        [
            ("sequential", {}),
            ("wavefront", {}),
            ("pipeline", {}),
            ("helper", {}),
            ("multiprogram", {"instances": 2}),
        ],
    ):
        for engine in ("simulate", "predict"):
            out.append(
                dict(
                    engine=engine,
                    workload=wname,
                    machine="lstm_accel_2core",
                    policy=policy,
                    options=opts,
                    cores=None,
                    chunk=1,
                    granularity="cell",
                )
            )
    # GPU policies
    for wname, machine, policy in itertools.product(
        ["lstm4", "lstm3sparse", "gru3bi"],
        ["titanx_maxwell", "v100"],
        ["gemm", "sparse_gemm", "streams", "persistent_barrier", "persistent"],
    ):
        for engine in ("simulate", "predict"):
            out.append(
                dict(
                    engine=engine,
                    workload=wname,
                    machine=machine,
                    policy=policy,
                    options={},
                    cores=None,
                    chunk=1,
                    granularity="cell",
                )
            )
    for i, cfg in enumerate(out):
        cfg.setdefault("cost", "model")
        cfg["id"] = f"{i:03d}-{cfg['engine']}-{cfg['workload']}-{cfg['machine']}-{cfg['policy']}"
    return out
