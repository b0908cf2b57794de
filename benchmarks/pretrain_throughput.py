"""Pretraining throughput (images/s) of the demo config on CPU with 1 and 2 processes.

Both runs use the committed demo config (real bundled data, ``smarties_vit_tiny_patch4`` at 64 px,
global batch 32; the curriculum phase skipped so the full mixture of single and paired steps is
measured) for a few steps through the real launcher (``smartiesviz pretrain`` and
``torchrun --nproc_per_node 2 ... pretrain``, gloo), one intra-op thread per process, and report
images/s over the steps after a warm-up, read from the runs' metrics.csv. Printed side by side.

If CUDA is available, also ViT-B/16 224² bf16 pretraining-step images/s (S2+S1 pairs) with and
without ``torch.compile``.

    python benchmarks/pretrain_throughput.py [--steps 12] [--warmup 4]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "smartiesviz" / "training" / "configs" / "demo.yaml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_images_per_s(nproc: int, steps: int, warmup: int, out: Path) -> float:
    overrides = [
        f"train.output_dir={out}",
        f"train.steps={steps}",
        "train.ckpt_every=0",
        "train.save_final=false",
        "train.log_every=1",
        "train.progress=false",
        "train.num_threads=1",
        "data.curriculum_steps=0",
    ]  # curriculum off: measure the full mixture, not the warm-up phase
    args = ["-m", "smartiesviz.cli", "pretrain", "--config", str(DEMO), *overrides]
    if nproc == 1:
        cmd = [sys.executable, *args]
    else:
        torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or "torchrun"
        cmd = [
            torchrun,
            f"--nproc_per_node={nproc}",
            "--master_addr=127.0.0.1",
            f"--master_port={_free_port()}",
            *args,
        ]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    t0 = float(rows[warmup - 1]["elapsed_s"])
    t1 = float(rows[-1]["elapsed_s"])
    batch = 32
    return batch * (len(rows) - warmup) / (t1 - t0)


def gpu_vitb(compile_model: bool, steps: int = 20) -> float:  # pragma: no cover - needs CUDA
    import torch

    from smartiesviz.models.factories import smarties_vit_base_patch16

    model = smarties_vit_base_patch16(img_size=224).cuda()
    opt = torch.optim.AdamW(model.parameters(), 1e-4)
    net = torch.compile(model) if compile_model else model
    b = 64
    x_a = torch.randn(b, 12, 224, 224, device="cuda")
    x_b = torch.randn(b, 2, 224, 224, device="cuda")
    rb_a, rb_b = model.resolve("sentinel2-l2a"), model.resolve("sentinel1-grd")

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = net(x_a, rb_a, x_b, rb_b).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return b * steps / (time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--warmup", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one = cpu_images_per_s(1, args.steps, args.warmup, Path(tmp) / "one")
        two = cpu_images_per_s(2, args.steps, args.warmup, Path(tmp) / "two")
    cores = os.cpu_count()
    print(f"demo config on CPU ({cores} cores visible, 1 thread per process, global batch 32)")
    print(f"{'processes':>10s} {'images/s':>10s} {'vs 1 process':>13s}")
    print(f"{1:>10d} {one:10.1f} {1.0:13.2f}")
    print(f"{2:>10d} {two:10.1f} {two / one:13.2f}")
    try:
        import torch

        if torch.cuda.is_available():
            eager, compiled = gpu_vitb(False), gpu_vitb(True)
            print(f"ViT-B/16 224² bf16 on {torch.cuda.get_device_name()}: eager {eager:.0f} img/s, "
                  f"torch.compile {compiled:.0f} img/s ({compiled / eager:.2f}x)")  # fmt: skip
        else:
            print("no CUDA device: ViT-B 224² bf16 GPU figures skipped")
    except ImportError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
