#!/usr/bin/env bash
# Runs the Swift benchmark and its PyTorch twin side by side, at 1 and at 2 threads (or the thread counts given in
# THREADS), and prints each measurement of both with the ratio. Extra arguments go to both benchmarks, for example
# `--repeats 11` or `--only steps,memory`.
#
#   scripts/bench_compare.sh                    # wall time, 1 and 2 threads
#   THREADS="1" scripts/bench_compare.sh --cpu-time
#
# Needs `torch` for python3 (`python3 -m pip install torch`). The machine should be otherwise idle: the two runs
# of each thread count follow each other, so that a busy neighbour hurts both about equally.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
THREADS="${THREADS:-1 2}"

if ! python3 -c 'import torch' >/dev/null 2>&1; then
    echo "bench_compare: python3 cannot import torch; install it with: python3 -m pip install torch" >&2
    exit 1
fi
swift build -c release --product bench >/dev/null
BENCH="$(swift build -c release --show-bin-path)/bench"

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
for n in $THREADS; do
    echo "running with $n thread(s)..." >&2
    "$BENCH" --threads "$n" --json "$@" > "$OUT/swift-$n.json"
    python3 scripts/bench_pytorch.py --threads "$n" --json "$@" > "$OUT/torch-$n.json"
done

python3 - "$OUT" $THREADS <<'PY'
import json, os, sys
out, threads = sys.argv[1], sys.argv[2:]
for n in threads:
    ours = json.load(open(os.path.join(out, f"swift-{n}.json")))
    theirs = json.load(open(os.path.join(out, f"torch-{n}.json")))
    print(f"\n{n} thread(s)   ours: {ours['blas']}\n              PyTorch: {theirs['blas']}")
    print(f"{'measurement':<44}{'Swift':>11}{'PyTorch':>11}  Swift ahead by")
    for key, value in ours.items():
        if not isinstance(value, (int, float)) or key == "threads" or key not in theirs:
            continue
        other = theirs[key]
        # Above 1 when Swift is ahead: less time or memory, or more GFLOP/s.
        if key.endswith(".ms") or key.endswith("_mb"):
            ratio = f"{other / value:5.2f}x" if value > 0 else "-"
        else:
            ratio = f"{value / other:5.2f}x" if other > 0 else "-"
        print(f"{key:<44}{value:>11.2f}{other:>11.2f}  {ratio}")
for key in ["c4cnn.train_step.ms"]:
    if len(threads) >= 2:
        one = json.load(open(os.path.join(out, f"swift-{threads[0]}.json"))).get(key)
        more = json.load(open(os.path.join(out, f"swift-{threads[-1]}.json"))).get(key)
        if one and more:
            print(f"\nSwift {key}: {threads[-1]} threads are {one / more:.2f}x faster than {threads[0]}")
PY
