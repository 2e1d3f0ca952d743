"""dmlviz.train against a plain PyTorch loop on the same device and batch: training throughput and recording's cost.

Cases (issue 8, part 3):
  cnn      dmlviz's small CNN on N=60,000 28-px images at batch 1024 (goal: >= 0.9x the plain
           GPU-resident loop, recording adding <= 20% to the epoch)
  resnet50 torchvision ResNet-50 at 224 px (goal: >= 0.9x the plain loop), eager and compiled

The plain loop holds the same data on the device, draws a random permutation on the device
each epoch, indexes batches there, runs bf16 autocast (channels_last for the ResNet), fused
Adam, and the same SoftTriple loss module; it reads nothing back until the epoch ends. Both
run in this one process, one after the other, twice each, best kept.

dmlviz's training seconds are its own per-epoch figure (metrics.csv "seconds", host-synced at
the epoch's end); its recording cost is the wall time per epoch beyond training, measured as
(wall of an E-epoch run - wall of a 1-epoch run) / (E - 1) - training seconds.

Run (GPU): python benchmarks/bench_gpu_loop.py           -> benchmarks/results/gpu_loop_<card>.json
(written after each case; --cases runs some, and the file keeps the other cases of an earlier run with the
same torch and --epochs; benchmarks/gpu_check.sh runs it with the rest of the GPU checks in one call)
Check on a CPU (tiny sizes):  python benchmarks/bench_gpu_loop.py --device cpu --tiny
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import dmlviz
from dmlviz.data import ArrayDataset
from dmlviz.losses import SoftTriple
from dmlviz.models import build_model
from dmlviz.training import resolve_device


def _images(n: int, size: int, channels: int, classes: int, seed: int = 0) -> ArrayDataset:
    """Random images with class-dependent means (float32 [n, channels, size, size]), labels 0..classes-1."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    means = rng.normal(size=(classes, channels, 1, 1)).astype(np.float32)
    x = rng.normal(size=(n, channels, size, size)).astype(np.float32) * 0.5 + means[labels]
    return ArrayDataset(x, labels.astype(np.int64), name=f"random{size}px")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_loop(data: ArrayDataset, model: str, model_params: dict, batch: int, epochs: int, device: torch.device,
               embedding_dim: int, compile_model: bool) -> float:
    """Images per second of the best epoch of a plain GPU-resident loop (after one warm-up epoch)."""
    torch.manual_seed(0)
    net = build_model(model, data.input_shape, embedding_dim, **model_params).to(device)
    channels_last = device.type == "cuda" and getattr(net, "channels_last", False)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    classes = int(data.labels.max()) + 1
    loss_fn = SoftTriple(classes, embedding_dim, centers_per_class=10).to(device)
    fused = device.type == "cuda"
    opt = torch.optim.Adam([{"params": net.parameters(), "lr": 1e-3}, {"params": loss_fn.parameters(), "lr": 1e-2}], fused=fused)
    forward = torch.compile(net) if compile_model else net
    x = data.inputs.to(device)
    y = torch.as_tensor(data.labels, device=device)
    n = len(y) // batch * batch
    best = 0.0
    for _ in range(epochs + 1):
        _sync(device)
        start = time.perf_counter()
        order = torch.randperm(len(y), device=device)[:n].view(-1, batch)
        total = torch.zeros((), device=device)
        for index in order:
            inputs = x[index]
            if channels_last:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                emb = forward(inputs)
            loss = loss_fn(emb.float(), y[index], check=False)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        float(total)
        _sync(device)
        best = max(best, n / (time.perf_counter() - start))
    return best


