"""Cosine k-nearest neighbours and retrieval metrics (Recall@K, R-precision, MAP@R).

Conventions (chosen to match pytorch-metric-learning's ``AccuracyCalculator`` with
``k="max_bin_count"``):

* Every row is a query against all the other rows; a query's own row is excluded by
  index, so exact duplicates of a query still count as its neighbours.
* R for a query = number of OTHER samples of its class.
* Queries whose class has no other sample (R = 0, "lone" queries) are left out of every
  metric, Recall@K and P@1 included: PML drops them from ``precision_at_1``,
  ``r_precision`` and ``mean_average_precision_at_r`` alike. If every query is lone,
  every metric is NaN.
* Neighbours are searched once with k = max(max(ks), largest class size - 1), capped at
  N - 1; Recall@K for a K above N - 1 therefore uses all N - 1 other samples.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from numbers import Integral
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

#: Budget for one chunk's [Q_chunk, N] float32 similarity block.
_CHUNK_BYTES = 256 * 2**20

try:  # optional backend
    import faiss  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    faiss = None


# ----------------------------------------------------------------------------- inputs


def _resolve_device(x: Any, device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    if isinstance(x, torch.Tensor):
        return x.device
    return torch.device("cpu")


def _as_embeddings(x: Any, name: str, device: torch.device, min_rows: int = 1) -> torch.Tensor:
    """Validate a [N, D] array-like of numbers and return it as float32 on ``device``."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            arr = np.asarray(x)
        except Exception as exc:  # pragma: no cover - exotic inputs
            raise TypeError(f"{name} must be an array or tensor of shape [N, D], got {type(x).__name__}") from exc
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.is_complex():
        raise TypeError(f"{name} must hold real numbers, got dtype {t.dtype}")
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D [N, D], got shape {tuple(t.shape)}")
    if t.shape[0] < min_rows:
        raise ValueError(f"{name} must have at least {min_rows} row(s), got shape {tuple(t.shape)}")
    if t.shape[1] < 1:
        raise ValueError(f"{name} must have at least 1 column, got shape {tuple(t.shape)}")
    t = t.to(device=device, dtype=torch.float32)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contain NaN or inf")
    return t


def _as_labels(labels: Any, n: int, device: torch.device) -> torch.Tensor:
    """Validate 1-D labels of length ``n``; return dense int64 class indices 0..C-1."""
    arr = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"labels must be 1-D [N], got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"labels must have one entry per embedding row ({n}), got {arr.shape[0]}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError("labels contain NaN or inf")
    _, inverse = np.unique(arr, return_inverse=True)
    return torch.from_numpy(inverse.reshape(-1).astype(np.int64)).to(device)


def _as_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _as_ks(ks: Any) -> tuple[int, ...]:
    if isinstance(ks, Integral) and not isinstance(ks, bool):
        ks = (ks,)
    try:
        ks_t = tuple(ks)
    except TypeError:
        raise ValueError(f"ks must be a sequence of positive integers, got {ks!r}") from None
    if not ks_t:
        raise ValueError("ks must be a non-empty sequence of positive integers, got ()")
    for k in ks_t:
        if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
            raise ValueError(f"ks must contain positive integers only, got {k!r} in {ks_t!r}")
    return tuple(dict.fromkeys(int(k) for k in ks_t))


