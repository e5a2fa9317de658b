#!/usr/bin/env bash
# One-shot GPU check for a session lent a CUDA GPU: the CUDA tests, then every bench on the GPU.
# Budget: about 6-8 minutes on one H100/H200. Run from the repository root:
#
#     bash bench/gpu_check.sh            # output also saved to ${OUT:-gpu_check_logs}/
#
# Each step has its own time limit and the script goes on after a failure; the summary at the end
# lists what passed. Record the tables with the card's name (printed first).
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python}
LOG=${OUT:-gpu_check_logs}
mkdir -p "$LOG"
status=()

BUDGET=${BUDGET:-480}  # seconds: later steps are skipped once this much time has gone

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    if [ "$SECONDS" -ge "$BUDGET" ]; then
        status+=("$name: skipped (budget of ${BUDGET}s used)")
        return
    fi
    echo "=== $name (limit ${limit}s): $*"
    local t0=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$LOG/$name.txt"
    local rc=${PIPESTATUS[0]}
    status+=("$name: rc=$rc, $((SECONDS - t0)) s")
}

$PY - <<'PY' | tee "$LOG/device.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda)
if not torch.cuda.is_available():
    raise SystemExit("no CUDA GPU visible: nothing to check")
print("device:", torch.cuda.get_device_name(0), f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
PY
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1

step cuda_tests 150 $PY -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_compile.py -rs
step layer_overhead_amp 50 $PY bench/layer_overhead.py --quick --device cuda --amp
step layer_overhead_fp32 50 $PY bench/layer_overhead.py --quick --device cuda
step unet_step_fp32 50 $PY bench/unet_step.py --quick --device cuda
step unet_step_amp 50 $PY bench/unet_step.py --quick --device cuda --amp
step unet_step_amp_compiled 60 $PY bench/unet_step.py --quick --device cuda --amp --compile
step train_throughput_amp 45 $PY bench/train_throughput.py --quick --device cuda --amp
step tiled_prediction 45 $PY bench/tiled_prediction.py --quick --device cuda --amp
step large_holes 45 $PY bench/large_holes.py --quick --device cuda

echo "=== summary (logs in $LOG/)"
printf '%s\n' "${status[@]}" | tee "$LOG/summary.txt"
