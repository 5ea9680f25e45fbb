"""Benchmark `mamba_worker.context`: incremental accounting and the five compaction strategies.

Measures:
  * appends: 10,000 messages added one at a time to a `ContextManager`, with `should_compact()`
    after each; the median cost of an append (add + check) over the first and the last 1,000, and
    their ratio (goal: flat, about 1.0), plus `should_compact()` alone at 10 and at 10,000 messages;
  * strategies: each strategy compacting a 10,000-message history to half its tokens, as a ratio to
    a plain ``list(history)`` copy of the same history, and its time at 10,000 messages divided by
    its time at 2,500 (about 4 for a linear strategy). The LLM strategies talk to a pydantic-ai
    `FunctionModel` that answers at once, so the figures are the strategies' own cost.

The history imitates a tool-using agent (seeded, so runs are comparable): user prompts, assistant
text with tool calls, tool returns of 50 to 400 words, final answers; some turns call tools twice.
Tokens are counted by `mamba_worker.tokens.TokenCounter` (``cl100k_base``), warmed up, as in an agent.

Usage:
    .venv/bin/python bench/context.py            # print the figures
    .venv/bin/python bench/context.py --write    # also replace the "## Context" section of bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.settings import ModelSettings

from bench._results import write_section
from mamba_worker.context import CompactionConfig, ContextManager, get_strategy, validate_history
from mamba_worker.tokens import TokenCounter

MESSAGES = 10_000
SMALL = 2_500
WINDOW = 1_000
RUNS = 5
STRATEGIES = ["sliding_window", "summarize_older", "selective_pruning", "importance_scoring", "hybrid"]
RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "## Context"

_WORDS = (
    "def return async await import class self value result error file path line agent tool model "
    "request response message history token context window config settings worker task step lease "
    "commit store event retry timeout the a of to in is for with on that this it as be are"
).split()


def _text(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choices(_WORDS, k=rng.randint(low, high)))


def build_history(n: int, *, seed: int = 11) -> list[ModelMessage]:
    """``n`` messages of a tool-using agent; whole turns only, so the history is valid."""
    rng = random.Random(seed)
    messages: list[ModelMessage] = []
    turn = 0
    while len(messages) < n:
        messages.append(ModelRequest(parts=[UserPromptPart(_text(rng, 10, 60))]))
        for step in range(rng.choice((1, 1, 2))):
            call_id = f"call_{turn}_{step}"
            messages.append(
                ModelResponse(
                    parts=[
                        TextPart(_text(rng, 5, 30)),
                        ToolCallPart("read_file", {"path": f"src/m{turn}.py", "line": step}, call_id),
                    ]
                )
            )
            messages.append(ModelRequest(parts=[ToolReturnPart("read_file", _text(rng, 50, 400), call_id)]))
        messages.append(ModelResponse(parts=[TextPart(_text(rng, 20, 150))]))
        turn += 1
    # Cut back to a whole turn, then pad with short chat turns to exactly n.
    while len(messages) > n or not isinstance(messages[-1], ModelResponse):
        messages.pop()
    while len(messages) < n:
        messages.append(
            ModelRequest(parts=[UserPromptPart(_text(rng, 5, 20))])
            if len(messages) % 2 == 0
            else ModelResponse(parts=[TextPart(_text(rng, 5, 20))])
        )
    return messages


class InstantModel(Model):
    """Answers at once, so the figures are the strategies' own cost.

    Scores ``id % 10`` for every ``### Part id`` of a scoring request, a fixed paragraph otherwise.
    (pydantic-ai's `FunctionModel` would add its own usage estimate, a regex split of the whole
    prompt, which costs more than the strategies themselves.)
    """

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        prompt = str(messages[-1].parts[-1].content)  # type: ignore[union-attr]
        ids = re.findall(r"^### Part (\d+)$", prompt, flags=re.MULTILINE)
        if ids:
            return ModelResponse(parts=[TextPart("{" + ", ".join(f'"{i}": {int(i) % 10}' for i in ids) + "}")])
        return ModelResponse(parts=[TextPart("The user and the agent read many files. " * 20)])

    @property
    def model_name(self) -> str:
        return "instant"

    @property
    def system(self) -> str:
        return "bench"


def _timed(fn: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_appends(history: list[ModelMessage]) -> dict[str, float]:
    counter = TokenCounter()
    manager = ContextManager(
        CompactionConfig(trigger_threshold_tokens=10**12, target_tokens=10**12 // 2), token_counter=counter
    )
    per_append: list[float] = []
    clock = time.perf_counter
    gc.disable()  # a collection landing inside one append would dominate that sample
    try:
        for message in history:
            start = clock()
            manager.add_messages([message])
            manager.should_compact()
            per_append.append(clock() - start)
    finally:
        gc.enable()
    first = statistics.median(per_append[:WINDOW])
    last = statistics.median(per_append[-WINDOW:])

    def check_cost(size: int) -> float:
        small = ContextManager(token_counter=counter)
        small.add_messages(history[:size])
        calls = 100_000
        return _timed(lambda: [small.should_compact() for _ in range(calls)]) / calls

    return {
        "first_us": first * 1e6,
        "last_us": last * 1e6,
        "flat_ratio": last / first,
        "check_10_ns": check_cost(10) * 1e9,
        "check_10k_ns": check_cost(len(history)) * 1e9,
    }


async def bench_strategy(name: str, history: list[ModelMessage], counter: TokenCounter) -> tuple[float, int, int]:
    total = counter.count_messages(history)
    config = CompactionConfig(
        strategy=name,  # type: ignore[arg-type]
        trigger_threshold_tokens=total,
        target_tokens=total // 2,
        preserve_recent_turns=5,
    )
    strategy, model = get_strategy(name), InstantModel()
    outcome = await strategy.compact(history, config=config, counter=counter, model=model)
    assert validate_history(outcome.messages) == [], name
    times = []
    for _ in range(RUNS):
        gc.collect()
        start = time.perf_counter()
        await strategy.compact(history, config=config, counter=counter, model=model)
        times.append(time.perf_counter() - start)
    return statistics.median(times), outcome.removed_count, outcome.tokens_after


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs (load average {load:.1f} at start, shared with other work), "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"pydantic-ai-slim {version('pydantic-ai-slim')}, tiktoken {version('tiktoken')}"
    )


def run() -> dict[str, object]:
    environment = machine()
    history = build_history(MESSAGES)
    small = history[:SMALL]
    appends = bench_appends(history)
    counter = TokenCounter()
    total = counter.count_messages(history)  # warms the counter's cache, as an agent's would be
    counter.count_messages(small)
    copy_time = statistics.median(_timed(lambda: list(history)) for _ in range(51))
    copy_small = statistics.median(_timed(lambda: list(small)) for _ in range(51))
    # One event loop for all: `asyncio.run` on Python 3.11 reprs its finished task (result included)
    # when it restores the SIGINT handler, which for a 10,000-message outcome costs more than the work.
    rows = asyncio.run(_strategy_rows(history, small, counter, copy_time))
    return {
        "appends": appends,
        "rows": rows,
        "copy_us": copy_time * 1e6,
        "copy_small_us": copy_small * 1e6,
        "total": total,
        "machine": environment,
    }


async def _strategy_rows(
    history: list[ModelMessage], small: list[ModelMessage], counter: TokenCounter, copy_time: float
) -> list[tuple[str, float, float, float, int, int]]:
    rows = []
    for name in STRATEGIES:
        seconds, removed, after = await bench_strategy(name, history, counter)
        seconds_small, _, _ = await bench_strategy(name, small, counter)
        rows.append((name, seconds, seconds / copy_time, seconds / seconds_small, removed, after))
    return rows


def render(r: dict[str, object]) -> str:
    appends: dict[str, float] = r["appends"]  # type: ignore[assignment]
    rows: list[tuple[str, float, float, float, int, int]] = r["rows"]  # type: ignore[assignment]
    table = "\n".join(
        f"| `{name}` | {seconds * 1000:.1f} ms | {ratio:,.0f}x | {scaling:.1f} | {removed:,} | {after:,} |"
        for name, seconds, ratio, scaling, removed, after in rows
    )
    return f"""{SECTION}

