#!/usr/bin/env bash
# Rebuild the shipped models from the data beside the checkout: bash namemodels/pretrained/build.sh [NAME...]
# Each model's recipe (its options below) is first cross-validated by
# `namemodels cv --train-on all` (5 grouped folds, each fold's model trained exactly as the shipped one
# on the other four; results in runs/cv-<name>, reused when present) and then trained by
# `namemodels train --train-on all` on every line of the data into runs/<name>; its card records the
# CV report as the model's expected quality. The weights, config (vocab, labels, hashes, the CV
# estimate), history and card are copied here and model.onnx is exported from those weights.
# The classifiers then get their name table (`namemodels data name-table`, README "Known names").
# Training checkpoints (last.json, checkpoint-*.safetensors) stay in runs/, so an interrupted build
# continues where it stopped (train --resume refuses a checkpoint made with other settings or data). DEST=DIR writes the
# finished models under DIR instead of namemodels/pretrained (to check them before they replace these).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data}
DEST=${DEST:-namemodels/pretrained}
declare -A TASK=([surnames]=classify [gender]=gender [first-names]=generate [surnames-gen]=generate)
declare -A FILE=([surnames]=names [gender]=first_names.csv [first-names]=first_names.csv [surnames-gen]=names)
declare -A RECIPE=(
  [surnames]="--cell lstm --hidden 128 --embed 32 --bidirectional --pool max --ngram-buckets 16384 --ngram-max 4 --epochs 15 --batch-size 32 --lr 0.003 --dropout 0.4 --logit-adjust 0.25 --save-dtype float16 --seed 0"
  [gender]="--cell gru --hidden 224 --embed 32 --bidirectional --pool max --ngram-buckets 131072 --ngram-max 5 --epochs 14 --batch-size 128 --lr 0.004 --dropout 0.3 --save-dtype float16 --seed 0"
  [first-names]="--cell lstm --hidden 192 --embed 32 --epochs 8 --batch-size 128 --lr 0.004 --dropout 0.2 --seed 0"
  [surnames-gen]="--cell lstm --hidden 128 --embed 32 --epochs 12 --batch-size 64 --lr 0.004 --dropout 0.2 --seed 0"
)
for name in "${@:-surnames gender first-names surnames-gen}"; do
  for n in $name; do
    data="$DATA/${FILE[$n]}"
    echo "== $n: namemodels cv --task ${TASK[$n]} --data $data ${RECIPE[$n]} --train-on all --folds 5" >&2
    namemodels cv --task "${TASK[$n]}" --data "$data" ${RECIPE[$n]} --train-on all --folds 5 \
      --out "runs/cv-$n" --json-out "runs/cv-$n.json" --quiet
    echo "== $n: namemodels train ${TASK[$n]} --data $data ${RECIPE[$n]} --train-on all" >&2
    namemodels train "${TASK[$n]}" --data "$data" ${RECIPE[$n]} --train-on all --cv-report "runs/cv-$n.json" \
      --out "runs/$n" --resume --quiet
    dest=$DEST/$n
    mkdir -p "$dest"
    cp runs/$n/{config.json,model.safetensors,history.json,MODEL_CARD.md} "$dest/"
    [ -f runs/$n/train_names.u32 ] && cp runs/$n/train_names.u32 "$dest/"
    python -c "import sys; from namemodels.export import export_model_dir; print(export_model_dir(sys.argv[1]))" "$dest"
    # the classifiers' name table (training names with their counts), rebuilt from the exported model, alpha
    # chosen with the out-of-fold probabilities of the CV's fold models; train-free, the weights are not touched
    case ${TASK[$n]} in classify|gender)
      namemodels data name-table "$dest" --data "$data" --cv "runs/cv-$n" ;;
    esac
  done
done
