#!/usr/bin/env bash
# Builds one fuzz target with libFuzzer + AddressSanitizer and runs it.
#
#   tools/fuzz.sh <target> <seconds> [extra libFuzzer flags...]
#   tools/fuzz.sh all <seconds>            # every target, one after the other
#
# Targets: FuzzImage (PNG/JPEG detection, probe, decode), FuzzSafeTensors (safetensors reader and summary),
# FuzzModelConfig (first byte = architecture, rest = densekit.config JSON: parse, validate, build small ones with
# random weights, memory estimate and plan), FuzzInspect (the inspect / info / model-load path on a real file).
#
# Seeds: Tests/FuzzCorpus/<target> (committed, small), Tests/FuzzCrashes/<target> (every finding, kept as a
# regression), and the matching parts of ../shared/data when present. New corpus entries go to
# .build-fuzz/corpus/<target> (never into the repository). Findings (crash-*, leak-*, timeout-*, oom-*) are written
# to .build-fuzz/findings/<target>/ and make the script exit 1: copy them into Tests/FuzzCrashes/<target>/ once
# fixed. Replay a file without the fuzzer: swift build --product <target>, then .build/release/<target> <file>.
#
# The sanitizer flags are given here on the command line, never in Package.swift. A Swift executable has a main,
# so libFuzzer's own main is not used: with -DFUZZING the target's main calls LLVMFuzzerRunDriver
# (Sources/FuzzSupport/FuzzDriver.swift). C code (CImageCodecs, CKernels) is instrumented too.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(FuzzImage FuzzSafeTensors FuzzModelConfig FuzzInspect)
target="${1:-}"; seconds="${2:-60}"
if [ -z "$target" ] || [ "$target" = "-h" ] || [ "$target" = "--help" ]; then
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 64
fi
shift 2 || shift $#
if [ "$target" = "all" ]; then
    rc=0
    for t in "${TARGETS[@]}"; do "$0" "$t" "$seconds" "$@" || rc=1; done
    exit $rc
fi
case " ${TARGETS[*]} " in *" $target "*) ;; *) echo "fuzz.sh: unknown target $target (known: ${TARGETS[*]})" >&2; exit 64;; esac
case "$seconds" in ''|*[!0-9]*) echo "fuzz.sh: seconds must be a whole number, got $seconds" >&2; exit 64;; esac

SCRATCH="${FUZZ_SCRATCH:-.build-fuzz}"
SWIFT="${SWIFT:-swift}"
echo "fuzz.sh: building $target (libFuzzer + ASan, scratch $SCRATCH)" >&2
"$SWIFT" build -c release --product "$target" --scratch-path "$SCRATCH" \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING \
    -Xcc -fsanitize=fuzzer-no-link,address >&2
bin="$("$SWIFT" build -c release --scratch-path "$SCRATCH" --show-bin-path \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xcc -fsanitize=fuzzer-no-link,address)/$target"

shared="../shared/data"
seeds=("Tests/FuzzCorpus/$target")
[ -d "Tests/FuzzCrashes/$target" ] && seeds+=("Tests/FuzzCrashes/$target")
case "$target" in
    FuzzImage)       [ -d "$shared/photos" ] && seeds+=("$shared/photos"); [ -d "$shared/corrupt" ] && seeds+=("$shared/corrupt") ;;
    FuzzSafeTensors) [ -d "$shared/corrupt" ] && seeds+=("$shared/corrupt"); [ -d "$shared/corrupt-controls" ] && seeds+=("$shared/corrupt-controls") ;;
    FuzzInspect)     [ -d "$shared/corrupt" ] && seeds+=("$shared/corrupt"); [ -d "$shared/corrupt-controls" ] && seeds+=("$shared/corrupt-controls") ;;
esac
work="$SCRATCH/corpus/$target"; findings="$SCRATCH/findings/$target"
if [ -d "$findings" ] && ls "$findings" | grep -q .; then mv "$findings" "$findings.before-$(date +%s)"; fi
mkdir -p "$work" "$findings"

# -timeout: one input taking longer is a hang; -rss_limit_mb / -malloc_limit_mb: unbounded allocation is a finding.
# -max_len: large enough for the photo seeds' headers and the small model files.
echo "fuzz.sh: running $target for ${seconds}s (seeds: ${seeds[*]})" >&2
start=$(date +%s)
set +e
ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}" \
"$bin" -max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-20}" -rss_limit_mb="${FUZZ_RSS_MB:-3072}" \
    -malloc_limit_mb="${FUZZ_MALLOC_MB:-1024}" -max_len="${FUZZ_MAX_LEN:-65536}" -print_final_stats=1 \
    -artifact_prefix="$findings/" "$@" "$work" "${seeds[@]}" 2>&1 | tee "$SCRATCH/$target.log" | grep -E '^(#[0-9]+ +(DONE|INITED)|stat::|==[0-9]+==|SUMMARY|INFO: (seed|A corpus)|Done|.*(crash|timeout|oom|leak)-)' >&2
rc=${PIPESTATUS[0]}
set -e
elapsed=$(( $(date +%s) - start ))
echo "fuzz.sh: $target ran ${elapsed}s, exit $rc; log $SCRATCH/$target.log" >&2
if [ "$rc" -ne 0 ] || ls "$findings" | grep -q .; then
    echo "fuzz.sh: FINDING in $target: see $findings/ and $SCRATCH/$target.log" >&2
    exit 1
fi