def _default_chunk_size(n_refs: int) -> int:
    return max(1, _CHUNK_BYTES // (4 * max(n_refs, 1)))


# ------------------------------------------------------------------------------- k-NN


def _iter_knn(
    q: torch.Tensor,
    r: torch.Tensor,
    k: int,
    exclude_self: bool,
    chunk_size: int,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Yield (start, sims [c, k], indices [c, k]) per query chunk; q, r already normalised."""
    n_q = q.shape[0]
    if faiss is not None:
        yield from _iter_knn_faiss(q, r, k, exclude_self, chunk_size)
        return
    r_t = r.t()
    for start in range(0, n_q, chunk_size):
        stop = min(start + chunk_size, n_q)
        sims = q[start:stop] @ r_t
        if exclude_self:
            rows = torch.arange(stop - start, device=sims.device)
            sims[rows, rows + start] = -math.inf
        vals, idx = torch.topk(sims, k, dim=1, largest=True, sorted=True)
        del sims
        yield start, vals, idx


def _iter_knn_faiss(
    q: torch.Tensor,
    r: torch.Tensor,
    k: int,
    exclude_self: bool,
    chunk_size: int,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:  # pragma: no cover - faiss not in CI
    """faiss IndexFlatIP backend; self removed by index from a k+1 search."""
    device = q.device
    index = faiss.IndexFlatIP(r.shape[1])
    index.add(np.ascontiguousarray(r.cpu().numpy(), dtype=np.float32))
    q_np = np.ascontiguousarray(q.cpu().numpy(), dtype=np.float32)
    k_search = k + 1 if exclude_self else k
    for start in range(0, q_np.shape[0], chunk_size):
        stop = min(start + chunk_size, q_np.shape[0])
        d, i = index.search(q_np[start:stop], k_search)
        vals = torch.from_numpy(d)
        idx = torch.from_numpy(i).long()
        if exclude_self:
            is_self = idx == torch.arange(start, stop).unsqueeze(1)
            # rows where self was not returned (ties): drop the last neighbour instead
            is_self[~is_self.any(dim=1), -1] = True
            keep = ~is_self
            vals = vals[keep].view(stop - start, k)
            idx = idx[keep].view(stop - start, k)
        yield start, vals.to(device), idx.to(device)


def knn(
    queries: Any,
    references: Any,
    k: int,
    *,
    exclude_self: bool = False,
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine k-NN of queries [Q, D] among references [N, D] -> (sims [Q, k] float32, indices [Q, k] int64), best first."""
    dev = _resolve_device(queries, device)
    q = _as_embeddings(queries, "queries", dev)
    r = q if references is None else _as_embeddings(references, "references", dev)
    if q.shape[1] != r.shape[1]:
        raise ValueError(
            f"queries and references must have the same dimension, got {q.shape[1]} and {r.shape[1]}"
        )
    k = _as_positive_int(k, "k")
    if exclude_self and q.shape[0] != r.shape[0]:
        raise ValueError(
            "exclude_self=True needs queries to be the references (same rows), "
            f"got {q.shape[0]} queries and {r.shape[0]} references"
        )
    n_avail = r.shape[0] - int(exclude_self)
    if k > n_avail:
        raise ValueError(f"k must be at most {n_avail} (number of candidate references), got {k}")
    chunk = _default_chunk_size(r.shape[0]) if chunk_size is None else _as_positive_int(chunk_size, "chunk_size")
    qn = F.normalize(q, dim=1)
    rn = qn if references is None else F.normalize(r, dim=1)
    sims = torch.empty(q.shape[0], k, dtype=torch.float32, device=dev)
    indices = torch.empty(q.shape[0], k, dtype=torch.int64, device=dev)
    with torch.no_grad():
        for start, vals, idx in _iter_knn(qn, rn, k, exclude_self, chunk):
            sims[start : start + len(vals)] = vals
            indices[start : start + len(idx)] = idx
    return sims, indices


# ---------------------------------------------------------------------------- metrics


def recall_at_1_chance(labels: Any) -> float:
    """Recall@1 of a random neighbour among labels [N]: P(another sample is of the query's class) = Σ n_c(n_c - 1) / (N(N - 1)); NaN below 2."""
    y = np.asarray(labels)
    if len(y) < 2:
        return float("nan")
    _, counts = np.unique(y, return_counts=True)
    return float((counts * (counts - 1.0)).sum() / (len(y) * (len(y) - 1.0)))


def retrieval_metrics(
    embeddings: Any,
    labels: Any,
    ks: Sequence[int] = (1, 2, 4, 8),
    *,
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """Recall@k, precision@1, r_precision, map@r and ndcg@max(ks) of embeddings [N, D] with labels [N], each row vs the others.

    nDCG@k (binary relevance, same class = relevant): Σ_{r ≤ k} rel_r / log2(r + 1), divided by its
    value with the query's min(k, R) relevant samples ranked first; MPA's authors (Saeki et al.)
    propose it as a steadier retrieval figure than Recall@k.
    """
    dev = _resolve_device(embeddings, device)
    x = _as_embeddings(embeddings, "embeddings", dev, min_rows=2)
    n = x.shape[0]
    y = _as_labels(labels, n, dev)
    ks_t = _as_ks(ks)
    chunk = _default_chunk_size(n) if chunk_size is None else _as_positive_int(chunk_size, "chunk_size")

    counts = torch.bincount(y)
    r_all = counts[y] - 1  # [N] number of other samples of the query's class
    k_max = min(max(max(ks_t), int(counts.max()) - 1), n - 1)
    if max(ks_t) > n - 1:
        logger.warning("ks %s exceed N-1=%d; recall for those uses all %d other samples", ks_t, n - 1, n - 1)

    n_valid = int((r_all > 0).sum())
    k_ndcg = min(max(ks_t), n - 1)
    keys = [f"recall@{k}" for k in ks_t] + ["precision@1", "r_precision", "map@r", f"ndcg@{max(ks_t)}"]
    if n_valid == 0:
        logger.warning("every class has a single sample: retrieval metrics are NaN")
        return {key: float("nan") for key in keys}

    # per-query values, summed once at the end so the result does not depend on chunking
    per_query_all = torch.zeros(n, len(keys), dtype=torch.float64, device=dev)
    positions = torch.arange(1, k_max + 1, device=dev, dtype=torch.float64)  # [k_max]
    discounts = 1.0 / torch.log2(positions[:k_ndcg] + 1.0)  # [k]
    ideal = discounts.cumsum(dim=0)  # ideal DCG with 1..k relevant samples first
    with torch.no_grad():
        xn = F.normalize(x, dim=1)
        for start, _, idx in _iter_knn(xn, xn, k_max, True, chunk):
            stop = start + idx.shape[0]
            r = r_all[start:stop]
            match = y[idx] == y[start:stop, None]  # [c, k_max]
            in_r = positions[None, :] <= r[:, None]  # [c, k_max]
            rel = match & in_r
            r_f = r.clamp(min=1).to(torch.float64)
            r_prec = rel.sum(dim=1, dtype=torch.float64) / r_f
            prec_at_i = rel.cumsum(dim=1, dtype=torch.float64) / positions
            ap = (prec_at_i * rel).sum(dim=1) / r_f
            per_query = [match[:, : min(k, k_max)].any(dim=1) for k in ks_t]
            dcg = (match[:, :k_ndcg].to(torch.float64) * discounts).sum(dim=1)
            idcg = ideal[(r.clamp(min=1, max=k_ndcg) - 1)]
            per_query += [match[:, 0], r_prec, ap, dcg / idcg]
            per_query_all[start:stop] = torch.stack([p.to(torch.float64) for p in per_query], dim=1)
    values = (per_query_all[r_all > 0].sum(dim=0) / n_valid).tolist()
    return dict(zip(keys, values))
