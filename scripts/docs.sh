#!/usr/bin/env bash
# Builds the DocC documentation of the library products (Autograd, NN, Models, Train) with the toolchain's own
# `docc`: symbol graphs from `swift build` (debug, into .build-docs, so the release build is left alone), then
# `docc convert` per module with its catalog Sources/<Module>/<Module>.docc. Any warning fails the script.
#   DOCS_OUT   where the archives go (default .build-docs/archives): <Module>.doccarchive each
#   --coverage also write docc's documentation coverage (documentation-coverage.json in each archive) and print
#              the symbols without documentation
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BUILD="$ROOT/.build-docs"
OUT="${DOCS_OUT:-$BUILD/archives}"
GRAPHS="$BUILD/symbol-graphs"
MODULES=(Autograd NN Models Train)
COVERAGE=0
for arg in "$@"; do
    case "$arg" in
        --coverage) COVERAGE=1 ;;
        *) echo "docs.sh: unknown argument '$arg' (known: --coverage)" >&2; exit 2 ;;
    esac
done

DOCC="$(command -v docc || true)"
if [ -z "$DOCC" ]; then
    DOCC="$(dirname "$(readlink -f "$(command -v swift)")")/docc"
fi
if [ ! -x "$DOCC" ]; then echo "docs.sh: no docc beside $(command -v swift)" >&2; exit 1; fi

# The graphs are written when a module compiles; an up-to-date build leaves the previous ones in place.
mkdir -p "$GRAPHS" "$OUT"
echo "[docs] symbol graphs (swift build, debug)"
for module in Models Train; do   # Models builds Autograd and NN too
    swift build --build-path "$BUILD" --target "$module" \
        -Xswiftc -emit-symbol-graph -Xswiftc -emit-symbol-graph-dir -Xswiftc "$GRAPHS" \
        -Xswiftc -symbol-graph-minimum-access-level -Xswiftc public
done

log="$BUILD/docc.log"
: > "$log"
for module in "${MODULES[@]}"; do
    # Only this module's graphs: Module.symbols.json and its extensions of other modules' types (Module@Other).
    dir="$BUILD/graphs-$module"
    rm -rf "$dir"
    mkdir -p "$dir"
    cp "$GRAPHS/$module.symbols.json" "$dir/"
    for extension in "$GRAPHS/$module"@*.symbols.json; do
        [ -e "$extension" ] && cp "$extension" "$dir/"
    done
    flags=()
    if [ "$COVERAGE" -eq 1 ]; then flags+=(--experimental-documentation-coverage --coverage-summary-level detailed); fi
    echo "[docs] docc convert $module"
    rm -rf "$OUT/$module.doccarchive"
    "$DOCC" convert "Sources/$module/$module.docc" --additional-symbol-graph-dir "$dir" \
        --fallback-display-name "$module" --fallback-bundle-identifier "groupconv.$module" \
        --output-dir "$OUT/$module.doccarchive" --warnings-as-errors "${flags[@]}" 2>&1 | tee -a "$log"
done
if grep -qiE "warning:|error:" "$log"; then
    echo "[docs] docc reported warnings or errors (above): failing" >&2
    exit 1
fi
echo "[docs] built ${MODULES[*]} into $OUT"
