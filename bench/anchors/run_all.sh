#!/usr/bin/env bash
# Reproduce the anchor numbers: services, venv, ROUNDS x every system round-robin, aggregate.
# (Mamba's copy: adds mamba_bench.py to SYSTEMS and installs this repository into the venv.)
#   bash run_all.sh                 # 3 rounds (default)
#   ANCHORS_ROUNDS=1 bash run_all.sh
# Needs: Debian redis-server (apt-get install redis-server), PostgreSQL 15 binaries in
# /usr/lib/postgresql/15/bin, Python 3.11. Everything listens on 127.0.0.1 only.
# Services this script starts are stopped (by PID) on exit; ones already running are reused.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VENV=${ANCHORS_VENV:-/tmp/anchors-venv}
ROUNDS=${ANCHORS_ROUNDS:-3}
export ANCHORS_DATA_DIR=${ANCHORS_DATA_DIR:-/tmp/anchors-data}
QUIET_PCT=${ANCHORS_QUIET_PCT:-20}      # wait for whole-machine CPU below this ...
QUIET_MAX=${ANCHORS_QUIET_MAX:-15}      # ... for at most this many seconds before each system
STAMP=$(date +%Y%m%d-%H%M%S)
RES=${ANCHORS_RESULTS:-$HERE/results/raw-$STAMP.jsonl}
mkdir -p "$HERE/results"

# 0. services (loopback only)
if ! command -v redis-server >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
fi
bash "$HERE/services.sh" start
trap 'bash "$HERE/services.sh" stop' EXIT

# 1. venv with the pinned versions
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q uv
  "$VENV/bin/uv" pip install --python "$VENV/bin/python" -r "$HERE/requirements.txt"
fi
PY="$VENV/bin/python"
# Mamba itself (for mamba_bench.py), editable from this repository; not in requirements.txt.
REPO=$(cd "$HERE/../.." && pwd)
if ! "$PY" -c "import mamba_worker" 2>/dev/null; then
  "$VENV/bin/uv" pip install --python "$PY" -e "$REPO"
fi
"$PY" -m pip freeze > "$HERE/results/pip-freeze-$STAMP.txt"

# 2. fresh state: new bench database, empty data dir
psql -h 127.0.0.1 -U postgres -qc "drop database if exists bench with (force)"
psql -h 127.0.0.1 -U postgres -qc "create database bench"
rm -rf "$ANCHORS_DATA_DIR"; mkdir -p "$ANCHORS_DATA_DIR"

SYSTEMS=(
  "floor.py --mode pg"
  "floor.py --mode sqlite-wal-normal"
  "floor.py --mode sqlite-wal-full"
  "floor.py --mode redis"
  "floor.py --mode pg+redis"
  "lg_bench.py --backend sqlite"
  "lg_bench.py --backend sqlite --batch threads"
  "lg_bench.py --backend postgres"
  "lg_bench.py --backend postgres --batch threads"
  "dbos_bench.py --backend postgres"
  "dbos_bench.py --backend sqlite"
  "dbos_bench.py --backend sqlite-wal"
  "celery_bench.py"
  "celery_bench.py --no-db"
  "mamba_bench.py --backend postgres"
  "mamba_bench.py --backend sqlite"
  "mamba_bench.py --backend postgres --inline"
  "mamba_bench.py --backend sqlite --inline"
)
N=${#SYSTEMS[@]}
cd "$HERE"
for ((r = 1; r <= ROUNDS; r++)); do
  for ((j = 0; j < N; j++)); do
    # rotate the start so no system always runs first/last in a round
    s=${SYSTEMS[$(((j + (r - 1) * 5) % N))]}
    "$PY" quiet.py "$QUIET_PCT" "$QUIET_MAX"
    echo "== round $r: $s"
    # shellcheck disable=SC2086
    if ! timeout 900 "$PY" $s --round "$r" --results "$RES" > "$ANCHORS_DATA_DIR/last.log" 2>&1; then
      echo "!! FAILED: $s (round $r)"; tail -30 "$ANCHORS_DATA_DIR/last.log"
    else
      grep '^\[' "$ANCHORS_DATA_DIR/last.log" || true
    fi
  done
done

"$PY" aggregate.py "$RES" | tee "$HERE/results/summary-$STAMP.md"
echo "raw: $RES"
