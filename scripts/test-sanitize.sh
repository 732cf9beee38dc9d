#!/usr/bin/env bash
# The kernel tests with ASan + UBSan-instrumented kernels: `npm run test:sanitize`; arguments
# replace the default test files (e.g. `npm run test:sanitize -- test/kernels.test.ts`).
# Slow (sanitized -O3 builds take ~2-3x longer), so not part of `npm test`.
# MASKACC_SANITIZE may narrow it (e.g. MASKACC_SANITIZE=undefined npm run test:sanitize).
set -euo pipefail
cd "$(dirname "$0")/.."

export MASKACC_SANITIZE="${MASKACC_SANITIZE:-address,undefined}"
if [[ ",$MASKACC_SANITIZE," == *,address,* ]]; then
  # node itself is not instrumented: the ASan runtime must be loaded before anything else.
  asan="$(${CXX:-g++} -print-file-name=libasan.so)"
  if [[ ! -e "$asan" ]]; then
    echo "test-sanitize: libasan.so not found (${CXX:-g++} -print-file-name=libasan.so gave '$asan'); install the compiler's ASan runtime (Debian: libasan8)" >&2
    exit 1
  fi
  export LD_PRELOAD="$asan${LD_PRELOAD:+:$LD_PRELOAD}"
fi
# detect_leaks=0: node frees little at exit, and leaks are not what this run looks for.
# quarantine_size_mb=32 (default 256): freed memory held back to catch use-after-free counts as
# RSS, and the memory test of guards.test.ts allows 100 MB of growth.
# abort_on_error / halt_on_error: a finding kills the test worker, so the run fails, never just prints.
export ASAN_OPTIONS="detect_leaks=0:quarantine_size_mb=32:abort_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

if (($# == 0)); then
  set -- test/hardening/sanitize.test.ts test/kernels.test.ts test/hardening/guards.test.ts test/fuzz/fuzz.test.ts
fi
exec npx vitest run "$@"
