#!/usr/bin/env bash
# One node, several GPUs: one process per GPU, DDP through Accelerate.
#   NUM_GPUS=4 scripts/launch_accelerate.sh configs/gpu-base.yaml runs/gpu-base [--set key=value ...]
set -euo pipefail
CONFIG=${1:?config yaml}; OUT=${2:?run dir}; shift 2
exec accelerate launch --multi_gpu --num_processes "${NUM_GPUS:-$(nvidia-smi -L | wc -l)}" --mixed_precision bf16 \
  -m multimodal.cli train --config "$CONFIG" --out "$OUT" "$@"
