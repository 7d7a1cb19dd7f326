"""Peak memory per task of each engine, the constants behind :mod:`wpsim.guards`.

Each measurement runs in a fresh process: it imports the engine, builds the workload, notes its
resident set size (RSS), runs the engine once and reports the growth of the peak RSS
(``ru_maxrss``) divided by the number of tasks. Two sizes per shape (the slope between them
removes what does not grow with the graph); the shapes are unidirectional inference and
bidirectional training with an output layer (more edges per task). ``--quick`` runs smaller
graphs.

Measured on the development machine (Intel Xeon (KVM), 2 cores, 24 GiB; Python 3.11),
``python benchmarks/guards.py`` (5,000 and 25,000 steps of a 10-layer LSTM), peak bytes per task:

=========  ======================  ===========================  ==========================
engine     inference, wavefront    inference, layerwise         training (2 dir., output),
                                                                wavefront / layerwise
=========  ======================  ===========================  ==========================
graph      1,653                   -                            2,217 / -
predict    2,000                   2,724                        2,646 / 3,303
simulate   2,260                   2,913                        2,859 / 3,525
compare    3,814 (5 CPU policies)  -                            4,509
run        2,000                   2,412                        2,646 / 3,127
=========  ======================  ===========================  ==========================

:data:`wpsim.guards.BYTES_PER_TASK` rounds the largest of each row up (graph 2,400, predict
3,600, simulate 3,800, compare 4,800, run 3,400). One executor worker process holds 64 MiB
(:data:`wpsim.guards.WORKER_BYTES`: 80 MiB). Refusing a 10^8-task workload took 0.35 s
(``simulate``) and 0.37 s (``predict``) for the whole process, start-up included (``wpsim
--version``: 0.35 s), at a peak of 59 MiB. PyYAML's pure-Python loader rejected a 1 MiB flow
list, the worst case :data:`wpsim.config.MAX_INPUT_BYTES` allows, in 6.3-6.5 s (two runs, the
machine shared with other work).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CHILD = r"""
import json, resource, sys
engine, shape, policy_name, seq_len = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
from wpsim.workload import Workload
from wpsim.hardware import load_machine, resolve_machine_path
from wpsim.policies import get_policy
from wpsim import accel_dispatch, analysis, graph as graph_mod, plan as plan_mod
import wpsim.analytic, wpsim.engine  # noqa: F401 - imported before the baseline
if shape == "inference":
    w = Workload(cell="lstm", layers=10, hidden=16, input=16, seq_len=seq_len)
else:
    w = Workload(cell="lstm", layers=10, hidden=16, input=16, seq_len=seq_len,
                 bidirectional=True, phase="training", output="linear", output_size=16)
machine = load_machine(resolve_machine_path("xeon8160_2s"))
policy = get_policy(policy_name)
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()
before = rss()
if engine == "graph":
    g = graph_mod.build(w)
    analysis.summarize(g)
    n = g.number_of_nodes()
elif engine == "run":  # what the coordinator holds: the graph, compiled, and the static order
    from kernels.executor._coordinator import static_order
    p = plan_mod.compile_plan(graph_mod.build(w, **policy.graph_options(w, 1)))
    static_order(p, policy, [(0,)]) if policy_name != "wavefront" else None
    n = p.n_tasks
elif engine == "compare":  # every CPU policy, results kept, as `wpsim compare` does
    results, options = [], dict(cores=16, chunk=1)
    for name in accel_dispatch.CPU_POLICIES:
        results.append(accel_dispatch.evaluate("simulate", w, machine, get_policy(name), **options))
        options["sequential_s"] = results[-1].sequential_s
    n = max(r.n_tasks for r in results)
else:
    r = accel_dispatch.evaluate(engine, w, machine, policy, cores=16, chunk=1)
    n = r.n_tasks
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"n_tasks": n, "grown": peak - before}))
"""

WORKER = r"""
import time
from kernels.executor import Executor
from wpsim.workload import Workload
w = Workload(cell="lstm", layers=1, hidden=16, input=16, seq_len=4)
with Executor(w, "sequential", workers=1) as ex:
    ex.run()
    pid = next(iter(ex._run.procs.values())).pid
    with open(f"/proc/{pid}/status") as f:
        print(next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:")))
"""

REFUSAL = r"""
import resource, runpy, sys, time
sys.argv = ["wpsim", *sys.argv[1:]]
start = time.perf_counter()
try:
    runpy.run_module("wpsim.console", run_name="__main__")
except SystemExit:
    pass
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def measure(engine: str, shape: str, policy: str, seq_len: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, engine, shape, policy, str(seq_len)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def worker_bytes() -> int:
    """Resident memory of one executor worker process (tiny workload)."""
    out = subprocess.run([sys.executable, "-c", WORKER], check=True, capture_output=True, text=True)
    return int(out.stdout.split()[-1])


def refusal(command: str) -> tuple[float, int, float]:
    """(seconds, peak bytes) of ``wpsim COMMAND`` refusing a 10^8-task workload, the whole
    process timed from outside (start-up included), and the same for ``wpsim --version``."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "e8.yaml"
        path.write_text("cell: lstm\nlayers: 1\nhidden: 16\ninput: 16\nseq_len: 100000000\n")
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", REFUSAL, command, "-w", str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.perf_counter() - start
        assert "100,000,000 tasks" in out.stderr, out.stderr
        _, peak = out.stdout.split()
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "wpsim.cli", "--version"], capture_output=True, check=True
        )
        return wall, int(peak), time.perf_counter() - start


def yaml_seconds() -> float:
    """Seconds to reject a 1 MiB flow list with wpsim's loader (the worst accepted size)."""
    import tempfile
    from pathlib import Path

    from wpsim.config import MAX_INPUT_BYTES, read_yaml
    from wpsim.errors import ConfigError

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.yaml"
        text = "a: [" + "1, " * (MAX_INPUT_BYTES // 3 - 2) + "]"
        path.write_text(text[:MAX_INPUT_BYTES])
        start = time.perf_counter()
        try:
            read_yaml(path)
        except ConfigError:
            pass
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller graphs")
    args = parser.parse_args()
    small, large = (2_000, 6_000) if args.quick else (5_000, 25_000)
    print(f"{'engine':<10}{'shape':<11}{'policy':<11}{'tasks':>10}{'bytes/task':>12}")
    for engine, policies in (
        ("graph", ["wavefront"]),
        ("predict", ["wavefront", "layerwise"]),
        ("simulate", ["wavefront", "layerwise"]),
        ("compare", ["-"]),
        ("run", ["wavefront", "layerwise"]),
    ):
        for shape in ("inference", "training"):
            for policy in policies:
                name = "wavefront" if policy == "-" else policy
                a = measure(engine, shape, name, small)
                b = measure(engine, shape, name, large)
                slope = (b["grown"] - a["grown"]) / (b["n_tasks"] - a["n_tasks"])
                print(
                    f"{engine:<10}{shape:<11}{policy:<11}{b['n_tasks']:>10,}{slope:>12,.0f}",
                    flush=True,
                )
    print(f"executor worker process: {worker_bytes() / 2**20:.0f} MiB resident")
    for command in ("simulate", "predict"):
        wall, peak, version = refusal(command)
        print(
            f"{command} refusing 10^8 tasks: {wall:.2f} s ({version:.2f} s for --version), "
            f"peak {peak / 2**20:.0f} MiB"
        )
    print(f"YAML loader, 1 MiB flow list: {yaml_seconds():.1f} s")


if __name__ == "__main__":
    main()
