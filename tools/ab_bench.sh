#!/bin/bash
# A/B timing of two DenseKit builds (or two environments) on one model, for this kind of noisy 2-vCPU machine:
# the two runs alternate PAIRS times, each `densekit bench model` with its own warm-up, and the script prints both
# medians and the median of the per-pair ratios A/B (below 1: A faster). A figure, never a test.
#
#   tools/ab_bench.sh PAIRS MODEL HxW BIN_A BIN_B ["ENV_A" ["ENV_B"]]
#   e.g. tools/ab_bench.sh 8 Models/camvid_seg_vovnet19_slim.safetensors 384x480 /tmp/new/densekit /tmp/old/densekit
#        tools/ab_bench.sh 8 vit.safetensors 512x512 .build/release/densekit .build/release/densekit \
#            "DENSEKIT_THREADS=1" "DENSEKIT_THREADS=2"
# REPEATS and WARMUP (environment, default 10 and 2) are passed to `bench model`.
set -euo pipefail
if [ $# -lt 5 ]; then sed -n 2,10p "$0"; exit 64; fi
pairs=$1 model=$2 size=$3 bin_a=$4 bin_b=$5 env_a=${6:-} env_b=${7:-}
median() { env $1 "$2" bench model "$model" --size "$size" --repeats "${REPEATS:-10}" --warmup "${WARMUP:-2}" --json \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["median_ms"])'; }
a=() b=()
for _ in $(seq "$pairs"); do
    a+=("$(median "${env_a:-X_AB=a}" "$bin_a")")
    b+=("$(median "${env_b:-X_AB=b}" "$bin_b")")
done
python3 - "${a[*]}" "${b[*]}" <<'PY'
import statistics as st, sys
a = [float(x) for x in sys.argv[1].split()]
b = [float(x) for x in sys.argv[2].split()]
r = [x / y for x, y in zip(a, b)]
print("A median %.1f ms, B median %.1f ms, A/B pair-ratio median %.3f (pairs: %s)"
      % (st.median(a), st.median(b), st.median(r), " ".join("%.2f" % x for x in r)))
PY