def dmlviz_run(data: ArrayDataset, model: str, model_params: dict, batch: int, epochs: int, device: torch.device,
               embedding_dim: int, probe_size: int, tmp: Path, tag: str) -> dict[str, Any]:
    """dmlviz.train's images/s (best epoch), its recording cost per epoch, and its per-epoch figures."""
    common = dict(model=model, model_params=model_params or None, loss="softtriple", centers_per_class=10, batch_size=batch,
                  embedding_dim=embedding_dim, split="samples", test_fraction=0.1, probe_size=probe_size, device=device,
                  progress=False, nmi_every=max(1, epochs))
    start = time.perf_counter()
    dmlviz.train(data, epochs=1, out=tmp / f"{tag}-1", **common)
    one = time.perf_counter() - start
    start = time.perf_counter()
    run = dmlviz.train(data, epochs=epochs, out=tmp / f"{tag}-{epochs}", **common)
    many = time.perf_counter() - start
    m = run.metrics.iloc[2:] if epochs > 2 else run.metrics.iloc[1:]  # epoch 1 warms up (cudnn, compile)
    n_train = int((1 - 0.1) * len(data)) // batch * batch
    train_s = float(m["seconds"].min())
    wall_per_epoch = (many - one) / max(1, epochs - 1)
    return {
        "images_per_s": n_train / train_s,
        "train_seconds_per_epoch": train_s,
        "wall_seconds_per_epoch": wall_per_epoch,
        "recording_seconds_per_epoch": max(0.0, wall_per_epoch - float(m["seconds"].median())),
        "record_work_seconds_per_epoch": float(m["record_seconds"].median()),
        "recording_share_of_epoch": max(0.0, wall_per_epoch - float(m["seconds"].median())) / float(m["seconds"].median()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cases", default="cnn,resnet50,resnet50-compiled")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--tiny", action="store_true", help="small sizes, to check the script on a CPU")
    parser.add_argument("--tries", type=int, default=2, help="runs of each side per case, best kept (1 for the compiled case "
                        "when time is short: every dmlviz.train and plain loop compiles the model anew)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    tiny = args.tiny
    cases = {
        "cnn": dict(model="cnn", params={}, n=2048 if tiny else 60_000, size=28, channels=1, batch=256 if tiny else 1024, classes=10, probe=500 if tiny else 5000),
        "resnet50": dict(model="resnet50", params={}, n=64 if tiny else 8192, size=32 if tiny else 224, channels=3, batch=16 if tiny else 256, classes=8 if tiny else 100, probe=64 if tiny else 2000),
        "resnet50-compiled": dict(model="resnet50", params={"compile": True}, n=64 if tiny else 8192, size=32 if tiny else 224, channels=3, batch=16 if tiny else 256, classes=8 if tiny else 100, probe=64 if tiny else 2000),
    }
    slug = re.sub(r"[^a-z0-9]+", "-", card.lower()).strip("-")
    out = Path(__file__).parent / "results" / f"gpu_loop_{slug}{'-tiny' if tiny else ''}.json"
    results: dict[str, Any] = {"card": card, "torch": torch.__version__, "epochs": args.epochs, "tiny": tiny, "cases": {}}
    if out.exists():  # cases run earlier (e.g. in a separate call, for a time limit) are kept; these replace theirs
        earlier = json.loads(out.read_text())
        if earlier.get("torch") == results["torch"] and earlier.get("epochs") == args.epochs:
            results["cases"] = earlier.get("cases", {})
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases.split(","):
            c = cases[name]
            data = _images(c["n"], c["size"], c["channels"], c["classes"])
            compiled = bool(c["params"].get("compile"))
            plain = max(plain_loop(data, c["model"], {k: v for k, v in c["params"].items() if k != "compile"}, c["batch"], 2, device, 64, compiled) for _ in range(args.tries))
            ours = max((dmlviz_run(data, c["model"], c["params"], c["batch"], args.epochs, device, 64, c["probe"], Path(tmp), f"{name}{i}") for i in range(args.tries)),
                       key=lambda r: r["images_per_s"])
            results["cases"][name] = {"images": c["n"], "image_size": c["size"], "batch": c["batch"], "tries": args.tries, "plain_images_per_s": plain,
                                      "dmlviz": ours, "ratio": ours["images_per_s"] / plain}
            print(f"{name:<20} plain {plain:>10.0f} img/s   dmlviz {ours['images_per_s']:>10.0f} img/s   ratio {ours['images_per_s'] / plain:.3f}"
                  f"   recording {ours['recording_seconds_per_epoch']:.3f} s/epoch ({100 * ours['recording_share_of_epoch']:.0f}% of the epoch)")
            out.write_text(json.dumps(results, indent=2) + "\n")  # after each case: a run stopped at a time limit keeps the finished ones
            print(f"written {out}", flush=True)


if __name__ == "__main__":
    main()
