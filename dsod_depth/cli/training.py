"""`train`, `eval`, `pretrain` and `transfer`: one detector run from a config, its evaluation, backbone
pretraining, supervision transfer from an RGB network."""

from __future__ import annotations

import argparse

from dsod_depth.cli.common import config_overrides, resumed_run
from dsod_depth.errors import KitError


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train one detector run (or resume one)",
        description="Train one run from an experiment config; `train --resume RUN_DIR` continues a run "
        "from its last checkpoint. Works unchanged under torchrun (DDP).",
    )
    p.add_argument("config", nargs="?", help="experiment config YAML (experiments/configs/...)")
    p.add_argument("--data", help="prepared store folder (overrides data.store)")
    p.add_argument("--out", help="run directory to create (default runs/<config name>)")
    p.add_argument("--iters", type=int, help="optimiser steps (overrides train.iters)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (train.checkpoint_every)")
    p.add_argument("--seed", type=int, help="seed of init, data order and augmentation (train.seed)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set optim.lr=0.05 (repeatable)")  # fmt: skip
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from checkpoints/last.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dsod_depth.config import load_config

    overrides = config_overrides(args)
    if args.resume:
        if args.config or args.out or overrides:
            raise KitError("--resume takes only the run directory: its config.yaml fixes every setting")
        run_dir, config = resumed_run(args.resume, "train")
    else:
        if not args.config:
            raise KitError("give a config YAML (e.g. experiments/configs/synthrooms/rgb_scratch.yaml)")
        config = load_config(args.config, overrides)
        run_dir = Path(args.out) if args.out else Path("runs") / config.name
    from dsod_depth.engine.trainer import train

    state = train(config, run_dir, resume=bool(args.resume), progress=not args.no_progress)
    best = f", best {state.best_map:.4f} at step {state.best_step}" if state.best_step >= 0 else ""
    print(f"trained {state.step} steps into {run_dir}{best}")
    return 0


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a trained run or checkpoint on a split",
        description="Run a trained detector over a split; write eval/<split>/detections.json (COCO "
        "results), gt.json and metrics.json in the run directory and print the per-class table.",
    )
    p.add_argument("target", metavar="RUN_DIR_OR_CHECKPOINT")
    p.add_argument("--data", help="prepared store (default: the one the run was trained on)")
    p.add_argument("--split", default="test")
    p.add_argument("--metric", choices=["voc07", "voc12", "coco"], help="default: the run's eval_metric")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--batch-size", type=int, default=8)
    p.set_defaults(run=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    from dsod_depth.engine.evaluator import evaluate_checkpoint
    from dsod_depth.evaluation import format_table

    metrics, out_dir = evaluate_checkpoint(
        args.target, store=args.data, split=args.split, metric=args.metric, device=args.device,
        batch_size=args.batch_size,
    )  # fmt: skip
    print(format_table(metrics))
    print(f"detections and metrics written to {out_dir}")
    return 0


def _add_pretrain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain",
        help="pretrain a detector's backbone as a classifier of object crops from a store",
        description="Classification pretraining on ground-truth object crops (any modality): the offline "
        "stand-in for ImageNet, and depth-domain pretraining. Load the result into a detector with "
        "`--set model.init=pretrained:RUN_DIR/checkpoints/last.pt`.",
    )
    p.add_argument("config", help="config YAML (model.name, data.modality; data.input_size = crop side)")
    p.add_argument("--data", required=True, help="prepared store folder")
    p.add_argument("--out", required=True, help="output folder (checkpoints/last.pt, summary.json)")
    p.add_argument("--iters", type=int, help="optimiser steps (overrides train.iters)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=_run_pretrain)


def _run_pretrain(args: argparse.Namespace) -> int:
    from dsod_depth.config import load_config
    from dsod_depth.engine.pretrain import pretrain

    config = load_config(args.config, config_overrides(args))
    summary = pretrain(config, args.out, progress=not args.no_progress)
    acc = summary["test_accuracy"]
    acc_text = "n/a (no test crops)" if acc is None else f"{acc:.3f}"
    print(
        f"pretrained {summary['model']} on {summary['train_crops']} {summary['modality']} crops for "
        f"{summary['steps']} steps; test crop accuracy {acc_text}; "
        f"weights in {args.out}/checkpoints/last.pt"
    )
    return 0


def _add_transfer(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "transfer",
        help="supervision transfer: distil an RGB network's features into a depth/HHA student",
        description="Cross-modal supervision transfer (Gupta et al., CVPR 2016): the config's detector, for "
        "the config's modality, learns to reproduce a frozen RGB teacher's feature maps on paired, "
        "unlabelled frames of the store's training split. Start a detector from the student with "
        "`--set model.init=transfer:RUN_DIR`. `transfer --resume RUN_DIR` continues a run.",
    )
    p.add_argument(
        "config", nargs="?", help="experiment config YAML of the student (model.name, data.modality)"
    )
    p.add_argument("--teacher", help="RGB run folder or checkpoint (a detector or pretrain run), or "
                   "imagenet:ssd300_vgg16 / imagenet:densenet121_dsod")  # fmt: skip
    p.add_argument("--data", help="prepared store folder (overrides data.store)")
    p.add_argument("--out", help="run directory to create")
    p.add_argument("--iters", type=int, help="optimiser steps (overrides train.iters)")
    p.add_argument("--seed", type=int, help="seed of the student's init and the data order (train.seed)")
    p.add_argument("--layers", help="maps to match, comma-separated (default backbone.second; e.g. "
                   "backbone.second,scale.0,scale.1)")  # fmt: skip
    p.add_argument("--allow-any-teacher", action="store_true", help="accept a teacher that does not read rgb")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the transfer run in RUN_DIR")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=_run_transfer)


def _run_transfer(args: argparse.Namespace) -> int:
    from dsod_depth.config import load_config
    from dsod_depth.engine.transfer import TransferSettings, transfer
    from dsod_depth.models.taps import DEFAULT_LAYERS

    overrides = config_overrides(args)
    if args.resume:
        given = args.config or args.out or overrides or args.teacher or args.layers or args.allow_any_teacher
        if given:
            raise KitError(
                "--resume takes only the run directory: its config.yaml and transfer.json fix the rest"
            )
        (out, config), settings = resumed_run(args.resume, "transfer"), None
    else:
        if not args.config or not args.teacher or not args.out:
            raise KitError("give CONFIG.yaml, --teacher RUN_OR_CHECKPOINT and --out RUN_DIR")
        config = load_config(args.config, overrides)
        layers = (
            tuple(x.strip() for x in args.layers.split(",") if x.strip()) if args.layers else DEFAULT_LAYERS
        )
        settings = TransferSettings(args.teacher, layers, allow_any_teacher=args.allow_any_teacher)
        out = args.out
    summary = transfer(config, out, settings, resume=bool(args.resume), progress=not args.no_progress)
    heldout = summary["heldout_loss"]
    held = "n/a (no test frames)" if heldout is None else f"{heldout:.4f}"
    print(
        f"distilled {summary['teacher']} into a {summary['modality']} {summary['model']} student at "
        f"{', '.join(summary['layers'])} for {summary['steps']} steps; held-out loss {held}; start a "
        f"detector from it with --set model.init=transfer:{out}"
    )
    return 0
