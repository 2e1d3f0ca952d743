"""Shared harness of the merging study: a minimal SoftTriple training loop with diagnostics.

The loop is the one of ``dmlviz.training.trainer`` (same model builder, same loss, same
``epoch_batches``, Adam with a separate center learning rate, ``torch.manual_seed(seed)``
before the model is built) but it records, every epoch, what the trainer does not: center
distances per class against the hidden modes, ownership, the size of one optimizer step of a
center on the unit sphere, the norms of the raw center columns and the gradient of each
loss term on the centers.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from dmlviz.data import load_dataset, split_dataset  # noqa: E402
from dmlviz.eval.centers import effective_k  # noqa: E402
from dmlviz.losses import build  # noqa: E402
from dmlviz.models import build_model  # noqa: E402
from dmlviz.training.sampler import epoch_batches  # noqa: E402

torch.set_num_threads(1)

EPS_LIST = (0.05, 0.1, 0.2, 0.3)


class Data:
    """Training split of a dataset as tensors: x [N, ...], y [N], fine [N] (hidden mode)."""

    def __init__(self, name: str, split: str = "samples", seed: int = 0, **params):
        ds = load_dataset(name, **params)
        parts = split_dataset(ds.labels, split, test_fraction=0.5, seed=seed)
        idx = parts.train
        self.name = name if not params else f"{name}({', '.join(f'{k}={v}' for k, v in params.items())})"
        self.x = ds.inputs[idx]
        self.y = torch.as_tensor(ds.labels[idx])
        fine = ds.fine_labels[idx]
        self.fine = np.unique(fine, return_inverse=True)[1].reshape(-1)
        self.x_test = ds.inputs[parts.test]
        self.y_test = ds.labels[parts.test]
        self.input_shape = ds.input_shape
        self.C = int(ds.num_classes)
        self.modes = [sorted(set(self.fine[self.y.numpy() == c])) for c in range(self.C)]


def random_centers(C: int, K: int, D: int, seed: int = 0) -> np.ndarray:
    g = np.random.default_rng(seed).normal(size=(C, K, D))
    return g / np.linalg.norm(g, axis=-1, keepdims=True)


def groups_by_cos(centers: np.ndarray, thr: float) -> np.ndarray:
    """Effective K with 'merged' = cosine > thr (same as Euclidean eps = sqrt(2 - 2 thr) on unit centers)."""
    return effective_k(centers, eps=math.sqrt(2 - 2 * thr))


def owners(emb: np.ndarray, y: np.ndarray, centers: np.ndarray, min_share: float = 0.0) -> np.ndarray:
    """Per class, the number of centers that own more than ``min_share`` of the class's samples."""
    xn = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    out = []
    for c in range(centers.shape[0]):
        a = np.argmax(xn[y == c] @ centers[c].T, axis=1)
        counts = np.bincount(a, minlength=centers.shape[1])
        out.append(int((counts > max(0, min_share * len(a))).sum()))
    return np.array(out)


def mode_geometry(emb: np.ndarray, y: np.ndarray, fine: np.ndarray, modes, centers: np.ndarray) -> dict:
    """Give every center the hidden mode whose normalised mean embedding is nearest (cosine).

    Returns per class: modes covered by at least one center, the largest distance between two
    centers of the same mode (its 'diameter'), the smallest distance between centers of
    different modes, and all same-mode pair distances (pooled).
    """
    xn = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    covered, diam, across, same = [], [], [], []
    for c in range(centers.shape[0]):
        means = np.stack([xn[fine == m].mean(0) for m in modes[c]])
        means /= np.linalg.norm(means, axis=1, keepdims=True)
        w = centers[c]
        m_of = np.argmax(w @ means.T, axis=1)
        d = np.linalg.norm(w[:, None] - w[None], axis=-1)
        iu = np.triu_indices(len(w), 1)
        same_mask = (m_of[:, None] == m_of[None])[iu]
        ds = d[iu]
        covered.append(len(set(m_of.tolist())))
        diam.append(ds[same_mask].max() if same_mask.any() else 0.0)
        across.append(ds[~same_mask].min() if (~same_mask).any() else float("nan"))
        same.extend(ds[same_mask].tolist())
    return dict(covered=np.array(covered), diam=np.array(diam), across=np.array(across), same=np.array(same))


