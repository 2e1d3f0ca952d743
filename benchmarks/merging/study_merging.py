"""Why SoftTriple's effective K does not fall to the number of hidden modes, and what makes it.

    .venv/bin/python benchmarks/merging/study_merging.py [section ...]

Sections (all by default): repro distances groups sweep baselines recommended trainer.
Everything runs on one CPU thread; the whole study takes a few minutes. Synthetic data =
``dmlviz.data.synthetic(classes=4, modes_per_class=3)`` (dim 16, separation 4, noise 1, 100
samples per mode), split="samples" (600 training samples, 4 optimizer steps per epoch with
batch 128); linear head to 64-d; SoftTriple K=8, la=20, gamma=0.1, margin=0.01; Adam lr 1e-3,
centers 1e-2 — unless a row says otherwise. effK = ``dmlviz.eval.centers.effective_k`` (eps 0.05).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from common import EPS_LIST, Data, effective_k, fmt, group_report, random_centers, train, trajectory

SYN = dict(classes=4, modes_per_class=3)


def header(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def repro() -> None:
    header("1. paper setting on synthetic (tau=0.2, Adam, center_lr=1e-2), every 10 epochs")
    d = Data("synthetic", **SYN)
    r = train(d, epochs=200, record_every=10, grads=True)
    print(f"{'ep':>4}{'steps':>6} {'effK e=.05':<11}{'e=.3':<11}{'cos>.99':<11}{'owning':<11}{'orphan':<11}"
          f"{'diam':>7}{'step':>8}{'|W|':>6}  {'|g_cls|/|g_reg| owner':>22}{'free':>16}")
    for i, e in enumerate(r["epoch"]):
        g = r["grad"][i]
        print(f"{e:>4}{r['steps'][i]:>6} {fmt(r['effk'][i]):<11}{fmt(r['effk_eps'][i][0.3]):<11}{fmt(r['effk_cos99'][i]):<11}"
              f"{fmt(r['owning_groups'][i]):<11}{fmt(r['orphan_groups'][i]):<11}{r['max_diam'][i]:>7.3f}{r['step'][i]:>8.4f}"
              f"{r['wnorm'][i]:>6.2f}  {g['owner'][0]:>10.4f}/{g['owner'][1]:.4f}{g['free'][0]:>9.4f}/{g['free'][1]:.4f}")
    print("diam = largest Euclidean distance inside a merged group (eps=0.05); step = median distance a unit center moves in one")
    print("optimizer step; owning = groups owning >=5% of their class's training samples; orphan = the other groups.")
    for seed in (1, 2):
        r = train(d, epochs=200, record_every=40, seed=seed)
        print(f"seed {seed}: {trajectory(r)}")


def distances() -> None:
    header("2. distribution of within-class center distances (all pairs of all classes), vs eps")
    d = Data("synthetic", **SYN)
    r = train(d, epochs=200, record_every=40, keep_centers=True)
    bins = [0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.01]
    labels = [f"[{a},{b})" for a, b in zip(bins[:-1], bins[1:])]
    print(f"{'':<22}" + "".join(f"{s:>11}" for s in labels))

    def hist(cen: np.ndarray) -> np.ndarray:
        iu = np.triu_indices(cen.shape[1], 1)
        ds = np.concatenate([np.linalg.norm(c[:, None] - c[None], axis=-1)[iu] for c in cen])
        return np.histogram(ds, bins=bins)[0]

    rows = [("random unit centers", random_centers(4, 8, 64, seed=0))]
    rows += [(f"trained epoch {e}", r["centers"][i]) for i, e in enumerate(r["epoch"])]
    for name, cen in rows:
        print(f"{name:<22}" + "".join(f"{v:>11}" for v in hist(cen)))
    print("effK at eps " + ", ".join(map(str, EPS_LIST)) + " (epoch 200): "
          + "  ".join(fmt(v) for v in r["effk_eps"][-1].values()))


def groups() -> None:
    header("3. the groups of centers at epoch 200 (paper setting, seed 0)")
    d = Data("synthetic", **SYN)
    r = train(d, epochs=200, record_every=200, keep_centers=True)
    y = d.y.numpy()
    print("n = centers in the group, owns = training samples it owns, mode = their majority hidden mode, gap = distance to")
    print("the nearest other group, xpull = net pull of the other groups' centers through the regularizer (1 = all in one")
    print("direction, 0 = balanced), cost = regularizer distance sum to the other groups here -> if moved onto the best other group")
    for c, gs in enumerate(group_report(r["emb"][-1], y, d.fine, r["centers"][-1])):
        for g in gs:
            print(f"  class {c}  n={g['size']}  owns={g['owns']:>3}  mode={g['mode']:>3}  diam={g['diam']:.3f}  gap={g['gap']:.2f}  "
                  f"xpull={g['xpull']:.2f}  cost {g['cost_here']:.2f} -> {g['cost_best_move']:.2f}")


def _row(d: Data, name: str, epochs: int = 200, **kw) -> dict:
    r = train(d, epochs=epochs, record_every=max(1, epochs // 20), **kw)
    ix = {e: i for i, e in enumerate(r["epoch"])}
    pick = lambda e, k="effk": fmt(r[k][ix[e]]) if e in ix else "-"  # noqa: E731
    last = r["epoch"][-1]
    print(f"{name:<26}{pick(epochs // 5):<13}{pick(epochs // 2):<13}{pick(epochs):<13}{pick(last, 'owning_groups'):<11}{pick(last, 'orphan_groups'):<11}"
          f"{pick(last, 'modes_resolved'):<11}{r['r1'][-1]:>6.3f}{r['max_diam'][-1]:>7.3f}{r['step'][-1]:>8.4f}{r['wnorm'][-1]:>6.2f}"
          f"{r['total_seconds']:>6.1f}s", flush=True)
    return r


def _sweep_header(epochs: int = 200) -> None:
    print(f"{'run':<26}{'effK e' + str(epochs // 5):<13}{'e' + str(epochs // 2):<13}{'e' + str(epochs):<13}{'owning':<11}{'orphan':<11}{'modes':<11}"
          f"{'R@1':>6}{'diam':>7}{'step':>8}{'|W|':>6}{'time':>7}")


def sweep() -> None:
    header("4. one change at a time (synthetic, 200 epochs = 800 steps; e40 = 160 steps, e100 = 400; the 1000-epoch row: e200/e500/e1000)")
    d = Data("synthetic", **SYN)
    _sweep_header()
    _row(d, "paper setting")
    _row(d, "paper setting, 1000 ep", epochs=1000)
    for clr in (1e-3, 3e-3, 3e-2, 1e-1):
        _row(d, f"Adam center_lr={clr:g}", center_lr=clr)
    for clr in (1e-2, 3e-2, 1e-1):
        _row(d, f"renormalised, clr={clr:g}", center_lr=clr, renorm=True)
    for clr in (1e-2, 1.0, 10.0, 100.0):
        _row(d, f"SGD centers lr={clr:g}", center_opt="sgd", center_lr=clr)
    for tau in (0.5, 1.0, 2.0, 3.0, 5.0):
        _row(d, f"tau={tau:g}", tau=tau)
    _row(d, "gamma=0.3", gamma=0.3)
    _row(d, "K=4", K=4)
    _row(d, "K=3", K=3)
    print("modes = distinct hidden modes among the owning groups' majorities (3 = every mode still has its own center)")


def baselines() -> None:
    header("5. baselines: nothing merges without the regularizer")
    print("random unit centers, C=4, K=8, D=64, 200 draws: mean effK per class at eps " + ", ".join(map(str, EPS_LIST)) + " and cos>0.99:")
    ks = {e: [] for e in (*EPS_LIST, "cos")}
    for s in range(200):
        cen = random_centers(4, 8, 64, seed=s)
        for e in EPS_LIST:
            ks[e].append(effective_k(cen, e).mean())
        ks["cos"].append(effective_k(cen, float(np.sqrt(2 - 2 * 0.99))).mean())
    print("   " + "  ".join(f"{k}: {np.mean(v):.2f} (min {np.min(v):.2f})" for k, v in ks.items()))
    d = Data("synthetic", **SYN)
    _sweep_header()
    r = _row(d, "tau=0 (no regularizer)", tau=0.0)
    print(f"untrained epoch 0 of every run above: effK {fmt(r['effk'][0])}, owning groups {fmt(r['owning_groups'][0])}")
    m = Data("mnist5k-pairs")
    print("mnist5k-pairs, K=10, 40 epochs (760 steps):")
    _sweep_header(40)
    _row(m, "tau=0 (no regularizer)", epochs=40, tau=0.0, K=10)
    _row(m, "tau=0.2 (paper)", epochs=40, tau=0.2, K=10)


def recommended() -> None:
    header("6. settings that merge to the true number of modes, per epoch and class")
    d = Data("synthetic", **SYN)
    for tau in (1.0, 1.5, 2.0):
        r = train(d, epochs=100, record_every=5, tau=tau)
        print(f"synthetic tau={tau:g} (4 steps/epoch), {r['total_seconds']:.1f}s, R@1 {r['r1'][0]:.3f} -> {r['r1'][-1]:.3f}")
        print("  effK   " + trajectory(r))
        print("  owning " + trajectory(r, "owning_groups", every=10))
        print("  modes  " + trajectory(r, "modes_resolved", every=10))
    print("seeds 0-4, effK at epochs 20/50/100/200 and modes resolved at 200 (tau=0.2 | 1 | 1.5 | 2):")
    for seed in range(5):
        out = []
        for tau in (0.2, 1.0, 1.5, 2.0):
            r = train(d, epochs=200, record_every=10, tau=tau, seed=seed)
            out.append(" ".join(fmt(r["effk"][i]) for i in (2, 5, 10, 20)) + f" m{fmt(r['modes_resolved'][-1])}")
        print(f"  seed {seed}: " + " | ".join(out))
    m = Data("mnist5k-pairs")
    for tau, epochs in ((0.2, 80), (0.5, 40), (1.0, 40)):
        r = train(m, epochs=epochs, record_every=5, tau=tau, K=10)
        print(f"mnist5k-pairs K=10 tau={tau:g} (19 steps/epoch), {r['total_seconds']:.1f}s, R@1 {r['r1'][0]:.3f} -> {r['r1'][-1]:.3f}")
        print("  effK   " + trajectory(r))
        print("  owning " + trajectory(r, "owning_groups"))
        print("  modes  " + trajectory(r, "modes_resolved"))
    print("mnist5k-pairs K=10, seeds 0-2, effK at epochs 10/20/40 (tau=0.2 | 0.5 | 1):")
    for seed in range(3):
        out = []
        for tau in (0.2, 0.5, 1.0):
            r = train(m, epochs=40, record_every=10, tau=tau, K=10, seed=seed)
            out.append(" ".join(fmt(r["effk"][i]) for i in (1, 2, 4)) + f" m{fmt(r['modes_resolved'][-1])} R@1 {r['r1'][-1]:.3f}")
        print(f"  seed {seed}: " + " | ".join(out))


def trainer() -> None:
    header("7. the same through dmlviz.train (probe recording included), 1 thread")
    import tempfile

    import torch

    import dmlviz
    from dmlviz.data import synthetic

    torch.set_num_threads(1)
    cases = [
        ("synthetic K=8 tau=0.2", dict(dataset=synthetic(**SYN), centers_per_class=8, tau=0.2, epochs=100)),
        ("synthetic K=8 tau=1.5", dict(dataset=synthetic(**SYN), centers_per_class=8, tau=1.5, epochs=100)),
        ("mnist5k-pairs K=10 tau=0.2", dict(dataset="mnist5k-pairs", centers_per_class=10, tau=0.2, epochs=40)),
        ("mnist5k-pairs K=10 tau=0.5", dict(dataset="mnist5k-pairs", centers_per_class=10, tau=0.5, epochs=40)),
        ("mnist5k-pairs K=10 tau=1", dict(dataset="mnist5k-pairs", centers_per_class=10, tau=1.0, epochs=40)),
    ]
    for name, kw in cases:
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            run = dmlviz.train(model="linear", loss="softtriple", embedding_dim=64, split="samples", progress=False, out=f"{tmp}/r", **kw)
            eff = {e: fmt(run.snapshot(e).effective_k) for e in run.epochs if e % 5 == 0}
            last = run.metrics.iloc[-1]
        shown = ", ".join(f"{k} {last[k]:.3f}" for k in last.index if k in ("recall@1", "purity") or "purity" in k)
        print(f"{name}: {time.perf_counter() - t:.1f}s, {shown}")
        print("  " + " ".join(f"e{e}:{v}" for e, v in eff.items()))


SECTIONS = dict(repro=repro, distances=distances, groups=groups, sweep=sweep, baselines=baselines, recommended=recommended, trainer=trainer)

if __name__ == "__main__":
    t0 = time.perf_counter()
    for name in sys.argv[1:] or SECTIONS:
        SECTIONS[name]()
    print(f"\n(total {time.perf_counter() - t0:.0f}s)")
