#!/usr/bin/env bash
# One run on the borrowed GPU machine (the `run` tool): two depth trainings and a CamVid fine-tuning side by side,
# each with a wall-clock budget, writing straight into $OUT (the tool returns at most 8 files, 16 MiB each, 64 MiB
# in all, also when the command is stopped at its limit): $OUT/{depth,depthreal,camvid}/{log.txt,model_final.pt}
# and camvid/args.json.
#   here:  tools/.venv/bin/python tools/pack_device_data.py        # work-data/ (git-ignored, ~42 MB)
#   run:   command "bash tools/device_train.sh 7.5", carry ["work-data"], timeout_s 600
# Budget: MINUTES of training each (default 7.5) + about half a minute of loading and final scoring.
set -u
MIN=${1:-7.5}
OUT=${OUT:-/tmp/device-out}
LOGS=/tmp/device-logs
mkdir -p "$OUT" "$LOGS"
PY=python3
export PYTHONUNBUFFERED=1
date; nvidia-smi -L; nproc
$PY -c "import torch, timm, numpy, PIL; print('torch', torch.__version__, 'timm', timm.__version__, 'cuda', torch.cuda.is_available())"
# two depth runs: half of each batch procedural rooms (tools/synth_rooms.py), and the real frames only
$PY tools/train_depth.py --data work-data --device cuda --minutes "$MIN" --batch 16 --synth 0.5 \
    --eval-every 20 --threads 4 --run-dir "$OUT/depth" > "$LOGS/depth.out" 2>&1 &
$PY tools/train_depth.py --data work-data --device cuda --minutes "$MIN" --batch 16 --synth 0 \
    --eval-every 20 --threads 4 --run-dir "$OUT/depthreal" > "$LOGS/depthreal.out" 2>&1 &
$PY tools/train_camvid.py --name device --data work-data/camvid --device cuda --minutes "$MIN" --workers 8 \
    --batch 16 --lr 1e-3 --warmup 50 --sem-aux 1 --match 0.5 --threads 4 \
    --init Models/camvid_seg_vovnet19_slim.safetensors --run-dir "$OUT/camvid" > "$LOGS/camvid.out" 2>&1 &
wait
date
ls -la "$OUT"/*
for r in depth depthreal camvid; do echo "== $r"; tail -n 4 "$LOGS/$r.out" | cut -c1-600; done
