"""Run under torchrun by test_distributed.py: train, then check that every rank holds the same weights."""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from dsod_depth.config import load_config
from dsod_depth.engine.trainer import Trainer


def main() -> None:
    config_path, run_dir, report = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    config = load_config(config_path)
    trainer = Trainer(config, run_dir, progress=False)  # checks inputs, writes nothing
    trainer.open_run(resume=False)  # rank 0 writes config.yaml and the log
    trainer.run()
    flat = torch.cat([p.detach().flatten() for p in trainer.model.parameters()]).double()
    gathered = [torch.zeros_like(flat) for _ in range(trainer.info.world_size)]
    dist.all_gather(gathered, flat)
    if trainer.info.is_main:
        same = all(torch.equal(gathered[0], g) for g in gathered[1:])
        report.write_text(f"{trainer.info.world_size} {int(same)}\n")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
