"""The playground's session: a step moves the embedding, the forces are autograd's, mined lines, every loss in 2-D and 3-D."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dmlviz.playground import PLAYGROUND_LOSSES, PlaygroundSession, Settings


def test_a_step_moves_the_points_which_are_the_embedding_itself():
    session = PlaygroundSession(Settings(loss="softtriple", points=200, classes=3))
    before = session.frame()
    assert np.allclose(np.linalg.norm(before.points, axis=1), 1, atol=1e-5) and before.points.shape == (len(session.inputs), 2)
    session.step(5)
    after = session.frame()
    assert after.step == 5 and not np.allclose(after.points, before.points)
    with torch.no_grad():
        session.net.eval()
        np.testing.assert_allclose(after.points, F.normalize(session.net(session.inputs), dim=1).numpy(), atol=1e-6)


def test_forces_are_minus_the_tangent_part_of_autograds_gradient():
    session = PlaygroundSession(Settings(loss="multisimilarity", points=200, classes=3, dim=3))
    session.step(2)
    twin = copy.deepcopy(session)  # the state the next batch meets
    session.step(1)
    rows = session.frame().batch
    twin._next_batch()  # the twin draws the same batch (same epoch queue)
    x = twin.net(twin.inputs[rows])
    u = F.normalize(x, dim=1).detach().requires_grad_()
    (g,) = torch.autograd.grad(twin.loss_fn(u, twin.labels[rows]), u)
    want = -(g - (g * u).sum(1, keepdim=True) * u)
    np.testing.assert_allclose(session.frame().forces, want.detach().numpy(), rtol=1e-4, atol=1e-6)


def test_center_forces_follow_minus_the_gradient_of_the_centers():
    session = PlaygroundSession(Settings(loss="softmax", points=200, classes=3))
    session.step(1)
    frame = session.frame()
    assert frame.centers_learned and np.abs(frame.center_forces).sum() > 0
    tangent = (frame.center_forces * frame.centers).sum(-1)
    np.testing.assert_allclose(tangent, 0, atol=1e-4)  # along the circle


def test_mined_triplets_are_marked_by_hardness():
    session = PlaygroundSession(Settings(loss="triplet", loss_params={"mining": "all", "margin": 0.3}, points=200, classes=3))
    session.step(1)
    frame = session.frame()
    x = frame.points
    for kind in ("easy", "semi-hard", "hard"):
        assert kind in frame.lines
    assert sum(len(frame.lines[k]) for k in ("easy", "semi-hard", "hard")) > 0
    for a, n in frame.lines["hard"]:
        assert frame.labels[a] != frame.labels[n]
    assert "margin 0.3" in frame.mining


@pytest.mark.parametrize("loss", PLAYGROUND_LOSSES)
def test_every_loss_trains_on_the_circle_and_the_sphere(loss):
    for dim in (2, 3):
        session = PlaygroundSession(Settings(loss=loss, dim=dim, points=160, classes=3, batch_size=32))
        session.step(3)
        frame = session.frame()
        assert np.isfinite(frame.loss) and np.isfinite(frame.points).all() and np.isfinite(frame.forces).all()
        assert frame.centers.shape[-1] == dim and frame.forces.shape == (len(frame.batch), dim)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="dim must be 2 .* or 3"):
        Settings(dim=4)
    with pytest.raises(ValueError, match=r"loss 'softmax' does not take \['tau'\]"):
        Settings(loss="softmax", loss_params={"tau": 0.1})
    with pytest.raises(ValueError, match="classes must be at least 2"):
        Settings(classes=1)
    with pytest.raises(ValueError, match="lr must be"):
        PlaygroundSession(Settings()).set_rates(-1, 0.1)
