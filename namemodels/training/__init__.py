"""Training models (torch): the ``namemodels train`` pipeline and what it is built from. Nothing in this
folder imports the CLI. Import from the modules themselves (this file re-exports nothing):

- ``train``: ``namemodels train``, one model's run (prepare, build, resume, fit, finalize) or an ensemble's
- ``loop``: the one training loop (AdamW, schedule, clipping, L1/L2, moving average), the study's too
- ``checkpoint``: model directories (``model.safetensors`` + ``config.json``) and the checkpoints of ``--resume``
- ``ensemble``: ``--ensemble K``, members trained apart and combined into one model
- ``cv``: grouped k-fold cross-validation beside the baselines (``namemodels cv``)
- ``name_tables``: a classifier's name table built from its training data (``namemodels data name-table``)
"""
