"""A/B timing of the durable runtime: this checkout against a git ref, in interleaved rounds.

On a shared 2-vCPU machine one run of `durable_parts.py` or `durable.py` moves by up to 2× within
minutes, far more than most changes to the runtime. Interleaving the two versions round by round
exposes both to the same minutes; the medians, and how many rounds each side won, are what to
report. The ref is checked out in a temporary git worktree, and every round runs the script from
that tree (its own `mamba_worker`, and for `durable.py` its own Celery workers, which the script
starts with its tree on PYTHONPATH).

    .venv/bin/python bench/durable_ab.py --base efd8bd2 --rounds 5
    .venv/bin/python bench/durable_ab.py --base HEAD~1 --bench durable --mode inline --rounds 6

The working tree is what runs as "this checkout", uncommitted changes included.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What each script prints for one run: the ms per step, then a CPU figure (durable_parts.py: this
# process's CPU per step; durable.py: the workers' CPU per step in the sequential runs), and for
# durable.py the throughput (steps/s with 50 runs at once) and the paired overhead ÷ floor.
PATTERNS = {
    "parts": re.compile(r"mode \w+: (?P<ms>[\d.]+) ms/step, this process's CPU (?P<cpu>[\d.]+) ms/step"),
    "durable": re.compile(
        r"\] mamba (?P<ms>[\d.]+) ms/step, (?P<thr>[\d.]+) steps/s \| overhead ÷ floor, paired: (?P<paired>[\d.]+)"
        r".*'seq_worker_cpu_ms_per_step': (?P<cpu>[\d.]+)"
    ),
}


def one_round(tree: Path, argv: list[str], pattern: re.Pattern[str]) -> dict[str, float]:
    """Run the benchmark script of ``tree`` once; its figures (ms and CPU per step, and what else it reports)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, *argv], cwd=tree, env=env, capture_output=True, text=True, check=False)
    found = pattern.search(done.stdout)
    if done.returncode != 0 or found is None:
        command = " ".join(argv)
        raise SystemExit(
            f"{command} in {tree} failed (exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    return {name: float(value) for name, value in found.groupdict().items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="the git ref to compare this checkout with")
    parser.add_argument("--bench", choices=["parts", "durable"], default="parts")
    parser.add_argument("--mode", choices=["inline", "hop"], default="inline")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20, help="durable_parts.py's runs per round")
    args = parser.parse_args()
    if args.bench == "parts":
        argv = ["bench/durable_parts.py", "--mode", args.mode, "--runs", str(args.runs)]
    else:
        argv = ["bench/durable.py", "--backend", "redis+postgres", "--mode", args.mode]
    pattern = PATTERNS[args.bench]
    with tempfile.TemporaryDirectory(prefix="mamba-ab-") as scratch:
        base_tree = Path(scratch) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(base_tree), args.base], cwd=ROOT, check=True)
        try:
            results: dict[str, list[dict[str, float]]] = {"this": [], "base": []}
            for number in range(1, args.rounds + 1):
                # Alternate which goes first: the first of a pair may meet a different minute.
                order = [("this", ROOT), ("base", base_tree)]
                for name, tree in order if number % 2 else reversed(order):
                    results[name].append(one_round(tree, argv, pattern))
                print(f"round {number}: this {_figures(results['this'][-1])}; base {_figures(results['base'][-1])}")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=ROOT, check=False)
    won = sum(this["ms"] < base["ms"] for this, base in zip(results["this"], results["base"], strict=True))
    for name in ("this", "base"):
        medians = {key: statistics.median(figures[key] for figures in results[name]) for key in results[name][0]}
        print(f"{name}: medians {_figures(medians)}")
    print(f"this checkout was faster in {won} of {args.rounds} rounds ({' '.join(argv)}; base {args.base})")


def _figures(figures: dict[str, float]) -> str:
    text = f"{figures['ms']:.2f} ms/step (CPU {figures['cpu']:.2f})"
    if "thr" in figures:
        text += f", {figures['thr']:.0f} steps/s, paired overhead ÷ floor {figures['paired']:.2f}"
    return text


if __name__ == "__main__":
    main()
