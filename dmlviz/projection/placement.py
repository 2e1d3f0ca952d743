"""Where a 2-D map draws the loss's centers: among the samples they own, not as extra points of the layout.

A center is not a sample. In the embedding it usually sits far from the samples it owns (a
SoftTriple center's cosine to its own samples is ~0.55, while a sample's 10th neighbour is at
~0.8), so laying centers out as extra rows of a UMAP or PCA puts them where a reader misjudges
which samples they own. Here the samples are laid out alone, and each center is then drawn at
the mean 2-D position of the samples it owns (its assignment, by cosine in the embedding).
What that hides: the center's true similarity to its samples.

Centers of a class closer than ε (merged, as counted by effective K) are one center for every
practical purpose: which of them a sample picks is decided by differences far below anything a
picture can show. They are placed as one, at the mean of the samples the group owns, and drawn
on top of each other.

A class's owned-sample means can fall so that some sample's nearest drawn center is not its
own (its center's samples form two islands, say). A few rounds of learning vector quantisation
(LVQ1's attracting half, restricted to each class) then pull each drawn center towards its own
samples that read wrong, starting from the means, so that as many samples as possible have
their own center nearest. Only pulls: a center stays inside the region of the samples it owns.
A round is kept only when it raises the class's map-ownership agreement, so the result is never
worse than the plain means.

A center (group) that owns no sample is drawn at the class sample most cosine-similar to it,
hollow, and is not counted in the map-ownership agreement (no sample can read it as its owner).
"""

from __future__ import annotations

import numpy as np

#: How center positions are described on the map (caption and hover).
PLACEMENT_NOTE = (
    "each center is drawn at the mean position of the samples it owns (pulled towards those of them that "
    "would read another center as nearest); merged centers (closer than ε) are placed as one; centers that own no sample "
    "are hollow, at their most similar sample. A drawn center's distance to its samples does not show its "
    "true cosine to them."
)

#: LVQ rounds over a class's samples and the step of the first (it decays linearly).
LVQ_ROUNDS = 30
LVQ_STEP = 0.5


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _agreement(points: np.ndarray, owner: np.ndarray, xy: np.ndarray, owning: np.ndarray) -> int:
    """Samples [n] (points [n, 2], owner index into xy) whose nearest owning drawn center is their own."""
    cand = np.flatnonzero(owning)
    d = ((points[:, None, :] - xy[None, cand, :]) ** 2).sum(-1)
    return int((cand[np.argmin(d, axis=1)] == owner).sum())


def _lvq(points: np.ndarray, owner: np.ndarray, xy: np.ndarray, owning: np.ndarray) -> np.ndarray:
    """Batch LVQ rounds on one class (only owning centers move, pulled only); returns the best positions seen.

    Each round, every owning center moves a step towards the mean of its own samples that are
    nearer another center. Pulls only, so a center stays a convex combination of the samples it
    owns: inside their region, never pushed out of it.
    """
    best, cur = xy.copy(), xy.copy()
    best_score = _agreement(points, owner, xy, owning)
    cand = np.flatnonzero(owning)
    k = len(xy)
    for r in range(LVQ_ROUNDS):
        if best_score == len(points):
            break
        d = ((points[:, None, :] - cur[None, cand, :]) ** 2).sum(-1)
        wrong = cand[np.argmin(d, axis=1)] != owner
        if not wrong.any():
            break
        step = LVQ_STEP * (1.0 - r / LVQ_ROUNDS)
        count = np.bincount(owner[wrong], minlength=k)[:, None]
        total = np.stack([np.bincount(owner[wrong], weights=points[wrong, a], minlength=k) for a in (0, 1)], 1)
        cur = cur + step * np.where(count > 0, total / np.maximum(count, 1) - cur, 0.0)
        score = _agreement(points, owner, cur, owning)
        if score > best_score:
            best, best_score = cur.copy(), score
    return best


