#!/usr/bin/env bash
# Print the supervision-transfer commands of a real dataset, one line per student (target modality ×
# seed), for GNU parallel, a SLURM or PBS job array, or a plain loop (`bash DATASET_transfer.jobs`).
# Each student is the scratch config's DSOD300 for its modality; its teacher is the
# ImageNet-initialised RGB detector of the same seed from the dataset's main matrix. A line resumes
# its run when the run already holds a checkpoint, so a job that was stopped is simply run again.
#
#   experiments/transfer_commands.sh nyudv2 [SEED ...]     (default seeds: 0 1 2)
set -euo pipefail
dataset=${1:?usage: experiments/transfer_commands.sh nyudv2|sunrgbd [SEED ...]}
shift
case $dataset in
  nyudv2|sunrgbd) ;;
  *) echo "error: unknown dataset '$dataset'; choose nyudv2 or sunrgbd" >&2; exit 2 ;;
esac
seeds=${*:-0 1 2}
for seed in $seeds; do
  for modality in depth hha rgb_hha; do
    out="runs/transfer/$dataset/${modality}_s$seed"
    teacher="runs/sweeps/$dataset/$dataset/rgb_imagenet_s$seed"
    config="experiments/configs/$dataset/${modality}_scratch.yaml"
    echo "if [ -f $out/checkpoints/last.pt ]; then dsod-depth transfer --resume $out --no-progress;" \
      "else dsod-depth transfer $config --teacher $teacher --seed $seed --out $out --no-progress; fi"
  done
done
