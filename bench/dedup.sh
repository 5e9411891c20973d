#!/usr/bin/env bash
# Fuzzy deduplication at scale for BENCHMARKS.md: generates N customers (about 2% of them
# duplicated with typos, swapped names and missing fields), runs `strata prep` on customers
# and orders with the generated config's rules (events left out: they do not take part),
# and scores the merges against truth.csv. Release build; prints the dedup figures, the
# whole prep's wall time and peak RSS, and pairwise precision / recall.
# Usage: bench/dedup.sh [customers]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/strata-target}"
cargo build --release -p strata-cli --quiet
BIN="$CARGO_TARGET_DIR/release/strata"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(rustc --version)"
"$BIN" generate --customers "$N" --seed 42 --out "$WORK/world" >/dev/null
# The generated config without the events source.
python3 - "$WORK/world/strata.toml" <<'PY'
import re, sys
p = sys.argv[1]
text = open(p).read()
text = re.sub(r'\[sources\.events\]\npath = "events.jsonl"\n', '', text)
open(p, 'w').write(text)
PY
/usr/bin/time -f '%e %M' -o "$WORK/time" "$BIN" prep --config "$WORK/world/strata.toml" --out "$WORK/prep" | grep -v '^  /'
read -r t m <"$WORK/time"
echo "strata prep (load + rules + dedup + write, customers and orders): $t s, peak RSS $((m / 1024)) MiB"
python3 - "$WORK/world/truth.csv" "$WORK/prep/merges.jsonl" <<'PY'
import csv, itertools, json, sys
truth = {frozenset((r["customer_id"], r["duplicate_of"]))
         for r in csv.DictReader(open(sys.argv[1])) if r["duplicate_of"]}
pred = set()
for line in open(sys.argv[2]):
    c = json.loads(line)
    if c["table"] != "customers":
        continue
    for a, b in itertools.combinations([c["survivor"]] + c["merged"], 2):
        pred.add(frozenset((a, b)))
tp = len(pred & truth)
print(f"true duplicate pairs {len(truth)}, predicted {len(pred)}, correct {tp}: "
      f"precision {tp / max(1, len(pred)):.4f}, recall {tp / max(1, len(truth)):.4f}")
PY