def place_centers(
    points: np.ndarray,
    labels: np.ndarray,
    assignments: np.ndarray,
    embeddings: np.ndarray,
    centers: np.ndarray,
    center_classes: np.ndarray,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """2-D positions of the centers from the samples they own -> (xy float32 [C', K, 2], owning bool [C', K]).

    points [N, 2]: the samples' layout; labels, assignments [N] (assignment -1: no center);
    embeddings [N, D] and centers [C', K, D] (only used to put a center that owns nothing at its
    most similar sample of its class); center_classes [C']; groups [C', K] (merged centers,
    from :func:`dmlviz.eval.center_groups`; default: every center alone) are placed as one.
    owning: the center's group owns at least one sample. A class with no sample in the probe
    has its centers at the mean of all points, hollow.
    """
    points = np.asarray(points, dtype=np.float64)
    labels = np.asarray(labels)
    assignments = np.asarray(assignments, dtype=np.int64)
    n_rows, k = centers.shape[:2]
    groups = np.tile(np.arange(k), (n_rows, 1)) if groups is None else np.asarray(groups, dtype=np.int64)
    xy = np.zeros((n_rows, k, 2))
    owning = np.zeros((n_rows, k), dtype=bool)
    if n_rows == 0 or k == 0:
        return xy.astype(np.float32), owning
    fallback = points.mean(0) if len(points) else np.zeros(2)
    unit_centers = _normalize(np.asarray(centers, dtype=np.float64))
    for row, cls in enumerate(np.asarray(center_classes)):
        members = np.flatnonzero((labels == cls) & (assignments >= 0))
        if not len(members):
            xy[row] = fallback
            continue
        g = groups[row]
        n_groups = int(g.max()) + 1
        owner = g[assignments[members]]
        pos = np.zeros((n_groups, 2))
        owns = np.bincount(owner, minlength=n_groups) > 0
        for j in np.flatnonzero(owns):
            pos[j] = points[members[owner == j]].mean(0)
        if owns.sum() > 1:
            pos = _lvq(points[members], owner, pos, owns)
        empty = np.flatnonzero(~owns)
        if len(empty):
            first = np.array([np.flatnonzero(g == j)[0] for j in empty])
            sims = unit_centers[row, first] @ _normalize(np.asarray(embeddings[members], dtype=np.float64)).T
            pos[empty] = points[members[np.argmax(sims, axis=1)]]
        xy[row] = pos[g]
        owning[row] = owns[g]
    return xy.astype(np.float32), owning


#: How synthetic points (DAS) are placed on the map (caption).
PLACED_NOTE = (
    "each {what} is drawn at the mean 2-D position of its {k} nearest probe samples in the embedding (cosine); "
    "its own position in the embedding is not a point of the layout"
)
SYNTHETIC_NOTE = PLACED_NOTE.replace("{what}", "synthetic point")


def place_by_neighbours(
    probe: np.ndarray, probe_xy: np.ndarray, points: np.ndarray, k: int = 5, quality_k: int = 10
) -> tuple[np.ndarray, float]:
    """2-D positions [S, 2] of ``points`` [S, D] among the ``probe`` [N, D] laid out at ``probe_xy`` [N, 2], and their k-NN preservation.

    Each point goes to the mean position of its ``k`` most cosine-similar probe samples. The
    figure returned: mean over points of the share of their ``quality_k`` nearest probe samples in
    the embedding that are also among their ``quality_k`` nearest in 2-D (1 = the neighbourhoods kept).
    """
    from scipy.spatial import cKDTree

    from ..eval.retrieval import knn

    n = len(probe)
    if not len(points) or n == 0:
        return np.zeros((0, 2), dtype=np.float32), float("nan")
    kk, qk = min(k, n), min(quality_k, n)
    _, idx = knn(np.asarray(points, dtype=np.float32), np.asarray(probe, dtype=np.float32), max(kk, qk), device="cpu")
    idx = idx.numpy()
    xy = np.asarray(probe_xy, dtype=np.float64)[idx[:, :kk]].mean(axis=1)
    _, near_2d = cKDTree(np.asarray(probe_xy, dtype=np.float64)).query(xy, k=qk)
    near_2d = np.asarray(near_2d).reshape(len(xy), qk)
    kept = [len(set(a) & set(b)) / qk for a, b in zip(idx[:, :qk], near_2d)]
    return xy.astype(np.float32), float(np.mean(kept))
