#!/usr/bin/env bash
# Rebuild the shipped models from the data beside the checkout: bash namemodels/pretrained/build.sh [NAME...]
# Each model is trained by its recorded `namemodels train` command into runs/<name>, then its
# weights, config (vocab, labels, metrics), history and card are copied here and model.onnx is
# exported from those weights. Optimizer checkpoints (last.*) stay in runs/.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data}
declare -A CMD=(
  [surnames]="train classify --data $DATA/names SURNAMES_ARGS"
  [gender]="train gender --data $DATA/first_names.csv GENDER_ARGS"
  [first-names]="train generate --data $DATA/first_names.csv FIRST_NAMES_ARGS"
  [surnames-gen]="train generate --data $DATA/names SURNAMES_GEN_ARGS"
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
