"""Time torch.nn.LSTM at 1 and 2 threads, for ``wpsim validate --measured``.

Writes into ``--out``:

* ``timings.csv``: one row per round and thread count (``policy``, ``threads``, ``seconds`` and
  the workload's fields): the fastest of ``--passes`` forward passes in a row at that count,
  after a warm-up pass. Rounds are interleaved (each times every thread count once), so drift
  slower than a round cancels in the speed-up; the fastest pass filters out the passes that other
  processes interrupted (OpenMP threads that wait for a descheduled partner lose whole time
  slices: on a shared 2-core machine a 2-thread pass can take 100 times its usual time), and
  ``wpsim validate`` takes the median over the rounds;
* ``trace.json``: a ``torch.profiler`` trace (Trace Event Format) of ``--passes`` more passes
  per thread count, each inside ``record_function("wpsim policy=layerwise threads=N
  workload=...")`` (``wpsim validate`` takes their median);
* ``workload.yaml``: the workload, which the trace's events name.

In wpsim's terms PyTorch's CPU LSTM is the ``layerwise`` policy: each layer computes the input
projection of all its steps as one matrix product, then its steps one after another, every
product split across the intra-op threads (``torch.set_num_threads``). Inference, no gradients,
float32.

Run: ``python benchmarks/torch_lstm_timing.py --out out/torch_lstm``, then ``wpsim validate
--measured out/torch_lstm/timings.csv -m <this computer's machine file>`` (or the trace).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

POLICY = "layerwise"


def workload_fields(args: argparse.Namespace) -> dict[str, object]:
    return {
        "name": args.name,
        "cell": "lstm",
        "layers": args.layers,
        "hidden": args.hidden,
        "input": args.input,
        "seq_len": args.seq_len,
        "batch": args.batch,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="out/torch_lstm", help="folder for the three files")
    parser.add_argument("--name", default="torch-lstm")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--input", type=int, default=256)
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=7, help="rows per thread count")
    parser.add_argument(
        "--passes", type=int, default=5, help="passes in a row of which a row takes the fastest"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch
    import yaml
    from torch.profiler import ProfilerActivity, profile, record_function

    from wpsim.outputs import atomic_write, check_output, open_output, write_with

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("timings.csv", "trace.json", "workload.yaml"):
        check_output(out / name, "--out")
    threads = [int(t) for t in args.threads.split(",")]
    torch.manual_seed(args.seed)
    lstm = torch.nn.LSTM(args.input, args.hidden, num_layers=args.layers).eval()
    x = torch.randn(args.seq_len, args.batch, args.input)

    def forward_s(n_threads: int) -> float:
        """The fastest of ``--passes`` passes at ``n_threads``, after a warm-up pass."""
        torch.set_num_threads(n_threads)
        lstm(x)
        fastest = float("inf")
        for _ in range(args.passes):
            start = time.perf_counter()
            lstm(x)
            fastest = min(fastest, time.perf_counter() - start)
        return fastest

    fields = workload_fields(args)
    rows = []
    threads_before = torch.get_num_threads()
    with torch.no_grad():
        for _ in range(args.rounds):
            for n in threads:
                rows.append({"policy": POLICY, "threads": n, "seconds": forward_s(n), **fields})
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for n in threads:
                torch.set_num_threads(n)
                lstm(x)  # warm-up
                for _ in range(args.passes):
                    name = f"wpsim policy={POLICY} threads={n} workload=workload.yaml"
                    with record_function(name):
                        lstm(x)
    torch.set_num_threads(threads_before)
    with open_output(out / "timings.csv", "--out", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    atomic_write(out / "workload.yaml", yaml.safe_dump(fields, sort_keys=False), "--out")
    write_with(out / "trace.json", lambda tmp: prof.export_chrome_trace(str(tmp)), "--out")
    print(
        f"torch {torch.__version__}: {args.layers}-layer LSTM, H={args.hidden}, "
        f"T={args.seq_len}, batch {args.batch}; median of {args.rounds} rounds, each the "
        f"fastest of {args.passes} passes:"
    )
    base = statistics.median(r["seconds"] for r in rows if r["threads"] == threads[0])
    for n in threads:
        median = statistics.median(r["seconds"] for r in rows if r["threads"] == n)
        print(f"  {n} thread(s)  {median * 1e3:8.3f} ms  speed-up {base / median:.2f}x")
    print(f"wrote {out / 'timings.csv'}, {out / 'trace.json'}, {out / 'workload.yaml'}")


if __name__ == "__main__":
    main()
