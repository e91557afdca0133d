"""Training and evaluation engine.

* :mod:`.run_dir` — the run-folder contract (paths, metrics readers, state) and its lock;
* :mod:`.init` — every ``model.init`` (scratch, imagenet, pretrained:PATH): parsing, loading, labels;
* :mod:`.device` — device and AMP choice; :mod:`.distributed` — DDP set-up;
* :mod:`.model_setup` — the run's detector and optimiser; :mod:`.schedule` — learning rates;
* :mod:`.trainer` — the training loop; :mod:`.evaluator` — prediction, COCO files and metrics;
  :mod:`.pretrain` — the crop-classification loop;
* :mod:`.checkpoint` — atomic checkpoints with their inference record; :mod:`.logging` — metrics.
"""
