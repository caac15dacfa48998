#!/bin/sh
# Build the libFuzzer targets (tests/fuzz-*.c) with meson (-Dfuzz=true: clang, ASan and
# UBSan, every library instrumented) in a build folder of their own, seed each corpus
# (config, selector: from tests/fixtures; netlink: messages the kernel sends in a
# throwaway namespace, captured by tests/fuzz-netlink-capture.py when run as root;
# upstream: the JSON golden files of tests/golden/upstream; etcd: answers of a real etcd,
# captured by tests/fuzz-etcd-capture.py when run as root with etcd installed; every
# target: the minimised corpus kept in tests/fuzz-corpus/NAME),
# and run every target for FUZZ_SECONDS (default 60). Exits non-zero on any crash,
# leak, timeout or sanitizer report; the reproducer is left in the build folder
# (crash-*, leak-*, timeout-*).
#
#   FUZZ_SECONDS=300 sh tests/fuzz.sh            # all targets
#   sh tests/fuzz.sh config                      # only fuzz-config
#   FUZZ_BUILD=/tmp/fuzz FUZZ_JOBS=4 sh tests/fuzz.sh
#
# The corpus grows in $FUZZ_BUILD/corpus-NAME and is reused by the next run.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD:-$top/build-fuzz}
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-1}
cc=${CLANG:-clang}

if ! command -v "$cc" >/dev/null 2>&1; then
        echo "fuzz.sh: $cc not found (apt-get install clang)" >&2
        exit 1
fi

# The targets are meson's (tests/meson.build); a folder built by an older fuzz.sh by
# hand has no build.ninja and is set up afresh (its corpora stay).
if [ ! -f "$build/build.ninja" ]; then
        mkdir -p "$build"
        CC=$cc meson setup "$build" "$top" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
                --buildtype=debugoptimized >"$build/setup.log" 2>&1 || {
                cat "$build/setup.log" >&2
                exit 1
        }
fi

targets=""
for src in "$top"/tests/fuzz-*.c; do
        name=$(basename "$src" .c)
        name=${name#fuzz-}
        if [ $# -gt 0 ]; then
                case " $* " in *" $name "*) ;; *) continue ;; esac
        fi
        targets="$targets $name"
done
if [ -z "$targets" ]; then
        echo "fuzz.sh: no fuzz target matches: $*" >&2
        exit 1
fi
echo "fuzz.sh: building$(for t in $targets; do printf ' fuzz-%s' "$t"; done)"
# shellcheck disable=SC2046
ninja -C "$build" $(for t in $targets; do printf ' tests/fuzz-%s' "$t"; done) >"$build/build.log" 2>&1 || {
        tail -40 "$build/build.log" >&2
        exit 1
}

# Words the inputs are made of: YAML syntax, Calico kinds and keys, selector operators.
dict="$build/config.dict"
cat >"$dict" <<'EOF'
"---"
"..."
": "
"- "
"\x0a  "
"\x0a    "
"{"
"}"
"["
"]"
"&a "
"*a"
"!!str "
"'"
"\""
"#"
"|"
">"
"apiVersion: "
"kind: "
"metadata:"
"name: "
"spec:"
"items:"
"labels:"
"annotations:"
"projectcalico.org/v3"
"crd.projectcalico.org/v1"
"v1"
"List"
"IPPoolList"
"IPPool"
"Node"
"BlockAffinity"
"IPAMBlock"
"FelixConfiguration"
"cidr: "
"blockSize: "
"ipipMode: "
"vxlanMode: "
"natOutgoing: "
"disabled: "
"nodeSelector: "
"ipip:"
"enabled: "
"mode: "
"always"
"cross-subnet"
"Never"
"Always"
"CrossSubnet"
"true"
"false"
"null"
"~"
"allowedUses: "
"bgp:"
"ipv4Address: "
"ipv4IPIPTunnelAddr: "
"ipv4VXLANTunnelAddr: "
"projectcalico.org/IPv4Address: "
"status:"
"addresses:"
"address: "
"type: "
"InternalIP"
"podCIDR: "
"podCIDRs:"
"node: "
"state: "
"confirmed"
"deleted: "
"affinity: "
"host:"
"host:node1"
"ipipEnabled: "
"vxlanEnabled: "
"deviceRouteProtocol: "
"default"
"node.node1"
"node1"
"10.1.0.0/16"
"10.1.0.0/26"
"10.1.0.64/26"
"192.168.10.11/24"
"fd00::/48"
"fd00::40/122"
"::/0"
"0.0.0.0/0"
"/32"
"/128"
"all()"
"has("
"!has("
" == "
" != "
" in {"
" not in {"
" contains "
" starts with "
" ends with "
" && "
" || "
"nodeName: "
"nodeLabels:"
"uplink: "
"interface="
"can-reach="
"auto"
"resources:"
"routeProtocol: "
"routeMetric: "
"routeTable: "
"main"
"localBlockRoute: "
"blackhole"
"unreachable"
"none"
"tunnelDevices:"
"vxlanV6: "
"resyncSeconds: "
"proxyDelay: "
"keep"
EOF