def train(
    data: Data,
    *,
    K: int = 8,
    tau: float = 0.2,
    la: float = 20.0,
    gamma: float = 0.1,
    margin: float = 0.01,
    model: str = "linear",
    emb_dim: int = 64,
    lr: float = 1e-3,
    center_lr: float | None = None,
    center_opt: str = "adam",
    renorm: bool = False,
    epochs: int = 40,
    batch_size: int = 128,
    seed: int = 0,
    record_every: int = 1,
    grads: bool = False,
    keep_centers: bool = False,
) -> dict:
    """Train; return per-recorded-epoch diagnostics (lists) and the number of optimizer steps."""
    center_lr = 10 * lr if center_lr is None else center_lr
    torch.manual_seed(seed)
    net = build_model(model, data.input_shape, emb_dim)
    loss = build("softtriple", num_classes=data.C, embedding_dim=emb_dim, centers_per_class=K, tau=tau, la=la, gamma=gamma, margin=margin)
    opt_m = torch.optim.Adam(net.parameters(), lr=lr)
    if center_opt == "adam":
        opt_c = torch.optim.Adam([loss.weight], lr=center_lr)
    elif center_opt == "sgd":
        opt_c = torch.optim.SGD([loss.weight], lr=center_lr)
    else:
        raise ValueError(center_opt)
    if renorm:
        with torch.no_grad():
            loss.weight.copy_(F.normalize(loss.weight, dim=0))
    y_np = data.y.numpy()
    rec: dict[str, list] = {k: [] for k in ("epoch", "steps", "effk", "effk_eps", "effk_cos99", "own", "own5", "geom", "step", "wnorm", "grad", "seconds", "owning_groups", "orphan_groups", "modes_resolved", "max_diam", "r1")}
    if keep_centers:
        rec["centers"] = []
        rec["emb"] = []
    steps = 0
    t0 = time.perf_counter()
    step_acc = []

    def record(epoch: int) -> None:
        net.eval()
        with torch.no_grad():
            emb = net(data.x).numpy().astype(np.float64)
            et = net(data.x_test).numpy().astype(np.float64)
        cen = loss.centers().numpy().astype(np.float64)
        rec["r1"].append(recall_at_1(et, data.y_test))
        rec["epoch"].append(epoch)
        rec["steps"].append(steps)
        rec["effk"].append(effective_k(cen, 0.05))
        rec["effk_eps"].append({e: effective_k(cen, e) for e in EPS_LIST})
        rec["effk_cos99"].append(groups_by_cos(cen, 0.99))
        rec["own"].append(owners(emb, y_np, cen))
        rec["own5"].append(owners(emb, y_np, cen, 0.05))
        rec["geom"].append(mode_geometry(emb, y_np, data.fine, data.modes, cen))
        gr = group_report(emb, y_np, data.fine, cen)
        share = [np.array([g["owns"] for g in gs]) / max(1, sum(g["owns"] for g in gs)) for gs in gr]
        rec["owning_groups"].append(np.array([(sh >= 0.05).sum() for sh in share]))
        rec["orphan_groups"].append(np.array([(sh < 0.05).sum() for sh in share]))
        rec["modes_resolved"].append(np.array([len({g["mode"] for g, s in zip(gs, sh) if s >= 0.05}) for gs, sh in zip(gr, share)]))
        rec["max_diam"].append(max(g["diam"] for gs in gr for g in gs))
        rec["step"].append(float(np.median(step_acc)) if step_acc else float("nan"))
        rec["wnorm"].append(float(loss.weight.detach().norm(dim=0).median()))
        rec["seconds"].append(time.perf_counter() - t0)
        if keep_centers:
            rec["centers"].append(cen)
            rec["emb"].append(emb)
        if grads and tau > 0:
            rec["grad"].append(term_gradients(net, loss, data, emb, cen))
        net.train()

    record(0)
    for epoch in range(1, epochs + 1):
        step_acc = []
        for b in epoch_batches(y_np, batch_size, seed=seed, epoch=epoch):
            before = F.normalize(loss.weight.detach(), dim=0).clone()
            value = loss(net(data.x[b]), data.y[b])
            opt_m.zero_grad(set_to_none=True)
            opt_c.zero_grad(set_to_none=True)
            value.backward()
            opt_m.step()
            opt_c.step()
            if renorm:
                with torch.no_grad():
                    loss.weight.copy_(F.normalize(loss.weight, dim=0))
            steps += 1
            step_acc.append(float((F.normalize(loss.weight.detach(), dim=0) - before).norm(dim=0).median()))
        if epoch % record_every == 0 or epoch == epochs:
            record(epoch)
    rec["total_seconds"] = time.perf_counter() - t0
    return rec


