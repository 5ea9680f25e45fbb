"""Aggregate raw JSONL rows (one per system per round) into markdown tables.

usage: aggregate.py RAW.jsonl [more.jsonl ...]
Per system: median and min-max over rounds of
  - sequential ms/step (each round's value is itself the median over 20 runs),
  - throughput steps/s (50 runs at once),
  - ratio to floor, sequential: system ms/step / floor, where floor is
      (a) the adjacent probe: median single durable commit measured in the same process just
          before and after the system (PG INSERT+COMMIT; SQLite WAL FULL INSERT+COMMIT;
          + Redis LPUSH/BRPOP for Celery), and
      (b) the floor script of the same round (floor/pg, floor/sqlite-wal-full, floor/pg+redis),
  - ratio to floor, throughput: floor script steps/s (same round) / system steps/s,
  - client CPU ms per step (this process tree, batch phase), peak RSS (process tree).
"""
from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict

FLOOR_OF = {
    "langgraph/postgres": ("floor/pg", ["pg_commit_ms"]),
    "langgraph/postgres+threads": ("floor/pg", ["pg_commit_ms"]),
    "dbos/postgres": ("floor/pg", ["pg_commit_ms"]),
    "langgraph/sqlite": ("floor/sqlite-wal-full", ["sqlite_full_commit_ms"]),
    "langgraph/sqlite+threads": ("floor/sqlite-wal-full", ["sqlite_full_commit_ms"]),
    "dbos/sqlite": ("floor/sqlite-wal-full", ["sqlite_full_commit_ms"]),
    "dbos/sqlite-wal": ("floor/sqlite-wal-full", ["sqlite_full_commit_ms"]),
    "celery/chain+pg": ("floor/pg+redis", ["pg_commit_ms", "redis_hop_ms"]),
    "celery/chain-nodb": ("floor/redis", ["redis_hop_ms"]),
    "floor/pg": ("floor/pg", ["pg_commit_ms"]),
    "floor/pg+redis": ("floor/pg+redis", ["pg_commit_ms", "redis_hop_ms"]),
    "floor/redis": ("floor/redis", ["redis_hop_ms"]),
    "floor/sqlite-wal-full": ("floor/sqlite-wal-full", ["sqlite_full_commit_ms"]),
    "floor/sqlite-wal-normal": ("floor/sqlite-wal-full", ["sqlite_full_commit_ms"]),
    "mamba/postgres": ("floor/pg+redis", ["pg_commit_ms", "redis_hop_ms"]),
    "mamba/sqlite": ("floor/sqlite-wal-full", ["sqlite_full_commit_ms"]),
    "mamba-inline/postgres": ("floor/pg+redis", ["pg_commit_ms", "redis_hop_ms"]),
    "mamba-inline/sqlite": ("floor/sqlite-wal-full", ["sqlite_full_commit_ms"]),
}
ORDER = [
    "floor/pg", "floor/sqlite-wal-normal", "floor/sqlite-wal-full", "floor/redis", "floor/pg+redis",
    "langgraph/sqlite", "langgraph/sqlite+threads", "langgraph/postgres", "langgraph/postgres+threads",
    "dbos/postgres", "dbos/sqlite", "dbos/sqlite-wal", "celery/chain+pg", "celery/chain-nodb",
    "mamba/postgres", "mamba/sqlite", "mamba-inline/postgres", "mamba-inline/sqlite",
]


def mm(xs, fmt):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "n/a"
    med = statistics.median(xs)
    if len(xs) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(xs))}–{fmt.format(max(xs))})"


def main(paths):
    rows = []
    for p in paths:
        with open(p) as f:
            rows += [json.loads(line) for line in f if line.strip()]
    by_sys = defaultdict(list)
    by_round = defaultdict(dict)
    for r in rows:
        by_sys[r["system"]].append(r)
        by_round[r["round"]][r["system"]] = r

    systems = [s for s in ORDER if s in by_sys] + sorted(s for s in by_sys if s not in ORDER)
    out = []
    out.append("| system | seq ms/step | thr steps/s | seq ÷ adjacent floor | seq ÷ floor script | floor-script thr ÷ thr | client CPU ms/step (batch) | PG write xacts/step | PG WAL KB/step | peak RSS MB | n |")
    out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for s in systems:
        rs = by_sys[s]
        floor_name, probe_keys = FLOOR_OF.get(s, (None, []))
        adj, scr, thr_ratio = [], [], []
        for r in rs:
            if probe_keys:
                f = sum(r["probe"][k] for k in probe_keys)
                adj.append(r["seq_ms_per_step_median"] / f)
            fr = by_round[r["round"]].get(floor_name) if floor_name else None
            if fr:
                scr.append(r["seq_ms_per_step_median"] / fr["seq_ms_per_step_median"])
                thr_ratio.append(fr["thr_steps_per_s"] / r["thr_steps_per_s"])
        out.append(
            f"| {s} | {mm([r['seq_ms_per_step_median'] for r in rs], '{:.2f}')} "
            f"| {mm([r['thr_steps_per_s'] for r in rs], '{:.0f}')} "
            f"| {mm(adj, '{:.1f}×')} | {mm(scr, '{:.1f}×')} | {mm(thr_ratio, '{:.1f}×')} "
            f"| {mm([r['thr_client_cpu_ms_per_step'] for r in rs], '{:.2f}')} "
            f"| {statistics.median(r.get('seq_pg_write_xacts_per_step', float('nan')) for r in rs):.2f} "
            f"| {statistics.median(r.get('seq_pg_wal_bytes_per_step', float('nan')) for r in rs) / 1024:.1f} "
            f"| {max(r['peak_rss_tree_mb'] for r in rs):.0f} | {len(rs)} |"
        )
    out.append("")
    out.append("Per-round detail (seq ms/step | thr steps/s | adjacent probe pg/sqlite/redis ms | machine busy cores seq/thr | loadavg before):")
    out.append("")
    out.append("| round | system | seq | thr | probe pg / sqlite-full / redis | busy cores seq / thr | load1 | records seq/batch |")
    out.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for rnd in sorted(by_round):
        for s in systems:
            r = by_round[rnd].get(s)
            if not r:
                continue
            p = r["probe"]
            out.append(
                f"| {rnd} | {s} | {r['seq_ms_per_step_median']:.2f} | {r['thr_steps_per_s']:.0f} "
                f"| {p['pg_commit_ms']:.2f} / {p['sqlite_full_commit_ms']:.2f} / {p['redis_hop_ms']:.2f} "
                f"| {r['seq_machine_busy_cores']:.2f} / {r['thr_machine_busy_cores']:.2f} | {r['loadavg1_before']:.1f} "
                f"| {r['records_for_last_seq_run']}/{r['records_for_last_batch_run']} |"
            )
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1:])