# Netlink: attribute headers (length, type; little-endian) and names the parsers compare.
nldict="$build/netlink.dict"
cat >"$nldict" <<'EOF'
"arp_cache\x00"
"eth0\x00"
"\x08\x00\x01\x00"
"\x08\x00\x04\x00"
"\x08\x00\x05\x00"
"\x08\x00\x06\x00"
"\x08\x00\x0f\x00"
"\x14\x00\x01\x00"
"\x0c\x00\x01\x00"
"\x0e\x00\x03\x00"
"\x0c\x00\x12\x00"
"\x02\x00\x00\x00"
"\x0a\x00\x00\x00"
"\xff\xff\xff\xff"
EOF

# The upstream routes JSON (--since files).
updict="$build/upstream.dict"
cat >"$updict" <<'EOF'
"{"
"}"
"["
"]"
","
":"
"\""
"\\u0000"
"routes"
"prefix"
"via"
"node"
"kind"
"block"
"aggregate"
"borrowed"
"missing"
"counts"
"10.244.0.0/26"
"192.168.1.11"
"fd00:244::/123"
"fd00:1::c"
"/32"
"/128"
EOF

status=0
for name in $targets; do
        corpus="$build/corpus-$name"
        mkdir -p "$corpus"
        # The minimised corpus kept in the repository (tests/fuzz-corpus/NAME: what the
        # long campaigns found, README "Fuzzing"): every run starts from it.
        if [ -d "$top/tests/fuzz-corpus/$name" ]; then
                cp "$top/tests/fuzz-corpus/$name"/* "$corpus/" 2>/dev/null || true
        fi
        if [ "$name" = netlink ]; then
                # Once per corpus: each capture differs a little (sequence numbers,
                # timestamps), and what it adds is already covered.
                if ls "$corpus"/seed-nl-* >/dev/null 2>&1; then
                        :
                elif [ "$(id -u)" = 0 ] && command -v ip >/dev/null 2>&1; then
                        python3 "$top/tests/fuzz-netlink-capture.py" "$corpus" ||
                                echo "fuzz.sh: capturing netlink seeds failed; fuzzing from what the corpus holds" >&2
                else
                        echo "fuzz.sh: not root: no captured netlink seeds (the corpus starts from what it holds)" >&2
                fi
        fi
        if [ "$name" = etcd ] && ! ls "$corpus"/seed-etcd-* >/dev/null 2>&1; then
                if [ "$(id -u)" = 0 ] && command -v etcd >/dev/null 2>&1 && command -v curl >/dev/null 2>&1; then
                        python3 "$top/tests/fuzz-etcd-capture.py" "$corpus" ||
                                echo "fuzz.sh: capturing etcd seeds failed; fuzzing from what the corpus holds" >&2
                fi
        fi
        # Seeds: every fixture (good and bad) and the example configuration, named by
        # content (several fixtures share a file name); for the selector target, the
        # nodeSelector values they hold.
        if [ "$name" = upstream ]; then
                for f in "$top"/tests/golden/upstream/json.*; do
                        cp "$f" "$corpus/seed-$(sha1sum <"$f" | cut -c1-16)"
                done
        fi
        [ "$name" = netlink ] || [ "$name" = upstream ] || [ "$name" = etcdkv ] || [ "$name" = etcd ] ||
        find "$top/tests/fixtures" "$top/config/example" -type f \( -name '*.yaml' -o -name '*.yml' \) |
                while read -r f; do
                        if [ "$name" = selector ]; then
                                sed -n 's/^ *nodeSelector: *//p' "$f" | while read -r sel; do
                                        h=$(printf '%s' "$sel" | sha1sum | cut -c1-16)
                                        printf '%s' "$sel" >"$corpus/seed-$h"
                                done
                        else
                                h=$(sha1sum <"$f" | cut -c1-16)
                                cp "$f" "$corpus/seed-$h"
                        fi
                done
        parallel=""
        [ "$jobs" -gt 1 ] && parallel="-jobs=$jobs -workers=$jobs"
        echo "fuzz.sh: running fuzz-$name for ${seconds}s"
        log="$build/fuzz-$name.log"
        d=$dict
        [ "$name" = netlink ] && d=$nldict
        [ "$name" = upstream ] && d=$updict
        # etcd keys and JSON values (fuzz-etcdkv), etcd's answers (fuzz-etcd): a
        # dictionary kept beside the target.
        [ -f "$top/tests/fuzz-$name.dict" ] && d="$top/tests/fuzz-$name.dict"
        # shellcheck disable=SC2086
        if (cd "$build" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
                UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
                "./tests/fuzz-$name" -max_total_time="$seconds" -dict="$d" -max_len=65536 -timeout=10 \
                -rss_limit_mb=2048 -print_final_stats=1 $parallel "$corpus" >"$log" 2>&1); then
                grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|^#[0-9]+.*DONE' "$log" | tail -3 || true
        else
                status=1
                echo "fuzz.sh: fuzz-$name FAILED (see $log)" >&2
                tail -40 "$log" >&2
        fi
done
exit $status
