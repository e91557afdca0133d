"""Training throughput and peak memory of `dsod_tiny` and `dsod300` (CPU, and CUDA when present).

Each configuration runs in its own subprocess so that the peak resident memory (CPU, from
``getrusage``) or ``torch.cuda.max_memory_allocated`` (GPU) belongs to that configuration alone.
A step = forward, MultiBox loss (matching included), backward and an SGD update on random images
with random boxes, exactly the work of :meth:`dsod_depth.engine.trainer.Trainer.train_step`.

Usage::

    python benchmarks/bench_train.py           # dsod_tiny 160² ×16; dsod300 300² ×4, ± memory option
    python benchmarks/bench_train.py --quick   # fewer steps

Prints a table and writes ``benchmarks/results/bench_train.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "bench_train.json"


def one_config(model: str, size: int, batch: int, steps: int, device: str, options: dict) -> dict:
    import torch

    from dsod_depth.detection.loss import MultiBoxLoss
    from dsod_depth.models import build_detector

    torch.manual_seed(0)
    dev = torch.device(device)
    net = build_detector(model, num_classes=19, in_channels=6, input_size=size, **options).to(dev)
    if dev.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = MultiBoxLoss()
    priors = net.priors.to(dev)
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 6, size, size, generator=gen).to(dev)
    targets = []
    for _ in range(batch):
        xy = torch.rand(3, 2, generator=gen) * 0.6
        boxes = torch.cat([xy, xy + 0.1 + torch.rand(3, 2, generator=gen) * 0.3], 1).to(dev)
        targets.append({"boxes": boxes, "labels": torch.randint(0, 19, (3,), generator=gen).to(dev)})
    amp = dev.type == "cuda"

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            loc, conf = net(images)
        loss = loss_fn(loc, conf, priors, targets)["loss"]
        loss.backward()
        opt.step()

    step()  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    peak_mb = (
        torch.cuda.max_memory_allocated() / 2**20
        if dev.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "model": model, "input": size, "batch": batch, "device": device, "options": options,
        "s_per_step": round(seconds, 4), "images_per_s": round(batch / seconds, 2),
        "peak_memory_mb": round(peak_mb, 1), "threads": torch.get_num_threads(),
        "amp": "bf16" if amp else "off",
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_config(**json.loads(args.child))))
        return
    import torch

    steps = 2 if args.quick else 5
    big_steps = max(steps // 2, 1)
    configs = [
        {"model": "dsod_tiny", "size": 160, "batch": 16, "steps": steps, "device": "cpu", "options": {}},
        {"model": "dsod300", "size": 300, "batch": 4, "steps": big_steps, "device": "cpu", "options": {}},
        {"model": "dsod300", "size": 300, "batch": 4, "steps": big_steps, "device": "cpu",
         "options": {"memory_efficient": True}},
    ]  # fmt: skip
    if torch.cuda.is_available():
        for model, size, batch in (("dsod_tiny", 160, 128), ("dsod300", 300, 32)):
            for mem in (False, True):
                configs.append({"model": model, "size": size, "batch": batch, "steps": 10, "device": "cuda",
                                "options": {"memory_efficient": mem}})  # fmt: skip
    rows = []
    for cfg in configs:
        out = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(cfg)], capture_output=True, text=True,
            check=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )  # fmt: skip
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{r['model']:<10} {r['device']:<5} {r['input']}² batch {r['batch']:>3} "
              f"mem-opt {bool(r['options'].get('memory_efficient')):d}: {r['images_per_s']:>8.2f} img/s, "
              f"{r['s_per_step']:.3f} s/step, peak {r['peak_memory_mb']:.0f} MB")  # fmt: skip
    machine = {
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
    }  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"benchmark": "train", "machine": machine, "rows": rows}, indent=2) + "\n")
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
