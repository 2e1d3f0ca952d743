#!/usr/bin/env bash
# Issue 8's GPU checks in one call, for a session that is lent a GPU machine (15 minutes of device time in all).
#
# Here, once:   make gpu-wheels        (pure-Python wheels the GPU machine lacks, into the ignored .whl/)
# On the GPU:   the device tool's `run` with carry [".whl"], timeout_s 590, command: bash benchmarks/gpu_check.sh
#               Everything lands in $OUT (at most 8 files): the environment, the CUDA tests' log, the
#               benchmarks' logs and their results JSON (gpu_loop_<card>.json, losses_cuda.json), to commit
#               under benchmarks/results/.
# Check the script on a CPU:  OUT=/tmp/gpu-check GPU_CHECK_DEVICE=cpu PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh
#               (tiny sizes; the loss benchmark is left out, it would rewrite losses_cpu.json)
#
# Each step has its own time limit, chosen so the whole stays under 9.5 minutes on an H200; a step that
# runs out is noted in steps.txt and the next one starts. The compiled ResNet-50 case comes last, with one
# try per side: every dmlviz.train and plain loop compiles the model anew (three compiles in all: only
# training steps are compiled, so each dmlviz.train compiles once).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 NUMBA_CACHE_DIR=/tmp/dmlviz-numba
PY=${PYTHON:-python3}
if ls .whl/*.whl > /dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/dmlviz-site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/dmlviz-site:$PWD"
else
    export PYTHONPATH="$PWD"
fi

step() {  # step NAME SECONDS COMMAND...: run it with a time limit, its output in $OUT/NAME.txt, its end in steps.txt
    local name=$1 limit=$2 start=$SECONDS rc
    shift 2
    timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
    rc=$?
    echo "$name: exit $rc after $((SECONDS - start)) s (limit $limit s)$([ $rc = 124 ] && echo ', stopped at its limit')" >> "$OUT/steps.txt"
    cp benchmarks/results/gpu_loop_*.json "$OUT/" 2> /dev/null
    [ "$DEVICE" = cuda ] && cp benchmarks/results/losses_cuda.json "$OUT/" 2> /dev/null
    return 0
}

: > "$OUT/steps.txt"
{
    date -u
    nvidia-smi 2>&1 | head -15
    "$PY" -c "import sys, torch, dmlviz, pytorch_metric_learning as pml
print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'pml', pml.__version__)"
} > "$OUT/env.txt" 2>&1

if [ "$DEVICE" = cuda ]; then
    # the tests that skip without a GPU: resident batches, fused Adam's guard, background recording, retrieval on CUDA
    step cuda_tests 90 "$PY" -m pytest -q -p no:cacheprovider -k cuda tests/training/test_loop.py tests/eval/test_retrieval.py
    step losses_cuda 45 "$PY" benchmarks/bench_losses.py --device cuda --repeats 20
    step gpu_loop 210 "$PY" benchmarks/bench_gpu_loop.py --cases cnn,resnet50
    step gpu_loop_compiled 195 "$PY" benchmarks/bench_gpu_loop.py --cases resnet50-compiled --tries 1
else
    step gpu_loop 600 "$PY" benchmarks/bench_gpu_loop.py --device "$DEVICE" --tiny --cases cnn,resnet50 --epochs 3
    step gpu_loop_compiled 600 "$PY" benchmarks/bench_gpu_loop.py --device "$DEVICE" --tiny --cases resnet50-compiled --tries 1 --epochs 3
fi
cat "$OUT/steps.txt"
