#!/bin/bash
# A fuzzing campaign: each target named runs until it has used its CPU budget (user +
# system time, read from /proc), one at a time under `nice -n 19` so that it takes only
# idle CPU, then its corpus is minimised (-merge=1) into tests/fuzz-corpus/NAME, which
# every later run starts from (tests/fuzz.sh, CI's short run included). Prints, per
# target, the CPU seconds it got, the wall time, and what it found (crash-*, leak-*,
# timeout-*, slow-unit-* files in $FUZZ_BUILD/campaign-NAME).
#
#   sudo tests/fuzz-campaign.sh config:1800 selector:1800 netlink:1800 etcdkv:1800 upstream:1800
#
# Root for the netlink target's captured seeds (as tests/fuzz.sh).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD:-$top/build-fuzz}
tck=$(getconf CLK_TCK)
cpu_of() { local st; read -r -a st <"/proc/$1/stat" 2>/dev/null || return 1; echo $(((st[13] + st[14]) / tck)); }

names=""
for spec in "$@"; do names="$names ${spec%%:*}"; done
# shellcheck disable=SC2086
FUZZ_BUILD=$build FUZZ_SECONDS=1 sh "$top/tests/fuzz.sh" $names >/dev/null # build, seed, dictionaries
for spec in "$@"; do
        name=${spec%%:*} budget=${spec##*:}
        d=$build/config.dict
        [ "$name" = netlink ] && d=$build/netlink.dict
        [ "$name" = upstream ] && d=$build/upstream.dict
        [ -f "$top/tests/fuzz-$name.dict" ] && d=$top/tests/fuzz-$name.dict
        art=$build/campaign-$name
        mkdir -p "$art"
        start=$(date +%s)
        (cd "$art" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
                exec nice -n 19 "$build/tests/fuzz-$name" -dict="$d" -max_len=65536 -timeout=60 -rss_limit_mb=2048 \
                -print_final_stats=1 -close_fd_mask=1 "$build/corpus-$name" >"$art/log" 2>&1) &
        pid=$! cpu=0
        while kill -0 "$pid" 2>/dev/null; do
                cpu=$(cpu_of "$pid") || break
                [ "$cpu" -ge "$budget" ] && kill -INT "$pid"
                sleep 10
        done
        wait "$pid" || true # 72: stopped by SIGINT at the budget
        mkdir -p "$top/tests/fuzz-corpus/$name"
        "$build/tests/fuzz-$name" -merge=1 "$top/tests/fuzz-corpus/$name" "$build/corpus-$name" >"$art/merge.log" 2>&1
        echo "fuzz-$name: ${cpu} CPU s in $(($(date +%s) - start)) s; corpus $(ls "$top/tests/fuzz-corpus/$name" | wc -l) files;" \
                "found: $(cd "$art" && ls crash-* leak-* timeout-* slow-unit-* 2>/dev/null | tr '\n' ' ' || true)"
done
