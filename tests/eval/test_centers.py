"""Tests for dmlviz.eval.centers: effective K, assignment, purity, counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dmlviz.eval import assign_to_centers, center_counts, center_groups, center_purity, effective_k, merged_assignments, submode_score


def unit(deg: float) -> list[float]:
    r = np.deg2rad(deg)
    return [float(np.cos(r)), float(np.sin(r)), 0.0]


# ------------------------------------------------------------------------ effective K


def test_effective_k_constructed() -> None:
    # chord length between unit vectors at angle t: 2 sin(t/2); 2 deg ~ 0.0349, 4 deg ~ 0.0698
    all_merged = [unit(0), unit(0.5), unit(1.0), unit(1.5)]
    all_apart = [unit(0), unit(30), unit(60), unit(90)]
    chain = [unit(0), unit(2), unit(4), unit(90)]  # 0-2 and 2-4 linked, 0-4 too far: {0,2,4}, {90}
    two_pairs = [unit(0), unit(90), unit(1), unit(91)]
    centers = np.array([all_merged, all_apart, chain, two_pairs])
    assert np.linalg.norm(np.subtract(unit(0), unit(4))) > 0.05  # a, c farther than eps ...
    assert np.linalg.norm(np.subtract(unit(0), unit(2))) < 0.05  # ... but linked through b
    out = effective_k(centers, eps=0.05)
    assert out.dtype.kind == "i"
    assert out.tolist() == [1, 4, 2, 2]
    # a pure a-b-c chain is a single group
    assert effective_k(np.array([[unit(0), unit(2), unit(4)]])).tolist() == [1]
    # eps governs merging
    assert effective_k(centers, eps=1e-6).tolist() == [4, 4, 4, 4]
    assert effective_k(centers, eps=3.0).tolist() == [1, 1, 1, 1]


def test_effective_k_non_unit_and_tensor_input() -> None:
    c = torch.tensor([[[1.0, 0.0], [1.01, 0.0], [0.0, 2.0]]])
    assert effective_k(c).tolist() == [2]


def test_effective_k_exact_threshold_is_not_merged() -> None:
    c = np.array([[[0.0, 0.0], [0.25, 0.0]]])  # distance exactly 0.25 (binary-exact)
    assert effective_k(c, eps=0.25).tolist() == [2]
    assert effective_k(c, eps=0.2500001).tolist() == [1]


def test_effective_k_bad_inputs() -> None:
    c = np.zeros((2, 3, 4))
    for eps in (0, -0.1, float("nan"), float("inf"), "a"):
        with pytest.raises(ValueError, match="eps must be a positive finite number"):
            effective_k(c, eps=eps)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"centers must be 3-D \[C, K, D\]"):
        effective_k(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="centers contain NaN or inf"):
        effective_k(np.full((1, 2, 2), np.nan))


def test_center_groups_number_merged_centres_within_each_class() -> None:
    chain = [unit(0), unit(2), unit(4), unit(90)]
    two_pairs = [unit(0), unit(90), unit(1), unit(91)]
    groups = center_groups(np.array([chain, two_pairs]), eps=0.05)
    assert groups.tolist() == [[0, 0, 0, 1], [0, 1, 0, 1]]
    np.testing.assert_array_equal(groups.max(1) + 1, effective_k(np.array([chain, two_pairs])))


def test_center_groups_match_a_class_by_class_numbering_on_random_centres() -> None:
    """The vectorised numbering equals the plain one: per class, groups in the order of their first centre."""
    from scipy.sparse.csgraph import connected_components

    def by_class(c: np.ndarray, eps: float) -> np.ndarray:
        out = np.zeros(c.shape[:2], dtype=np.int64)
        for row, centres in enumerate(c):
            near = np.linalg.norm(centres[:, None] - centres[None], axis=-1) < eps
            _, comp = connected_components(near, directed=False)
            _, first, inverse = np.unique(comp, return_index=True, return_inverse=True)
            out[row] = np.argsort(np.argsort(first))[inverse]
        return out

    rng = np.random.default_rng(1)
    for _ in range(200):
        n_cls, k, dim = rng.integers(1, 25), rng.integers(1, 12), rng.integers(1, 5)
        c = rng.normal(size=(n_cls, k, dim)) * rng.choice([0.01, 0.05, 1.0])
        eps = float(rng.choice([0.01, 0.05, 0.2]))
        np.testing.assert_array_equal(center_groups(c, eps), by_class(c, eps))


def test_effective_k_scale() -> None:
    rng = np.random.default_rng(0)
    c = rng.normal(size=(200, 20, 64))
    c /= np.linalg.norm(c, axis=-1, keepdims=True)
    c[:, 10:] = c[:, :1] + 1e-4  # centres 10..19 collapse onto centre 0
    assert effective_k(c).tolist() == [10] * 200


# ----------------------------------------------------------- assignment, purity, counts


def test_assign_to_centers_constructed() -> None:
    # class 5: centres along x (k=0) and y (k=1); class 9: centres along -x (k=0) and -y (k=1)
    centers = np.array(
        [
            [[1.0, 0.0], [0.0, 1.0]],
            [[-1.0, 0.0], [0.0, -1.0]],
        ]
    )
    center_classes = np.array([5, 9])
    emb = np.array([[2.0, 0.1], [0.1, 3.0], [1.0, 0.2], [-0.5, -0.1], [0.0, -1.0], [1.0, 0.0], [1.0, 1.0]])
    labels = np.array([5, 5, 5, 9, 9, 9, 7])
    a = assign_to_centers(emb, labels, centers, center_classes)
    # sample 5 is class 9 but lies on +x (nearest overall: class 5's k=0); it goes to the best
    # centre of ITS OWN class: cos(+x, -x) = -1 < cos(+x, -y) = 0 -> k=1. Class 7 has no centres.
    assert a.tolist() == [0, 1, 0, 0, 1, 1, -1]
    fine = np.array([0, 1, 0, 2, 3, 4, 0])
    # groups: (5,0): fine 0,0 -> 2 ; (5,1): 1 -> 1 ; (9,0): 2 -> 1 ; (9,1): 3,4 -> 1  => 5 / 6
    assert center_purity(a, labels, fine) == pytest.approx(5 / 6)
    counts = center_counts(a, labels, center_classes, 2)
    assert counts.tolist() == [[2, 1], [1, 2]]


def test_assign_matches_brute_force_loop() -> None:
    rng = np.random.default_rng(1)
    n, c, k, d = 500, 12, 4, 6
    centers = rng.normal(size=(c, k, d))
    center_classes = rng.permutation(np.arange(100, 100 + c))
    labels = rng.choice(np.append(center_classes, [-3, 999]), size=n)
    emb = rng.normal(size=(n, d)) * rng.uniform(0.1, 5, size=(n, 1))
    got = assign_to_centers(torch.from_numpy(emb), labels, centers, center_classes)
    cn = centers / np.linalg.norm(centers, axis=-1, keepdims=True)
    for i in range(n):
        rows = np.flatnonzero(center_classes == labels[i])
        want = -1 if len(rows) == 0 else int(np.argmax(cn[rows[0]] @ emb[i]))
        assert got[i] == want
    counts = center_counts(got, labels, center_classes, k)
    assert counts.shape == (c, k)
    assert counts.sum() == (got >= 0).sum()
    for row, cls in enumerate(center_classes):
        assert counts[row].tolist() == np.bincount(got[labels == cls], minlength=k).tolist()


def test_purity_edge_cases() -> None:
    assert np.isnan(center_purity(np.array([-1, -1]), [0, 1], [0, 0]))
    # one group per sample -> purity 1; one group with fine labels 0,0,1,2 -> 2/4
    assert center_purity(np.array([0, 1, 2]), [0, 0, 0], [4, 5, 6]) == 1.0
    assert center_purity(np.array([0, 0, 0, 0, -1]), [1, 1, 1, 1, 1], ["a", "a", "b", "c", "b"]) == 0.5


def test_center_bad_inputs() -> None:
    centers = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="center_classes must not repeat"):
        assign_to_centers(np.ones((2, 4)), [0, 0], centers, [0, 0])
    with pytest.raises(ValueError, match="centers dimension 4 does not match embeddings dimension 5"):
        assign_to_centers(np.ones((2, 5)), [0, 0], centers, [0, 1])
    with pytest.raises(ValueError, match="labels must be 1-D with 2 entries"):
        assign_to_centers(np.ones((2, 4)), [0], centers, [0, 1])
    with pytest.raises(ValueError, match="assignments must be < k=3"):
        center_counts(np.array([0, 3]), [0, 1], [0, 1], 3)
    with pytest.raises(ValueError, match="not in center_classes"):
        center_counts(np.array([0, 1]), [0, 7], [0, 1], 3)
    with pytest.raises(ValueError, match="fine_labels must be 1-D with 2 entries"):
        center_purity(np.array([0, 1]), [0, 0], [1])


# ------------------------------------------------------------------------ sub-mode score


@pytest.mark.parametrize("per_class, classes, k", [(400, 5, 10), (5, 400, 10), (5, 400, 2), (60, 50, 3)])
def test_submode_score_is_zero_at_chance_at_any_k_and_class_size(per_class, classes, k) -> None:
    rng = np.random.default_rng(per_class * 1000 + k)
    labels = np.repeat(np.arange(classes), per_class)
    fine = labels * 2 + rng.integers(0, 2, size=len(labels))
    random = rng.integers(0, k, size=len(labels))
    # mean over 10 seeds is within 0.005 of 0 (std 0.02 with 5 samples per class); purity would be 0.55-0.92 here
    assert abs(submode_score(labels, fine, random)) < 0.07
    assert submode_score(labels, fine, fine % 2) == pytest.approx(1.0)  # one center per fine label
    assert submode_score(labels, fine, (fine % 2) * 3 + rng.integers(0, 2, size=len(labels))) < 0.95  # a mode split in two
    assert submode_score(labels, fine, np.zeros_like(labels)) == 0.0  # one center per class (SoftMax)


def test_submode_score_edge_cases() -> None:
    # a class with a single fine label has nothing to split: left out; no class left -> NaN
    assert np.isnan(submode_score([0, 0, 1, 1], [5, 5, 6, 6], [0, 1, 0, 1]))
    assert np.isnan(submode_score([0, 1], [0, 1], [-1, -1]))
    labels, fine = [0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 2, 2, 2, 2]
    assert submode_score(labels, fine, [0, 0, 1, 1, 0, 1, 0, 1]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="fine_labels must be 1-D with 3 entries"):
        submode_score([0, 0, 1], [0, 1], [0, 0, 0])


def test_merged_centers_count_as_one_in_the_submode_score() -> None:
    # class 0 has two modes; centers 0 and 1 are merged and split mode 0 between them, center 2 owns mode 1
    centers = np.array([[unit(0), unit(1), unit(90)], [unit(0), unit(45), unit(90)]])
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    fine = np.array([0, 0, 0, 0, 1, 1, 2, 3])
    assignments = np.array([0, 1, 0, 1, 2, 2, 0, 2])
    merged = merged_assignments(assignments, labels, [0, 1], center_groups(centers, eps=0.05))
    assert merged.tolist() == [0, 0, 0, 0, 1, 1, 0, 2]
    assert submode_score(labels[:6], fine[:6], merged[:6]) == pytest.approx(1.0)
    assert submode_score(labels[:6], fine[:6], assignments[:6]) < 1.0
    assert merged_assignments(np.array([-1, 0]), [0, 5], [0, 1], center_groups(centers)).tolist() == [-1, -1]  # class 5 has no centers
