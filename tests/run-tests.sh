#!/bin/sh
# The whole test suite: unit tests and real-kernel integration tests under
# AddressSanitizer/UBSan, the unit tests again under valgrind and the integration
# suites with the daemon under valgrind, and a short fuzz run.
# Needs root (network namespaces). Usage: sudo tests/run-tests.sh
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
sh tests/deps.sh
werror=false
[ "${CI:-}" = true ] && werror=true

# 1. ASan + UBSan build: every test.
if [ ! -d build-asan ]; then
        meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=$werror
fi
ninja -C build-asan
meson test -C build-asan --print-errorlogs --num-processes 2

# 2. Plain build under valgrind: the unit suite, then the integration suites with
# calico-underlayd under valgrind (test setup "valgrind", suite "valgrind": see
# tests/meson.build; about 8 minutes). Logs: meson-logs/testlog-valgrind.json and
# meson-logs/testlog-integration-valgrind.json.
if [ ! -d build-valgrind ]; then
        meson setup build-valgrind -Dwerror=$werror
fi
ninja -C build-valgrind
meson test -C build-valgrind --suite unit --print-errorlogs --num-processes 2 \
        --wrapper 'valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect -q'
meson test -C build-valgrind --setup valgrind --suite valgrind --print-errorlogs \
        --logbase testlog-integration

# 3. A short fuzz run of every target (libFuzzer, clang).
if [ -x tests/fuzz.sh ]; then
        FUZZ_SECONDS=${FUZZ_SECONDS:-20} sh tests/fuzz.sh
fi
# The closing line CI reads: every meson test of both builds.
python3 - build-asan/meson-logs/testlog.json build-valgrind/meson-logs/testlog-valgrind.json \
        build-valgrind/meson-logs/testlog-integration-valgrind.json <<'PY'
import json, sys
counts = {"OK": 0, "FAIL": 0, "SKIP": 0}
for path in sys.argv[1:]:
    for line in open(path):
        r = json.loads(line).get("result", "FAIL")
        key = r if r in counts else "FAIL"
        counts[key] += 1
print(f"{counts['OK']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
PY
