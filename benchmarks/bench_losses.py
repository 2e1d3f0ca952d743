"""Benchmark: each loss of dmlviz against its reference, forward + backward on the same inputs, one process.

- PML-adapted losses against the pytorch-metric-learning object they wrap, called directly (the
  goal: ≤ 1.05×): Triplet (semi-hard), Multi-Similarity (+ miner), Circle, ProxyNCA(++),
  ProxyAnchor, N-pair, Margin (with dmlviz's distance-weighted triplets given to both),
  Contrastive, NT-Xent (balance 1, dmlviz's own formula vs PML's NTXentLoss).
- dmlviz's own losses against a direct transcription of the authors' code (per-anchor loops
  where the authors loop): MDR (the authors' MDRLoss, vectorised as theirs), CBML (their
  per-anchor loop), Smooth-AP (the authors' tensor layout = PML's SmoothAPLoss on a batch with as
  many classes as samples per class, where it is right), cross-entropy (F.cross_entropy with
  the same smoothed target), CCP (PML's ContrastiveLoss twice, as the authors' LossWithCCP), Multi-Similarity
  + IAA (the authors' per-anchor MultiSimilarityLoss on the augmented batch), EL-nivMF (the authors' one
  log_ppk_vmf_vec call per image).

Batch: 16 classes × 8 = 128 embeddings of 128-d (Smooth-AP: 8 × 8 = 64), seed 0. Calls
interleaved, warm-up first, median of ``--repeats``. Writes benchmarks/results/losses_<device>.json (after each loss).

    python benchmarks/bench_losses.py [--device cpu|cuda] [--repeats 50]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pytorch_metric_learning  # noqa: E402
from pytorch_metric_learning import losses as pml  # noqa: E402
from pytorch_metric_learning import miners as pml_miners  # noqa: E402
from pytorch_metric_learning.distances import DotProductSimilarity  # noqa: E402

from pytorch_metric_learning.distances import LpDistance  # noqa: E402

from dmlviz.losses import MDR, build  # noqa: E402
from dmlviz.losses.ccp import to_unit_ball  # noqa: E402
from dmlviz.losses.nivmf import log_vmf_normalizer, sample_vmf  # noqa: E402
from dmlviz.losses.sampling import distance_weighted_triplets  # noqa: E402

C, M, D = 16, 8, 128


def _timed(step: Callable[[], torch.Tensor], sync: Callable[[], None]) -> float:
    sync()
    start = time.perf_counter()
    step().backward()
    sync()
    return time.perf_counter() - start


def _mdr_reference(device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """The authors' MDRLoss forward, transcribed (pdist, statistics over the whole matrix, momentum 0.9)."""
    levels = torch.nn.Parameter(torch.tensor([-3.0, 0.0, 3.0], device=device))
    state = {"mean": None, "std": None}

    def pdist(e: torch.Tensor) -> torch.Tensor:
        sq = e.pow(2).sum(dim=1)
        res = (sq[:, None] + sq[None, :] - 2 * e @ e.t()).clamp(min=1e-12).sqrt().clone()
        res[range(len(e)), range(len(e))] = 0
        return res

    def forward(e: torch.Tensor) -> torch.Tensor:
        dist = pdist(e)
        off = dist[~torch.eye(len(e), dtype=torch.bool, device=e.device)]
        mean, std = dist.view(-1).mean().detach(), dist.view(-1).std().detach()
        if state["mean"] is None:
            state["mean"], state["std"] = mean, std
        else:
            state["mean"] = 0.1 * mean + 0.9 * state["mean"]
            state["std"] = 0.1 * std + 0.9 * state["std"]
        normalized = (off - state["mean"]) / state["std"]
        return (normalized[None] - levels[:, None]).abs().min(dim=0)[0].mean()

    return forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (default 1: with several, a per-anchor loop's many tiny ops leave OpenMP's pool in a state "
                             "that slowed the next loss's calls ~60× here, whichever loss it was)")
    parser.add_argument("--only", default=None, help="comma-separated loss names to run (default: all); their rows replace theirs in the results JSON")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    labels = torch.arange(C, device=device).repeat_interleave(M)
    base = torch.randn(C * M, D, device=device)

    def fresh() -> torch.Tensor:
        return base.clone().requires_grad_(True)

    pairs: dict[str, tuple[Callable[[], torch.Tensor], Callable[[], torch.Tensor], str]] = {}

    def add(name: str, ours: Callable[[], torch.Tensor], reference: Callable[[], torch.Tensor], what: str) -> None:
        pairs[name] = (ours, reference, what)

    t = build("triplet", C, D).to(device)
    t_loss, t_miner = pml.TripletMarginLoss(margin=0.1), pml_miners.TripletMarginMiner(margin=0.1, type_of_triplets="semihard")
    add("triplet", lambda: t(fresh(), labels, check=False), lambda: (lambda x: t_loss(x, labels, t_miner(x, labels)))(fresh()), "PML TripletMarginLoss + miner")
    ms = build("multisimilarity", C, D).to(device)
    ms_loss, ms_miner = pml.MultiSimilarityLoss(alpha=2, beta=50, base=0.5), pml_miners.MultiSimilarityMiner(epsilon=0.1)
    add("multisimilarity", lambda: ms(fresh(), labels, check=False), lambda: (lambda x: ms_loss(x, labels, ms_miner(x, labels)))(fresh()), "PML MultiSimilarityLoss + miner")
    ci, ci_ref = build("circle", C, D).to(device), pml.CircleLoss(m=0.4, gamma=80)
    add("circle", lambda: ci(fresh(), labels, check=False), lambda: ci_ref(fresh(), labels), "PML CircleLoss")
    for name, scale in (("proxynca", 1.0), ("proxyncapp", 9.0)):
        ours_p = build(name, C, D).to(device)
        ref_p = pml.ProxyNCALoss(C, D, softmax_scale=scale).to(device)
        add(name, lambda o=ours_p: o(fresh(), labels, check=False), lambda r=ref_p: r(fresh(), labels), f"PML ProxyNCALoss(softmax_scale={scale:g})")
    pa, pa_ref = build("proxyanchor", C, D).to(device), pml.ProxyAnchorLoss(C, D, margin=0.1, alpha=32).to(device)
    add("proxyanchor", lambda: pa(fresh(), labels, check=False), lambda: pa_ref(fresh(), labels), "PML ProxyAnchorLoss")
    two = torch.arange(C * M // 2, device=device).repeat_interleave(2)
    npair = build("npair", C * M // 2, D).to(device)
    np_ref = pml.NPairsLoss(distance=DotProductSimilarity(normalize_embeddings=False))
    add("npair", lambda: npair(fresh(), two, check=False),
        lambda: (lambda x: np_ref(x, two) + 0.02 * x.pow(2).sum(dim=1).mean())(fresh()), "PML NPairsLoss (unnormalised) + L2 penalty")
    mg = build("margin", C, D).to(device)
    mg_ref = pml.MarginLoss(margin=0.2, nu=0, beta=1.2, learn_beta=True, num_classes=C).to(device)
    add("margin", lambda: mg(fresh(), labels, check=False),
        lambda: (lambda x: mg_ref(x, labels, distance_weighted_triplets(x, labels)))(fresh()), "PML MarginLoss on the same sampler")
    co, co_ref = build("contrastive", C, D).to(device), pml.ContrastiveLoss(pos_margin=0, neg_margin=1)
    add("contrastive", lambda: co(fresh(), labels, check=False), lambda: co_ref(fresh(), labels), "PML ContrastiveLoss")
    nt, nt_ref = build("ntxent", C, D).to(device), pml.NTXentLoss(temperature=0.07)
    add("ntxent", lambda: nt(fresh(), labels, check=False), lambda: nt_ref(fresh(), labels), "PML NTXentLoss")
    mdr, mdr_ref = MDR().to(device), _mdr_reference(device)
    add("mdr", lambda: mdr(fresh()), lambda: mdr_ref(fresh()), "the authors' MDRLoss, transcribed")
    sys.path.insert(0, str(ROOT / "tests" / "losses"))
    from test_methods import _cbml_reference  # noqa: E402  (the re-typed authors' loop the tests check against)

    cb = build("cbml", C, D).to(device)
    add("cbml", lambda: cb(fresh(), labels, check=False), lambda: _cbml_reference(F.normalize(fresh(), dim=1), labels),
        "the authors' per-anchor loop, transcribed")
    sq_labels = torch.arange(8, device=device).repeat_interleave(8)
    sq = base[:64]
    sap, sap_ref = build("smoothap", 8, D).to(device), pml.SmoothAPLoss(temperature=0.01)
    add("smoothap", lambda: sap(sq.clone().requires_grad_(True), sq_labels, check=False),
        lambda: sap_ref(sq.clone().requires_grad_(True), sq_labels), "the authors' layout (PML SmoothAPLoss, 8 classes × 8)")
    ce = build("crossentropy", C, D).to(device)

    def smoothed_ce() -> torch.Tensor:  # the authors build the smoothed target each call, then take KL to it
        logits = ce.classifier(fresh())
        target = torch.full_like(logits, 0.1 / (C - 1)).scatter_(1, labels[:, None], 0.9)
        return F.kl_div(F.log_softmax(logits, dim=1), target, reduction="batchmean")

    add("crossentropy", lambda: ce(fresh(), labels, check=False), smoothed_ce, "the authors' SmoothCrossEntropy (KL to the smoothed target), transcribed")

    # the re-typed authors' code the tests check against (tests/losses/test_methods.py): one copy of each
    sys.path.insert(0, str(ROOT / "tests" / "losses"))
    from test_methods import _proxy_synthesis_reference, _soprc_reference, _supap_reference  # noqa: E402

    rm = build("roadmap", C, D).to(device)
    calib = pml.ContrastiveLoss(pos_margin=0.9, neg_margin=0.6, distance=DotProductSimilarity())
    add("roadmap", lambda: rm(fresh(), labels, check=False),
        lambda: (lambda x: _supap_reference(F.normalize(x, dim=1) @ F.normalize(x, dim=1).T, labels) + calib(x, labels))(fresh()),
        "the authors' step_rank + quick_forward (transcribed) + PML calibration")
    mpa, mpa_ref = build("multiproxyanchor", C, D, proxies_per_class=1).to(device), pml.ProxyAnchorLoss(C, D, margin=0.1, alpha=32).to(device)
    with torch.no_grad():
        mpa_ref.proxies.copy_(mpa.proxies)
    add("multiproxyanchor", lambda: mpa(fresh(), labels, check=False), lambda: mpa_ref(fresh(), labels), "PML ProxyAnchorLoss (K = 1)")
    ps = build("proxysynthesis", C, D).to(device)
    ps.draw_rate = lambda device: 0.4
    from dmlviz.losses.proxy_synthesis import interleave  # noqa: E402

    def ps_reference() -> torch.Tensor:
        x = fresh()
        order = interleave(labels)
        xs, pp, ys = _proxy_synthesis_reference(F.normalize(x[order], dim=1), F.normalize(ps.proxies, dim=1), labels[order], 0.4, 1.0)
        return F.cross_entropy(23.0 * xs @ pp.T, ys)

    add("proxysynthesis", lambda: ps(fresh(), labels, check=False), ps_reference, "the authors' proxy_synthesis + Norm_SoftMax, transcribed")
    so = build("soprc", C, D, variance_weight=0.0).to(device)
    so_v = so.v.clone()
    add("soprc", lambda: so(fresh(), labels, check=False),
        lambda: _soprc_reference(F.normalize(fresh(), dim=1), labels, so_v, so.prior, ns=M), "the authors' SOPRC forward, transcribed")

    cc = build("ccp", C, D).to(device)
    cc_ref = pml.ContrastiveLoss(pos_margin=0.0, neg_margin=0.5, distance=LpDistance(normalize_embeddings=False))

    def ccp_reference() -> torch.Tensor:  # the authors' LossWithCCP: 0.1 · pair loss on the batch + pair loss against the proxies
        x = to_unit_ball(fresh())
        p = to_unit_ball(cc.proxies.reshape(-1, D))
        return 0.1 * cc_ref(x, labels) + cc_ref(x, labels, ref_emb=p, ref_labels=cc.proxy_labels())

    add("ccp", lambda: cc(fresh(), labels, check=False), ccp_reference, "PML ContrastiveLoss on the batch and against the proxies")
    from test_iaa import iaa_multisimilarity  # noqa: E402

    ia = build("multisimilarity", C, D, beta=40.0, augmenter="iaa", iaa_start=0.0).to(device)
    ia.set_training_embeddings(torch.randn(C * 50, D, device=device), torch.arange(C, device=device).repeat_interleave(50))

    def iaa_reference() -> torch.Tensor:
        x = fresh()
        made, made_labels, _ = ia.iaa.produce(x, labels, ia.iaa.lam)
        return iaa_multisimilarity(F.normalize(torch.cat([x, made]), dim=1), torch.cat([labels, made_labels]), len(labels))

    add("multisimilarity+iaa", lambda: ia(fresh(), labels, check=False), iaa_reference,
        "the authors' MultiSimilarityLoss on the augmented batch (per-anchor loop), transcribed")
    vm = build("nivmf", C, D, normalizer="exact").to(device)

    def nivmf_reference() -> torch.Tensor:  # the authors' forward: one log_ppk_vmf_vec call per image
        z = fresh()
        unit = F.normalize(z, dim=1)
        x = sample_vmf(unit, z.norm(dim=1), 5)
        kappa, mu = vm.kappa.clamp(min=0.1), F.normalize(vm.directions, dim=1)
        m = mu * kappa
        n = m.norm(dim=1)
        log_c, det = log_vmf_normalizer(n, D, "exact"), torch.log(kappa).sum(1) - torch.log(n)

        def one(samples: torch.Tensor) -> torch.Tensor:  # log_ppk_vmf_vec for one image: its S samples against every proxy
            logl = log_c[None] + n[None] * (F.normalize(samples, dim=1) @ (m / n[:, None]).T) + det[None]
            return torch.logsumexp(logl / vm.temperature - math.log(samples.shape[0]), dim=0)

        sim = torch.stack([one(x[:, i]) for i in range(len(z))])
        nca = (-sim.gather(1, labels[:, None]).squeeze(1) + torch.logsumexp(sim, dim=1)).mean()
        return nca + 3.0 * vm._guidance(unit, labels)

    add("nivmf", lambda: vm(fresh(), labels, check=False), nivmf_reference, "the authors' per-image log_ppk_vmf_vec loop, transcribed")

    out = ROOT / "benchmarks" / "results" / f"losses_{device.type}.json"
    # measured again with --only: these losses' rows replace theirs, the others are kept
    kept = json.loads(out.read_text())["losses"] if args.only and out.is_file() else {}

    def write(results: dict) -> None:
        out.write_text(json.dumps({
            "batch": f"{C} classes x {M} samples, {D}-d (smoothap: 8 x 8)", "repeats": args.repeats, "device": str(device),
            "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
            "pytorch_metric_learning": pytorch_metric_learning.__version__, "threads": torch.get_num_threads(),
            "losses": {**kept, **results},
        }, indent=1) + "\n")

    results = {}
    chosen = set(args.only.split(",")) if args.only else set(pairs)
    for name, (ours, reference, what) in pairs.items():
        if name not in chosen:
            continue
        for _ in range(args.warmup):
            _timed(ours, sync), _timed(reference, sync)
        mine, theirs = [], []
        for i in range(args.repeats):
            if i % 2:
                mine.append(_timed(ours, sync)), theirs.append(_timed(reference, sync))
            else:
                theirs.append(_timed(reference, sync)), mine.append(_timed(ours, sync))
        a, b = statistics.median(mine), statistics.median(theirs)
        results[name] = {"dmlviz_ms": round(a * 1e3, 4), "reference_ms": round(b * 1e3, 4), "ratio": round(a / b, 3), "reference": what}
        print(f"{name:16s} dmlviz {a * 1e3:8.3f} ms   reference {b * 1e3:8.3f} ms   ratio {a / b:5.2f}   ({what})", flush=True)
        write(results)  # after each loss: a run stopped at a time limit keeps the measured ones
    print(f"written to {out}")


if __name__ == "__main__":
    main()
