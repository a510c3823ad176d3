#!/bin/bash
# Denoiser size on a GPU, for the same wall-clock: v3's size (A) and 4x (B) trained side by side on the
# frozen autoencoder of checkpoints/memoryrooms.safetensors, from an encoded training set; also the CUDA
# tests. Made for a lent GPU machine that has torch but not this project's other packages.
#
# Here (2 CPU cores), once:
#   memworld encode-dataset dtype=uint8 run_name=encode-revisit-200-uint8      # 56 MiB, 3.5 min
#   mkdir -p .dev && xz -T2 -c runs/encode-revisit-200-uint8/encoded.safetensors > .dev/enc.safetensors.xz  # 24 MiB
#   pip download (gymnasium, farama-notifications, stable-baselines3, hydra-core, omegaconf, antlr4 wheel) -d .whl
# There, with .dev and .whl carried:   BATCH=64 BUDGET=300 OUT=<folder> bash experiments/gpu_sizes.sh
# Back here: cat pack.tar.* | tar xf -, then memworld bench target=worldmodel checkpoint=<each> and
# memworld eval-revisit checkpoint=<each> cost_repeats=0 (copy checkpoints/memoryrooms.starts.npz beside each).
# Steps are calibrated from a 150-step run of each so that both train for about BUDGET seconds.
set -u -o pipefail
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
CAL=${CAL:-150}
T0=$(date +%s)
LOG=$OUT/log.txt
say() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $LOG; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> $LOG
python3 -c "import lzma,shutil; shutil.copyfileobj(lzma.open('.dev/enc.safetensors.xz'), open('/tmp/enc.safetensors','wb'))" || exit 1
say "unpacked $(stat -c %s /tmp/enc.safetensors) bytes"
timeout 420 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py > $OUT/cuda_tests.log 2>&1 &
TESTS=$!
AE=checkpoints/memoryrooms.safetensors
COMMON="dataset=/tmp/enc.safetensors autoencoder_from=$AE runs_root=/tmp/runs progress=false tensorboard=false train.batch=${BATCH:-64} train.checkpoint_every=100000 train.log_every=500"
A="model.channels=[40,80,160] model.cond_dim=192"
B="model.channels=[80,160,320] model.cond_dim=384"
train() {  # name, steps, sizes...
  local n=$1 s=$2; shift 2
  python3 -m experiments.cli train-worldmodel $COMMON "$@" run_name=$n train.denoiser_steps=$s 2>&1 | sed -u "s/^/[$n] /" >> $LOG
}
train calA $CAL $A & P1=$!
train calB $CAL $B & P2=$!
wait $P1 && wait $P2 || { say "a calibration run failed (log above)"; exit 1; }
BUDGET=${BUDGET:-330}
steps() { python3 -c "import json; r=json.load(open('/tmp/runs/$1/results.json')); print(int($CAL/(r['train_minutes']*60)*$BUDGET))"; }
SA=$(steps calA) && SB=$(steps calB) || { say "calibration failed"; exit 1; }
say "calibrated steps: A $SA, B $SB for ${BUDGET}s"
train gpuA $SA $A & P1=$!
train gpuB $SB $B & P2=$!
wait $P1; RA=$?; wait $P2; RB=$?
say "trained: exit A $RA, B $RB"
wait $TESTS; say "cuda tests rc $?"
mkdir -p /tmp/pack && for r in gpuA gpuB; do
  mkdir -p /tmp/pack/$r && cp /tmp/runs/$r/world_model.safetensors* /tmp/runs/$r/results.json /tmp/pack/$r/
done
(cd /tmp/pack && tar cf - .) | split -b 15M - $OUT/pack.tar.
say "packed"; ls -la $OUT >> $LOG
