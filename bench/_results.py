"""Writing one benchmark's section of ``bench/RESULTS.md``, shared by the benchmark scripts."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def write_section(heading: str, text: str, *, results: Path = RESULTS) -> None:
    """Replace the section that starts with the line ``heading`` (or add it), leaving the others alone."""
    existing = results.read_text() if results.exists() else "# Benchmark results\n"
    lines = existing.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if start is None:
        body = existing if existing.endswith("\n") else existing + "\n"
        results.write_text(body + "\n" + text)
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    tail = "".join(lines[end:])
    results.write_text("".join(lines[:start]) + text + ("\n" + tail if tail else ""))
