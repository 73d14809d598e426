#!/usr/bin/env bash
# Runs the Swift benchmark and its PyTorch twin side by side, alternating them over ROUNDS rounds (default 3) at each
# thread count in THREADS (default "1 2"), each run pinned with `taskset` to the same cores (CORES, default the
# first N cores for N threads), and prints for every measurement the median of each over the rounds and the median
# of the per-round ratios. Extra arguments go to both benchmarks, for example `--repeats 11`, `--only steps,memory`
# or `--cpu-time` (process CPU time: the choice on a busy machine, meaningful at one thread only).
#
#   scripts/bench_compare.sh                                  # wall time, 1 and 2 threads, 3 rounds
#   THREADS=1 ROUNDS=5 scripts/bench_compare.sh --cpu-time
#   PYTHON=/path/to/venv/bin/python3 CORES=1 THREADS=1 scripts/bench_compare.sh --only steps
#   BENCH=.build/release/bench ROUNDS=2 scripts/bench_compare.sh --only parts   # an existing binary, no build
#
# Needs `torch` for $PYTHON (default python3). One run of each is noise on a shared machine: the rounds alternate
# Swift, PyTorch, Swift, ... so that a busy neighbour hurts both about equally, and the medians drop the outliers.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
THREADS="${THREADS:-1 2}"
ROUNDS="${ROUNDS:-3}"
PYTHON="${PYTHON:-python3}"

if ! [[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]]; then
    echo "bench_compare: ROUNDS must be a positive integer, not '$ROUNDS'" >&2
    exit 2
fi
if ! "$PYTHON" -c 'import torch' >/dev/null 2>&1; then
    echo "bench_compare: $PYTHON cannot import torch; install it with: $PYTHON -m pip install torch" >&2
    exit 1
fi
PIN=()
if command -v taskset >/dev/null 2>&1; then PIN=(taskset -c); else
    echo "bench_compare: taskset not found; the runs are not pinned" >&2
fi
# BENCH names a bench binary already built; by default the release one is built here.
if [ -z "${BENCH:-}" ]; then
    swift build -c release --product bench >/dev/null
    BENCH="$(swift build -c release --show-bin-path)/bench"
fi

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
echo "load before: $(uptime)" >&2
for n in $THREADS; do
    cores="${CORES:-0-$((n - 1))}"
    for round in $(seq 1 "$ROUNDS"); do
        echo "threads $n, round $round of $ROUNDS (cores $cores)..." >&2
        if [ ${#PIN[@]} -gt 0 ]; then
            "${PIN[@]}" "$cores" "$BENCH" --threads "$n" --json "$@" > "$OUT/swift-$n-$round.json"
            "${PIN[@]}" "$cores" "$PYTHON" scripts/bench_pytorch.py --threads "$n" --json "$@" \
                > "$OUT/torch-$n-$round.json"
        else
            "$BENCH" --threads "$n" --json "$@" > "$OUT/swift-$n-$round.json"
            "$PYTHON" scripts/bench_pytorch.py --threads "$n" --json "$@" > "$OUT/torch-$n-$round.json"
        fi
    done
done
echo "load after: $(uptime)" >&2

"$PYTHON" - "$OUT" "$ROUNDS" $THREADS <<'PY'
import json, os, statistics, sys
out, rounds, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def load(kind, n, r):
    return json.load(open(os.path.join(out, f"{kind}-{n}-{r}.json")))
def lower_is_better(key):
    return key.endswith(".ms") or key.endswith("_mb")
medians = {}
for n in threads:
    ours = [load("swift", n, r) for r in range(1, rounds + 1)]
    theirs = [load("torch", n, r) for r in range(1, rounds + 1)]
    print(f"\n{n} thread(s), {rounds} alternating round(s); medians over the rounds")
    print(f"  ours: {ours[0]['blas']}" + (f"; kernels: {ours[0]['kernels']}" if "kernels" in ours[0] else ""))
    print(f"  PyTorch: {theirs[0]['blas']}")
    print(f"{'measurement':<44}{'Swift':>11}{'PyTorch':>11}  Swift ahead by (median of round ratios, range)")
    for key, value in ours[0].items():
        if not isinstance(value, (int, float)) or key == "threads" or key not in theirs[0]:
            continue
        a = [o[key] for o in ours if key in o]
        b = [t[key] for t in theirs if key in t]
        # Above 1 when Swift is ahead: less time or memory, or more GFLOP/s.
        ratios = [(y / x if lower_is_better(key) else x / y) for x, y in zip(a, b) if x > 0 and y > 0]
        medians[(n, key)] = statistics.median(a)
        ratio = (f"{statistics.median(ratios):5.2f}x  ({min(ratios):.2f}-{max(ratios):.2f})"
                 if ratios else "-")
        print(f"{key:<44}{statistics.median(a):>11.2f}{statistics.median(b):>11.2f}  {ratio}")
key = "c4cnn.train_step.ms"
if len(threads) >= 2 and (threads[0], key) in medians and (threads[-1], key) in medians:
    one, more = medians[(threads[0], key)], medians[(threads[-1], key)]
    print(f"\nSwift {key}: {threads[-1]} threads are {one / more:.2f}x faster than {threads[0]} (medians)")
PY
