"""The command line: ``dmlviz train | compare | features | demo | serve | eval``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any, Sequence

logger = logging.getLogger("dmlviz")


def _param(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--param takes KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def _add_train_args(parser: argparse.ArgumentParser) -> None:
    from .data import DATASETS, SPLITS
    from .losses import LOSSES
    from .models import MODELS

    p = parser
    p.add_argument("--dataset", default="mnist5k-pairs", help=f"dataset name: {', '.join(sorted(DATASETS))}, imagefolder:PATH, or a features file FILE.npz from `dmlviz features` (default: %(default)s)")
    p.add_argument("--model", default="linear", help=f"model: {', '.join(sorted(MODELS))} (default: %(default)s)")
    p.add_argument("--loss", default="softtriple", help=f"loss: {', '.join(sorted(LOSSES))} (default: %(default)s)")
    p.add_argument("--regularizer", choices=("mdr", "lsd"), default=None,
                   help="add a regularizer to the loss: mdr (Multi-level Distance Regularization; --param lambda_mdr=0.6 --param nu_mdr=0.01) "
                        "or lsd (listwise self-distillation from the previous epoch's model; --param lsd_alpha=200 --param lsd_tau=1)")
    p.add_argument("--augmenter", choices=("das", "iaa"), default=None,
                   help="also train on synthetic embeddings made from each batch: das (Densely-Anchored Sampling; --param das_num_produce=3 ...) "
                        "or iaa (Intra-class Adaptive Augmentation, for multisimilarity, contrastive, circle, triplet; --param iaa_lambda=0.8 ...)")
    p.add_argument("--epochs", type=int, default=30, help="epochs to train (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=128, help="batch size (default: %(default)s)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate of the model (default: %(default)s)")
    p.add_argument("--center-lr", type=float, default=None, help="learning rate of centers/proxies (default: 10 × --lr)")
    p.add_argument("--embedding-dim", type=int, default=64, help="embedding dimension (default: %(default)s)")
    p.add_argument("--split", choices=SPLITS, default=None, help="classes: train on the first half of the classes, test on the rest; samples: hold out --test-fraction of each class; "
                   "official: the benchmark's own split (default: official for cub200, cars196, sop, inshop, else classes)")
    p.add_argument("--test-fraction", type=float, default=0.5, help="held-out fraction with --split samples (default: %(default)s)")
    p.add_argument("--m-per-class", type=int, default=None, help="m samples per class in each batch (default: min(4, batch-size / 2) for pair losses, random batches otherwise)")
    p.add_argument("--probe-size", type=int, default=5000, help="samples recorded every epoch, at most 100,000; with many classes, whole classes of several samples each (default: %(default)s)")
    p.add_argument("--nmi", choices=("auto", "kmeans", "minibatch", "off"), default="auto",
                   help="NMI of the test split: kmeans (exact), minibatch (MiniBatchKMeans on at most 1,000 whole classes), off; "
                   "auto: kmeans while test samples × classes <= 2,000,000, else minibatch (default: %(default)s)")
    p.add_argument("--nmi-every", type=int, default=1, help="compute NMI on epochs divisible by this, NaN on the others (default: %(default)s)")
    p.add_argument("--eps", type=float, default=0.05, help="centers closer than this are merged when counting effective K (default: %(default)s)")
    d = p.add_argument_group("image datasets (cub200, cars196, sop, inshop, imagefolder:PATH, mnist, fashionmnist, cifar10, cifar100)")
    d.add_argument("--data-root", default=None, help="folder holding the dataset's files, in its official layout")
    d.add_argument("--download", action="store_true", help="fetch the official archive into --data-root when it is not there")
    d.add_argument("--image-size", type=int, default=None, help="crop size fed to the model (default 224; torchvision sets: native)")
    d.add_argument("--resize", type=int, default=None, help="shorter side before the center crop when evaluating (default 256)")
    d.add_argument("--num-workers", type=int, default=0, help="DataLoader workers decoding images (default: %(default)s)")
    b = p.add_argument_group("backbones (resnet18, resnet50)")
    b.add_argument("--pretrained", action="store_true", help="start from ImageNet weights, read from the torch hub cache (torch.hub.get_dir()/checkpoints; never downloaded)")
    b.add_argument("--pooling", choices=("avg", "avg+max"), default=None, help="avg: global average pooling; avg+max: GAP + GMP summed (default: avg)")
    b.add_argument("--freeze-bn", action="store_true", help="keep BatchNorm layers in eval mode with frozen affine parameters")
    b.add_argument("--compile", action="store_true", help="run the model through torch.compile")
    b.add_argument("--no-channels-last", action="store_true", help="keep the contiguous memory format on CUDA (default: channels_last)")
    b.add_argument("--backbone-lr", type=float, default=None, help="learning rate of the trunk (default: --lr, which the embedding head keeps)")
    b.add_argument("--model-param", type=_param, action="append", default=[], metavar="KEY=VALUE", help="any other model option, e.g. --model-param pretrained=IMAGENET1K_V1")
    speed = p.add_argument_group("speed (results do not change)")
    speed.add_argument("--resident", choices=("auto", "on", "off"), default="auto",
                       help="keep an in-memory dataset on the GPU and index batches there; auto: on CUDA when it takes at most a quarter of the free GPU memory (default: %(default)s)")
    speed.add_argument("--record-async", choices=("auto", "on", "off"), default="auto",
                       help="record each epoch in a background thread while the next one trains; auto: on CUDA (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--out", default=None, help="run folder (default: runs/<dataset>-<loss>-<time>)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last complete epoch")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("loss parameters (SoftTriple's shown; others through --param)")
    g.add_argument("--centers-per-class", type=int, help="K, centers per class (SoftTriple; default 10)")
    g.add_argument("--la", type=float, help="λ, scale of the logits (SoftTriple/SoftMax; default 20)")
    g.add_argument("--gamma", type=float, help="γ, softmax temperature over a class's centers (SoftTriple; default 0.1)")
    g.add_argument("--tau", type=float, help="τ, weight of the center regularizer (SoftTriple; default 0.2)")
    g.add_argument("--margin", type=float, help="δ, margin (SoftTriple/SoftMax default 0.01; triplet 0.1)")
    g.add_argument("--param", type=_param, action="append", default=[], metavar="KEY=VALUE", help="any other loss parameter, e.g. --param mining=hard")


def train_config(args: argparse.Namespace) -> Any:
    """The TrainConfig that ``dmlviz train`` options describe (the same object ``dmlviz.train`` takes)."""
    from .training import TrainConfig

    loss_params = {k: getattr(args, k) for k in ("centers_per_class", "la", "gamma", "tau", "margin") if getattr(args, k) is not None}
    loss_params.update(dict(args.param))
    data_params = {k: getattr(args, k) for k in ("image_size", "resize") if getattr(args, k) is not None}
    if args.download:
        data_params["download"] = True
    model_params: dict[str, Any] = {k: True for k in ("pretrained", "freeze_bn", "compile") if getattr(args, k)}
    if args.pooling is not None:
        model_params["pooling"] = args.pooling
    if args.no_channels_last:
        model_params["channels_last"] = False
    model_params.update(dict(args.model_param))
    return TrainConfig(
        dataset=args.dataset, model=args.model, loss=args.loss, regularizer=args.regularizer, augmenter=args.augmenter, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, center_lr=args.center_lr, embedding_dim=args.embedding_dim, split=args.split,
        test_fraction=args.test_fraction, m_per_class=args.m_per_class, probe_size=args.probe_size, eps=args.eps,
        seed=args.seed, out=args.out, device=args.device, resume=args.resume, overwrite=args.overwrite,
        progress=not args.no_progress, data_root=args.data_root, data_params=data_params or None,
        num_workers=args.num_workers, model_params=model_params or None, backbone_lr=args.backbone_lr,
        nmi=args.nmi, nmi_every=args.nmi_every, loss_params=loss_params,
        resident=_auto_on_off(args.resident), record_async=_auto_on_off(args.record_async),
    )


def _auto_on_off(value: str) -> Any:
    return {"auto": "auto", "on": True, "off": False}[value]


def _cmd_train(args: argparse.Namespace) -> int:
    from . import training

    try:
        run = training.train(train_config(args))
    except training.TrainingInterrupted as stopped:
        epochs = f"epoch {stopped.last_epoch} of {args.epochs}" if stopped.last_epoch is not None else "no complete epoch"
        how = stopped.resume_command or f"dmlviz train <the same options> --out {stopped.path} --resume"
        print(f"\ndmlviz train: stopped (Ctrl-C). The run in {stopped.path} reads 'stopped' and keeps {epochs}.\n"
              f"Continue it with:\n  {how}", file=sys.stderr)
        return 130
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 speaks for the run
        print(f"run written to {run.path} (status {run.status})")
        _print_metrics(run)
    return 0


def _print_metrics(run: Any, epoch: int | None = None) -> None:
    table = run.metrics
    if epoch is not None:
        table = table[table["epoch"] == epoch]
    columns = [c for c in ("epoch", "loss", "recall@1", "recall@4", "map@r", "nmi", "nmi_chance", "submode_score", "submode_score_train", "effective_k")
               if c in table]
    print(table[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import demo_runs, format_summary, summarize

    runs = demo_runs(args.runs_dir, epochs=args.epochs, progress=not args.no_progress, layouts=not args.no_serve)
    print(format_summary([summarize(run) for run in runs.values()]))
    print(f"\nruns in {args.runs_dir}/")
    if args.no_serve:
        return 0
    from .serve import serve

    return serve(args.runs_dir, port=args.port, host=args.host, notebook="softtriple_lesson.ipynb", token=args.token)


def _cmd_compare(args: argparse.Namespace) -> int:
    from .training.grid import parse_losses, train_grid

    if args.out is not None or args.resume or args.overwrite:
        raise ValueError("dmlviz compare names its runs itself (RUNS_DIR/NAME-LOSS) and resumes them; drop --out, --resume and --overwrite")
    specs = parse_losses(args.losses)
    name = args.name or f"compare-{str(args.dataset).replace('/', '_').replace(':', '_')}"
    base = train_config(args)
    runs = train_grid(specs, base, args.runs_dir, name)
    for run in runs:
        print(f"{run.name}: {run.status}")
        _print_metrics(run, run.last_epoch)
    if args.no_serve:
        return 0
    from .serve import serve

    return serve(args.runs_dir, port=args.port, host=args.host, token=args.token, compare=[run.name for run in runs])


def _cmd_serve(args: argparse.Namespace) -> int:
    from .serve import serve

    return serve(args.runs_dir, port=args.port, host=args.host, preheat=not args.no_preheat, token=args.token)


def _add_serve_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8866, help="port (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind; anything but 127.0.0.1/localhost exposes the runs to the network, "
                        "so pages then ask for a token and show no tracebacks (default: %(default)s)")
    parser.add_argument("--token", default=None, help="the token pages ask for (default: none on 127.0.0.1/localhost; "
                        "on another --host one is generated and printed in the addresses)")


def _cmd_features(args: argparse.Namespace) -> int:
    from .models import extract_features

    data_params = {k: getattr(args, k) for k in ("image_size", "resize") if getattr(args, k) is not None}
    if args.download:
        data_params["download"] = True
    pretrained: bool | str = False if args.no_pretrained else (args.weights or True)
    path = extract_features(
        args.dataset, args.out, backbone=args.backbone, data_root=args.data_root, data_params=data_params or None,
        pretrained=pretrained, pooling=args.pooling, batch_size=args.batch_size, num_workers=args.num_workers,
        device=args.device, progress=not args.no_progress,
    )
    print(f"features written to {path}; train a head on them with: dmlviz train --dataset {path} --model linear")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .runs import load_run

    run = load_run(args.run)
    print(f"{run.name}: loss {run.config.get('loss')} on {run.config.get('dataset')}, status {run.status}, epochs {run.epochs[-1] if run.epochs else None}")
    if run.status != "finished":
        print(run.describe_status())
    _print_metrics(run, args.epoch)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .interchange import export_projector

    out = export_projector(args.run, args.to, epochs=args.epoch)
    print(f"TensorBoard projector log written to {out} (open it with: tensorboard --logdir {out}, tab Projector)")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from .interchange import import_arrays, import_projector

    if args.tensorboard:
        if args.files:
            raise ValueError("give either --tensorboard LOGDIR or embedding files, not both")
        run = import_projector(args.tensorboard, args.out, label_column=args.label_column, overwrite=args.overwrite)
    else:
        run = import_arrays(args.files, args.out, labels=args.labels, overwrite=args.overwrite)
    print(f"run written to {run.path}: {len(run.epochs)} epochs of {run.config.get('num_samples')} samples; open it with "
          f"dmlviz serve {run.path.parent}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``dmlviz``."""
    parser = argparse.ArgumentParser(prog="dmlviz", description="See what a deep metric learning loss does.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every epoch")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a model and record every epoch in a run folder")
    _add_train_args(p)
    p.set_defaults(func=_cmd_train)
    p = sub.add_parser("compare", help="train one run per loss on the same data, split, seed and probe, then open them side by side")
    p.add_argument("--losses", required=True, help="comma-separated losses, each NAME[+mdr][:KEY=VALUE;KEY=VALUE], e.g. "
                   "softmax,softtriple,proxyanchor,multisimilarity,triplet+mdr:mining=distance;margin=0.2;scale=mean_distance")
    p.add_argument("--runs-dir", default="runs", help="where the runs go (default: %(default)s)")
    p.add_argument("--name", default=None, help="prefix of the run folders (default: compare-<dataset>)")
    p.add_argument("--no-serve", action="store_true", help="only train (or keep) the runs and print their metrics")
    _add_train_args(p)
    _add_serve_args(p)
    p.set_defaults(func=_cmd_compare)
    p = sub.add_parser("demo", help="train SoftMax and SoftTriple on mnist5k-pairs and SoftTriple merging on synthetic modes; compare them")
    p.add_argument("--runs-dir", default="runs", help="where the demo runs go (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default: each run's own, 30 and 100)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-serve", action="store_true", help="only train and print the comparison; do not serve the lesson")
    _add_serve_args(p)
    p.set_defaults(func=_cmd_demo)
    p = sub.add_parser("serve", help="serve the explorer and lesson dashboards (Voila) over the runs in RUNS_DIR")
    p.add_argument("runs_dir", metavar="RUNS_DIR", help="folder holding run folders")
    p.add_argument("--no-preheat", action="store_true", help="start a kernel per page instead of keeping one ready")
    _add_serve_args(p)
    p.set_defaults(func=_cmd_serve)
    p = sub.add_parser("features", help="write a frozen ImageNet backbone's features of every image once (train heads on them with --dataset FILE.npz)")
    p.add_argument("--dataset", required=True, help="an image dataset: cub200, cars196, sop, inshop, imagefolder:PATH, mnist, fashionmnist, cifar10, cifar100")
    p.add_argument("--data-root", default=None, help="folder holding the dataset's files, in its official layout")
    p.add_argument("--download", action="store_true", help="fetch the official archive into --data-root when it is not there")
    p.add_argument("--backbone", choices=("resnet18", "resnet50"), default="resnet50", help="torchvision backbone (default: %(default)s)")
    p.add_argument("--weights", default=None, help="torchvision weights name, e.g. IMAGENET1K_V1 (default: torchvision's default ImageNet weights)")
    p.add_argument("--no-pretrained", action="store_true", help="random weights instead of ImageNet ones (a baseline)")
    p.add_argument("--pooling", choices=("avg", "avg+max"), default="avg", help="avg: global average pooling; avg+max: GAP + GMP (default: %(default)s)")
    p.add_argument("--image-size", type=int, default=None, help="center crop fed to the backbone (default 224)")
    p.add_argument("--resize", type=int, default=None, help="shorter side before the crop (default 256)")
    p.add_argument("--batch-size", type=int, default=128, help="images per batch (default: %(default)s)")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader workers decoding images (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--out", required=True, help="the .npz file to write")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_features)
    p = sub.add_parser("export", help="write epochs of a run as a TensorBoard projector log (thumbnails as its sprite)")
    p.add_argument("run", help="a run folder")
    p.add_argument("--to", required=True, help="the log folder to write")
    p.add_argument("--epoch", type=int, nargs="+", default=None, help="epochs to export (default: the last)")
    p.set_defaults(func=_cmd_export)
    p = sub.add_parser("import", help="record embeddings saved elsewhere (per-epoch .npy/.npz, or a TensorBoard projector log) as a run")
    p.add_argument("files", nargs="*", help="per-epoch embeddings: .npy [N, D] or .npz with 'embeddings' (+ 'labels', 'split', 'epoch')")
    p.add_argument("--tensorboard", default=None, metavar="LOGDIR", help="a TensorBoard projector log folder instead of files")
    p.add_argument("--labels", default=None, help="labels [N] for .npy files: a .npy or a text file, one integer per line")
    p.add_argument("--label-column", default=None, help="the metadata.tsv column that holds the classes (default: class, label or the first)")
    p.add_argument("--out", required=True, help="the run folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace a dmlviz run in --out")
    p.set_defaults(func=_cmd_import)
    p = sub.add_parser("eval", help="print the metrics a run recorded")
    p.add_argument("run", help="a run folder")
    p.add_argument("--epoch", type=int, default=None, help="only this epoch")
    p.set_defaults(func=_cmd_eval)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dmlviz`` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, TypeError, FileExistsError, FileNotFoundError, KeyError) as error:
        print(f"dmlviz {args.command}: error: {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        print(f"dmlviz {args.command}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
