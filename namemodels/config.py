"""Training settings (no torch here: the CLI builds its options from these fields)."""
from __future__ import annotations

from dataclasses import dataclass, field

TASKS = ("classify", "gender", "generate", "multitask")
CLASSIFIER_KINDS = ("classifier", "ensemble")   # model kinds (config.json "model") that map a name to labels


@dataclass
class TrainConfig:
    task: str = "classify"
    cell: str = "lstm"
    embed: int = 32
    hidden: int = 128
    layers: int = 1
    bidirectional: bool = False
    pool: str = "last"                # classifiers: last | max (also max over the outputs)
    dropout: float = 0.0
    ngram_buckets: int = 0            # classifiers: hashed character n-gram buckets of the wide part (0 = none)
    ngram_max: int = 3                # classifiers: longest n-gram of the wide part
    mu: float = 0.6
    s: float = 0.6
    learn_momentum: bool = False
    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.01
    clip: float = 1.0
    ema: float = 0.0                  # decay of a moving average of the weights, evaluated and saved (0 = off)
    label_smoothing: float = 0.0      # classify: cross-entropy label smoothing
    l1: float = 0.0
    l2: float = 0.0
    schedule: str = "cosine"          # cosine | constant
    patience: int = 5
    metric: str = ""                  # default per task, see default_metric()
    seed: int = 0
    split_seed: int = -1              # seed of the grouped train/valid/test split (-1 = seed)
    ensemble: int = 1                 # classifiers: train this many members (seeds seed, seed+1, ...) and average them
    lowercase: bool = True
    conditional: bool = True          # generate: condition on the dataset's labels when it has them
    category_dropout: float = 0.2     # generate: drop the category so the model also works without one
    gender_weight: float = 1.0        # multitask: weight of the gender loss
    class_weight: str = "none"        # classify: none | sqrt | balanced
    final_fit: bool = False           # also train on the validation split, all --epochs, keep the last weights
    max_train: int = 0                # use at most this many training names (0 = all)
    reverse_names: bool = False       # generate: read names backwards (to pretrain a reverse encoder)
    init_from: str = ""               # start the encoder from this generator's weights (and vocabulary)
    init_reverse_from: str = ""       # bidirectional: start the reverse direction from a --reverse-names generator
    save_dtype: str = "float32"       # dtype of model.safetensors: float32 | float16
    device: str = "cpu"
    extra: dict = field(default_factory=dict)

    def data_seed(self) -> int:
        """The seed of the split (and of the ``max_train`` subset)."""
        return self.split_seed if self.split_seed >= 0 else self.seed

    def default_metric(self) -> str:
        return self.metric or {"classify": "accuracy", "gender": "roc_auc", "generate": "nll",
                               "multitask": "nll"}[self.task]
