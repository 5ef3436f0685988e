#!/usr/bin/env bash
# Several nodes with torchrun: run this on every node with the same MASTER_ADDR/MASTER_PORT.
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=node0 GPUS_PER_NODE=8 scripts/launch_torchrun.sh configs/gpu-base.yaml runs/gpu-base
set -euo pipefail
CONFIG=${1:?config yaml}; OUT=${2:?run dir (on shared storage)}; shift 2
exec torchrun --nnodes "${NNODES:-1}" --node_rank "${NODE_RANK:-0}" --nproc_per_node "${GPUS_PER_NODE:-8}" \
  --master_addr "${MASTER_ADDR:-127.0.0.1}" --master_port "${MASTER_PORT:-29500}" \
  -m multimodal.cli train --config "$CONFIG" --out "$OUT" "$@"
