#!/usr/bin/env bash
# End-to-end timings for BENCHMARKS.md: quickstart on CDNOW, generating 1M customers, and a
# full run on the generated world. Release build; medians of 3 runs; peak RSS from GNU time.
# Usage: bench/end_to_end.sh [customers]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/strata-target}"
cargo build --release -p strata-cli --quiet
BIN="$CARGO_TARGET_DIR/release/strata"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# Runs "$@" 3 times; prints the median wall seconds and the largest peak RSS (MiB).
measure() {
  local times=() rss=0
  for _ in 1 2 3; do
    /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >/dev/null 2>&1
    read -r t m <"$WORK/time"
    times+=("$t")
    (( m > rss )) && rss=$m
  done
  printf '%s s (median of 3: %s), peak RSS %d MiB\n' \
    "$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p)" "${times[*]}" $((rss / 1024))
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(rustc --version)"
echo -n "quickstart (CDNOW, 23,570 customers): "
measure "$BIN" quickstart --out "$WORK/qs"
echo -n "generate --customers $N: "
measure "$BIN" generate --customers "$N" --seed 42 --out "$WORK/world"
du -sh "$WORK/world"/*.csv "$WORK/world"/*.jsonl | sed 's/^/  /'
echo -n "run on the generated world ($N customers): "
measure "$BIN" run --config "$WORK/world/strata.toml"
"$BIN" run --config "$WORK/world/strata.toml" | grep -E "silhouette|rows read"

PY=$(../shared/bench/setup.sh 2>/dev/null | tail -1 || true)
if [ -x "${PY:-}" ]; then
  echo "scikit-learn, model selection only, on the quickstart's features (RAYON/OMP threads: ${OMP_NUM_THREADS:-all}):"
  "$BIN" quickstart --out "$WORK/qs" >/dev/null 2>&1
  "$PY" bench/quickstart_vs_sklearn.py "$WORK/qs"
fi