### Appends: `add_messages` + `should_compact()` after each of {MESSAGES:,} appends

| figure | value |
| --- | --- |
| median append + check, first {WINDOW:,} appends | {appends["first_us"]:.1f} µs |
| median append + check, last {WINDOW:,} appends | {appends["last_us"]:.1f} µs |
| last / first (goal: flat, about 1.0) | **{appends["flat_ratio"]:.2f}** |
| `should_compact()` alone, 10 messages | {appends["check_10_ns"]:.0f} ns |
| `should_compact()` alone, {MESSAGES:,} messages | {appends["check_10k_ns"]:.0f} ns |

Flat by construction: each message is counted once when added (a new message's text is encoded,
nothing else is), the total is a running sum, and `should_compact()` compares two integers.

### Strategies on a {MESSAGES:,}-message history ({r["total"]:,} tokens, target half of that, 5 turns protected)

A plain `list(history)` copy of the same history takes {r["copy_us"]:.1f} µs ({r["copy_small_us"]:.1f} µs
for {SMALL:,} messages); each strategy's time is shown as a ratio to it. "10k / 2.5k" is the time
at {MESSAGES:,} messages over the time at {SMALL:,}: about 4 for a linear strategy.

| strategy | time (median of {RUNS}) | / list copy | 10k / 2.5k | messages removed | tokens after |
| --- | --- | --- | --- | --- | --- |
{table}

Where the time goes: each strategy asks the token counter for every message once (a warm
`TokenCounter` still walks each message's parts and looks each text up in its cache) and builds
the cut points in one pass; `summarize_older` and `importance_scoring` also render the older
messages as a transcript for their model (here a stub `Model` that answers at once). `hybrid`
runs `selective_pruning`, then `sliding_window` if needed, counting each message once. Called
through `ContextManager.compact()`, the counts come from the manager's running list instead.

- Machine: {r["machine"]}.
- Run: {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}.
- Command: `.venv/bin/python bench/context.py --write`
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="write the figures to bench/RESULTS.md")
    args = parser.parse_args()
    results = run()
    section = render(results)
    print(section)
    if args.write:
        write_section(SECTION, section, results=RESULTS)
        print(f"written to {RESULTS}")
    appends: dict[str, float] = results["appends"]  # type: ignore[assignment]
    return 0 if appends["flat_ratio"] < 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
