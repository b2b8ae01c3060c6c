#!/usr/bin/env bash
# Rebuild the shipped models from the data beside the checkout: bash namemodels/pretrained/build.sh [NAME...]
# Each model is trained by its recorded `namemodels train` command into runs/<name>, then its
# weights, config (vocab, labels, metrics), history and card are copied here and model.onnx is
# exported from those weights. Training checkpoints (last.json, checkpoint-*.safetensors) stay in runs/.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data}
declare -A CMD=(
  [surnames]="train classify --data $DATA/names --cell lstm --hidden 128 --embed 32 --bidirectional --pool max --ngram-buckets 4096 --ngram-max 4 --epochs 15 --batch-size 32 --lr 0.003 --dropout 0.4 --metric macro_f1 --seed 0"
  [gender]="train gender --data $DATA/first_names.csv --cell gru --hidden 224 --embed 32 --bidirectional --pool max --ngram-buckets 131072 --ngram-max 5 --epochs 14 --batch-size 128 --lr 0.004 --dropout 0.3 --save-dtype float16 --seed 0"
  [first-names]="train generate --data $DATA/first_names.csv --cell lstm --hidden 192 --embed 32 --epochs 8 --batch-size 128 --lr 0.004 --dropout 0.2 --seed 0"
  [surnames-gen]="train generate --data $DATA/names --cell lstm --hidden 128 --embed 32 --epochs 12 --batch-size 64 --lr 0.004 --dropout 0.2 --seed 0"
)
for name in "${@:-surnames gender first-names surnames-gen}"; do
  for n in $name; do
    echo "== $n: namemodels ${CMD[$n]} --out runs/$n" >&2
    namemodels ${CMD[$n]} --out "runs/$n" --quiet
    dest=namemodels/pretrained/$n
    mkdir -p "$dest"
    cp runs/$n/{config.json,model.safetensors,history.json,MODEL_CARD.md} "$dest/"
    [ -f runs/$n/train_names.u32 ] && cp runs/$n/train_names.u32 "$dest/"
    python -c "import sys; from namemodels.export import export_model_dir; print(export_model_dir(sys.argv[1]))" "$dest"
  done
done
