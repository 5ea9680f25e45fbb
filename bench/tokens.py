"""Benchmark `TokenCounter.count_messages` on a 10,000-message agent history.

Measures:
  * tokens/second of a full count with a cold cache (a fresh counter);
  * the cost of counting again after one message was appended, as a ratio to the full count
    (goal: under 1%), and how many texts that re-count encoded.

The history imitates an agent working on a code base: user questions, assistant text with tool
calls, tool returns holding file excerpts of varying length, final answers. It is deterministic
(seeded), so runs are comparable.

Usage:
    .venv/bin/python bench/tokens.py            # print the figures
    .venv/bin/python bench/tokens.py --write    # also replace the "## Tokens" section of bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import tiktoken
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.messages import UserPromptPart as Prompt

from bench._results import write_section
from mamba_worker.tokens import TokenCounter

MESSAGES = 10_000
FULL_RUNS = 5
APPENDS = 30
RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "## Tokens"

_WORDS = (
    "def return async await import class self value result error file path line agent tool model "
    "request response message history token context window config settings worker task step lease "
    "commit store event retry timeout the a of to in is for with on that this it as be are"
).split()


def _text(rng: random.Random, low: int, high: int) -> str:
    words = rng.choices(_WORDS, k=rng.randint(low, high))
    lines = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    return "\n".join(lines)


def build_history(n: int, *, seed: int = 7) -> list[ModelMessage]:
    """``n`` messages in the rhythm of a tool-using agent, with realistic part sizes."""
    rng = random.Random(seed)
    messages: list[ModelMessage] = []
    i = 0
    while len(messages) < n:
        call_id = f"call_{i}"
        turn: list[ModelMessage] = [
            ModelRequest(parts=[Prompt(_text(rng, 10, 60))]),
            ModelResponse(
                parts=[
                    TextPart(_text(rng, 5, 30)),
                    ToolCallPart("read_file", {"path": f"src/module_{i}.py", "limit": rng.randint(10, 200)}, call_id),
                ]
            ),
            ModelRequest(parts=[ToolReturnPart("read_file", _text(rng, 50, 600), tool_call_id=call_id)]),
            ModelResponse(parts=[TextPart(_text(rng, 20, 150))]),
        ]
        messages.extend(turn)
        i += 1
    return messages[:n]


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
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, tiktoken {tiktoken.__version__}"
    )


def _timed(fn: object) -> float:
    # As timeit does: no garbage collection inside the timed call.
    gc.disable()
    try:
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        return time.perf_counter() - start
    finally:
        gc.enable()


def run() -> dict[str, float | int | str]:
    history = build_history(MESSAGES)

    full_times: list[float] = []
    tokens = 0
    counter = TokenCounter()
    for _ in range(FULL_RUNS):
        counter = TokenCounter()  # a fresh counter: nothing cached
        result: list[int] = []
        full_times.append(_timed(lambda c=counter, out=result: out.append(c.count_messages(history))))
        tokens = result[0]
    full = statistics.median(full_times)

    # `counter` is warm now. Append one new message at a time and count the whole history again.
    encoded: list[str] = []
    original = tiktoken.Encoding.encode_ordinary

    def spy(self: tiktoken.Encoding, text: str) -> list[int]:
        encoded.append(text)
        return original(self, text)

    rng = random.Random(99)
    recount_times: list[float] = []
    encoded_per_recount: list[int] = []
    tiktoken.Encoding.encode_ordinary = spy  # type: ignore[method-assign]
    try:
        for k in range(APPENDS):
            history.append(ModelRequest(parts=[Prompt(f"follow-up {k}: " + _text(rng, 10, 60))]))
            encoded.clear()
            recount_times.append(_timed(lambda: counter.count_messages(history)))
            encoded_per_recount.append(len(encoded))
        unchanged = statistics.median(_timed(lambda: counter.count_messages(history)) for _ in range(10))
    finally:
        tiktoken.Encoding.encode_ordinary = original  # type: ignore[method-assign]
    recount = statistics.median(recount_times)
    full_best = min(full_times)
    recount_best = min(recount_times)

    return {
        "messages": MESSAGES,
        "tokens": tokens,
        "full_s": full,
        "full_min_s": full_best,
        "tokens_per_s": tokens / full,
        "recount_s": recount,
        "recount_min_s": recount_best,
        "ratio": recount / full,
        "ratio_best": recount_best / full_best,
        "unchanged_s": unchanged,
        "encoded_per_recount": max(encoded_per_recount),
        "machine": machine(),
    }


def render(r: dict[str, float | int | str]) -> str:
    def ms(key: str) -> str:
        return f"{float(r[key]) * 1000:.1f} ms"

    def pct(key: str) -> str:
        return f"{float(r[key]) * 100:.2f}%"

    return f"""{SECTION}

`TokenCounter.count_messages` on a {r["messages"]:,}-message agent history ({r["tokens"]:,} tokens;
user prompts, assistant text, tool calls, tool returns of 50 to 600 words), `cl100k_base` offline.

| figure | value |
| --- | --- |
| full count, cold cache (median of {FULL_RUNS}) | {ms("full_s")} (best {ms("full_min_s")}) |
| throughput, cold cache | {float(r["tokens_per_s"]) / 1e6:.2f} M tokens/s |
| re-count after appending one message (median of {APPENDS}) | {ms("recount_s")} (best {ms("recount_min_s")}) |
| re-count / full count, medians (goal < 1%) | **{pct("ratio")}** |
| re-count / full count, best runs | **{pct("ratio_best")}** |
| re-count of an unchanged history (median of 10) | {ms("unchanged_s")} |
| texts encoded by a re-count after one append (spy on tiktoken) | {r["encoded_per_recount"]} |

Why a re-count is cheap: every text piece's count is cached by its content, so unchanged messages
cost one dictionary lookup per piece (the lookup compares the same string object, whose hash is
cached) and only the new message is encoded (the spy row above).

Why it is not cheaper: a re-count still reads every part of every message, because a message may
have been mutated in place and correctness comes first (a changed message must never reuse a
stale count). That walk is pure Python, under a microsecond per part, against tens of
microseconds to encode a message of this history (~130 tokens); the ratio falls as messages grow
(tool returns holding whole files) and rises as they shrink. Going below 1% on this machine would
need a cache keyed on message identity that trusts messages never to change in place, which this
package does not do. This box has 2 cores shared with other work: figures move by 2x between
runs, so both the medians and the best runs are given.

- Machine: {r["machine"]}.
- Run: {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}.
- Command: `.venv/bin/python bench/tokens.py --write`
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
    met = float(results["ratio"]) < 0.01
    print(f"goal (re-count under 1% of a full count): {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
