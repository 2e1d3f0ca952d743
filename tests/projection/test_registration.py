"""Registration of one 2-D layout onto another: the least-squares similarity transform."""

import numpy as np
import pytest

from dmlviz.projection.registration import fit_similarity


def _rotation(theta):
    return np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])


@pytest.mark.parametrize("reflect", [False, True])
def test_a_rotated_scaled_shifted_map_is_put_back_exactly(reflect):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 2))
    b = 3.0 * a @ _rotation(1.1) * ([1, -1] if reflect else [1, 1]) + [5.0, -2.0]
    t = fit_similarity(a, b)
    assert t.scale == pytest.approx(3.0) and t.residual < 1e-9
    np.testing.assert_allclose(t.apply(a), b, atol=1e-4)


def test_residual_is_about_one_for_unrelated_maps_and_small_for_noisy_copies():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 2))
    assert fit_similarity(a, rng.normal(size=(500, 2))).residual > 0.9
    noisy = a @ _rotation(0.3) + rng.normal(scale=0.05, size=a.shape)
    assert fit_similarity(a, noisy).residual < 0.1


def test_registration_keeps_ratios_of_distances():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(50, 2)), rng.normal(size=(50, 2))
    moved = fit_similarity(a, b).apply(a)
    d_before = np.linalg.norm(a[:, None] - a[None], axis=2)
    d_after = np.linalg.norm(moved[:, None] - moved[None], axis=2)
    ratio = d_after[d_before > 0] / d_before[d_before > 0]
    assert np.ptp(ratio) < 1e-4


def test_shapes_are_checked():
    with pytest.raises(ValueError, match=r"source and target must both be \[N, 2\]"):
        fit_similarity(np.zeros((3, 2)), np.zeros((4, 2)))
