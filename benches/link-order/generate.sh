#!/usr/bin/env bash
# Write host/link-order.txt: the functions ordinary runs of `host run`
# execute, in the order first executed, for the linker to lay out together
# (see host/build.rs and docs/benchmarks.md, "The code a run uses, laid out
# together").
#
#   bash benches/link-order/generate.sh
#
# How: `firstcall` (beside this script) runs the release host under ptrace
# with a one-shot breakpoint at the entry of every function of the binary
# and lists the ones hit. Three runs, their lists appended in this order,
# so the code every run needs comes first:
#   1. no plugins: a sleeper, a child writing 300,000 lines, a child that
#      fails and restarts, and client verbs on the API (ps, logs, events,
#      restart, stop);
#   2. the shipped plugins on examples/dev.toml, compilation cache warm;
#   3. the same with the cache cold (what a first run compiles).
# Needs: cc, nm (binutils), a release build it makes itself. ~1.5 minutes
# beside the build. Regenerate when the host's code has moved a lot: a stale
# list only loses the saving, never correctness.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/benches/link-order"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$root"

cargo build --release -p host --quiet
bin="$root/target/release/host"
cc -O2 -Wall -o "$work/firstcall" "$here/firstcall.c"

# Every function of this build: address and name, one line per name (a few
# addresses carry several names).
nm --defined-only "$bin" | awk '$2 ~ /^[tTwW]$/ { print $1, $3 }' > "$work/names"
awk '{ print $1 }' "$work/names" | sort -u > "$work/addrs"

# run NAME PLUGINS CONFIG STATE SECONDS VERB...: one traced run; client
# verbs are run against it one second apart once it serves.
run() {
    local name=$1 plugins=$2 config=$3 state=$4 secs=$5
    shift 5
    "$work/firstcall" "$work/addrs" "$work/$name.hits" -- \
        "$bin" run --plugins "$plugins" --config "$config" --state-dir "$state" \
        > "$work/$name.log" 2>&1 &
    local tracer=$!
    for _ in $(seq 100); do [ -f "$state/api.addr" ] && break; sleep 0.2; done
    local verb
    for verb in "$@"; do
        sleep 1
        # shellcheck disable=SC2086 # a verb is words
        "$bin" $verb --state-dir "$state" > /dev/null 2>&1 || echo "  (verb failed: $verb)"
    done
    sleep "$secs"
    kill -TERM "$tracer"
    wait "$tracer" || true
    echo "  $name: $(grep 'hit$' "$work/$name.log" | sed 's/^firstcall: //')"
}

mkdir -p "$work/empty"
cat > "$work/plain.toml" <<'EOF'
[process.sleeper]
command = "exec sleep 300"

[process.writer]
command = "yes 'the quick brown fox jumps over the lazy dog, a line of ordinary output from a busy child' | head -n 300000; sleep 1; echo done"

[process.failer]
command = "echo starting; echo oops >&2; exit 3"
restart = "on-failure"
max_restarts = 2
backoff = "200ms"
EOF

echo "tracing three runs of $bin"
run plain "$work/empty" "$work/plain.toml" "$work/state-plain" 8 \
    ps "logs writer" "events --limit 20" "restart sleeper" "stop sleeper" ps
run cold "$root/plugins" "$root/examples/dev.toml" "$work/state-plugins" 40 ps
run warm "$root/plugins" "$root/examples/dev.toml" "$work/state-plugins" 15 \
    ps "logs build" plugins agents sessions deps "events --type process.> --limit 20"

# The hits in order (plain, warm, cold), each address once, as names.
out="$root/host/link-order.txt"
cat "$work/plain.hits" "$work/warm.hits" "$work/cold.hits" | awk '
    NR == FNR { names[$1] = names[$1] (names[$1] == "" ? "" : "\n") $2; next }
    !seen[$1]++ { print names[$1] }' "$work/names" - > "$out"

# Sizes, for the record: how much code the list covers.
nm -S -t d --defined-only "$bin" | awk '$3 ~ /^[tTwW]$/' > "$work/sizes"
total=$(awk '!seen[$1]++ { s += $2 } END { printf "%.1f", s / 1048576 }' "$work/sizes")
listed=$(awk 'NR == FNR { want[$1] = 1; next }
    ($4 in want) && !seen[$1]++ { s += $2 } END { printf "%.1f", s / 1048576 }' "$out" "$work/sizes")
echo "wrote $out: $(wc -l < "$out") names, $listed MiB of the binary's $total MiB of functions"
echo "rebuild to apply it: cargo build --release -p host"
