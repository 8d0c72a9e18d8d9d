# shellcheck shell=bash
# The sanitized clang build shared by tools/test and tools/fuzz: its meson
# options, the run-time options that make any sanitizer report fatal, and a
# parser for libFuzzer's statistics.

# meson setup options of a clang-14 ASan + UBSan build with the fuzz targets
# (run with CC=clang-14 CXX=clang++-14).
VHOSTD_SANITIZE_SETUP=(--buildtype=debugoptimized -Dwerror=true
    -Db_sanitize=address,undefined -Db_lundef=false -Dfuzz=true)

# Exports the sanitizer options for everything started afterwards: every
# report ends the process with an error, leaks included, with a stack trace.
# Third-party leaks that are not vhostd's (DPDK's EAL keeps some allocations
# for the life of the process) are listed in tools/lib/lsan.supp.
vhostd_sanitizer_env() {
    export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_odr_violation=2
    export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
    export LSAN_OPTIONS=suppressions=$VHOSTD_ROOT/tools/lib/lsan.supp:print_suppressions=0
}

# vhostd_fuzz_stats LOG: prints "EXECUTIONS COV FT" from a libFuzzer log
# (-print_final_stats=1); "?" for what it does not say.
vhostd_fuzz_stats() {
    local log=$1 execs cov ft last
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    echo "${execs:-?} ${cov:-?} ${ft:-?}"
}