def term_gradients(net, loss, data: Data, emb: np.ndarray, cen: np.ndarray) -> dict:
    """Full-batch gradient of each term on the raw center columns; medians over owning / non-owning centers."""
    w = loss.weight
    with torch.no_grad():
        e = net(data.x)
    parts = loss.compute(e, data.y)
    g_cls = torch.autograd.grad(parts["classification"], w, retain_graph=True)[0].norm(dim=0).numpy()
    g_reg = torch.autograd.grad(parts["regularizer"], w)[0].norm(dim=0).numpy()
    C, K = cen.shape[:2]
    xn = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    owned = np.zeros((C, K), bool)
    y = data.y.numpy()
    for c in range(C):
        owned[c, np.unique(np.argmax(xn[y == c] @ cen[c].T, axis=1))] = True
    owned = owned.reshape(-1)  # column order of weight is class-major
    out = {}
    for name, m in (("owner", owned), ("free", ~owned)):
        out[name] = (float(np.median(g_cls[m])) if m.any() else float("nan"), float(np.median(g_reg[m])) if m.any() else float("nan"))
    return out


def recall_at_1(emb: np.ndarray, y: np.ndarray) -> float:
    """Recall@1 (cosine) of every test sample against the other test samples."""
    xn = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sim = xn @ xn.T
    np.fill_diagonal(sim, -np.inf)
    return float((y[np.argmax(sim, axis=1)] == y).mean())


def fmt(a) -> str:
    return "[" + ",".join(str(int(v)) for v in a) + "]"


def trajectory(rec: dict, key: str = "effk", every: int | None = None) -> str:
    """'e0:[8,8,8,8] e10:[...] ...' from a record."""
    idx = range(len(rec["epoch"]))
    if every:
        idx = [i for i in idx if rec["epoch"][i] % every == 0 or i == len(rec["epoch"]) - 1]
    return " ".join(f"e{rec['epoch'][i]}:{fmt(rec[key][i])}" for i in idx)


def group_report(emb: np.ndarray, y: np.ndarray, fine: np.ndarray, centers: np.ndarray, eps: float = 0.05) -> list[list[dict]]:
    """Per class, its groups of centers (merged under eps): size, samples owned, majority mode,
    within-group diameter, distance to the nearest other group, and the regularizer's net pull.

    ``pull`` = |tangent part of sum over the class's other centers t of (w_t - w_s)/|w_t - w_s||| / (K-1),
    averaged over the group's members: 1 when every other center lies in one direction, 0 when
    the pulls cancel (the center sits at the weighted geometric median of the others, an
    equilibrium of the regularizer).
    """
    from scipy.sparse.csgraph import connected_components

    xn = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    out = []
    for c in range(centers.shape[0]):
        w = centers[c]
        K = len(w)
        d = np.linalg.norm(w[:, None] - w[None], axis=-1)
        _, comp = connected_components(d < eps, directed=False)
        a = np.argmax(xn[y == c] @ w.T, axis=1)
        counts = np.bincount(a, minlength=K)
        f = fine[y == c]
        groups = []
        for g in np.unique(comp):
            mem = np.flatnonzero(comp == g)
            owned = np.isin(a, mem)
            pulls = []
            for s in mem:
                diff = w - w[s]
                n = np.linalg.norm(diff, axis=1)
                keep = n > 1e-9
                v = (diff[keep] / n[keep, None]).sum(0)
                v -= (v @ w[s]) * w[s]
                pulls.append(np.linalg.norm(v) / (K - 1))
            out_idx = np.flatnonzero(comp != g)
            xp = []
            for s in mem:
                if len(out_idx) == 0:
                    break
                diff = w[out_idx] - w[s]
                v = (diff / np.linalg.norm(diff, axis=1, keepdims=True)).sum(0)
                v -= (v @ w[s]) * w[s]
                xp.append(np.linalg.norm(v) / len(out_idx))
            # regularizer cost of this group's members to the centers outside it, here vs moved onto each other group
            here = float(np.linalg.norm(w[out_idx] - w[mem[0]], axis=1).sum()) if len(out_idx) else 0.0
            moved = [float(np.linalg.norm(w[out_idx] - w[t], axis=1).sum()) for t in out_idx]
            groups.append(
                dict(
                    xpull=float(np.mean(xp)) if xp else float("nan"),
                    cost_here=here,
                    cost_best_move=min(moved) if moved else float("nan"),
                    size=len(mem),
                    owns=int(counts[mem].sum()),
                    mode=int(np.bincount(f[owned]).argmax()) if owned.any() else -1,
                    diam=float(d[np.ix_(mem, mem)].max()),
                    gap=float(d[np.ix_(mem, np.flatnonzero(comp != g))].min()) if (comp != g).any() else float("nan"),
                    pull=float(np.mean(pulls)),
                )
            )
        out.append(groups)
    return out
