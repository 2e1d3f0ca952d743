"""Each preset's lesson holds: the figures it quotes are measured after its steps (seed 0), against the baseline it names."""

import pytest

from dmlviz.playground import PRESETS, PlaygroundSession, Settings


def played(index: int):
    preset = PRESETS[index]
    session = PlaygroundSession(Settings(**preset.settings))
    session.step(preset.steps)
    return session, session.frame()


@pytest.fixture(scope="module")
def outcomes():
    return {i: played(i) for i in range(len(PRESETS))}


def test_every_preset_builds_and_says_one_thing():
    assert len(PRESETS) >= 6 and len({p.name for p in PRESETS}) == len(PRESETS)
    for preset in PRESETS:
        Settings(**preset.settings)
        assert preset.lesson.endswith((".", ")")) and len(preset.lesson) < 400


def test_softmax_lets_modes_merge_and_softtriples_centers_sometimes_split_them(outcomes):
    (softmax_session, softmax), (softtriple_session, softtriple) = outcomes[0], outcomes[1]
    assert softmax_session.baseline["mode_gap"] > 85 and softmax.geometry["mode_gap"] < 75  # seed 0: 94° → ~60°
    assert softtriple.submode > 0.4  # seed 0: 0.54 (0 = chance)
    # single seeds other than 0 are chaotic (CPUs that round differently disagree on them): the claim is over twelve seeds
    scores = []
    for seed in range(12):
        session = PlaygroundSession(Settings(**{**PRESETS[1].settings, "seed": seed}))
        start = session.frame().submode
        session.step(PRESETS[1].steps)
        scores.append((start, session.frame().submode))
    before, after = (sum(score[i] for score in scores) / len(scores) for i in (0, 1))
    assert min(score[1] for score in scores) < 0.1 < 0.4 < max(score[1] for score in scores)  # it depends on the start
    assert after > before + 0.03  # the lesson: mean 0.29 against 0.20 for the untrained centers (seeds 0-11)


def test_tau_merges_centers_against_tau_zero(outcomes):
    _, merged = outcomes[2]
    preset = PRESETS[2]
    unmerged = PlaygroundSession(Settings(**{**preset.settings, "loss_params": {"centers_per_class": 6, "tau": 0.0}}))
    unmerged.step(preset.steps)
    assert merged.effective_k < 3.5 < unmerged.frame().effective_k


def test_hard_mining_collapses_where_semi_hard_does_not(outcomes):
    (_, semihard), (_, hard) = outcomes[3], outcomes[4]
    assert hard.geometry["dispersion"] < 0.01 and semihard.geometry["dispersion"] > 0.5
    assert semihard.geometry["separation"] > 40


def test_proxies_separate_classes_further_than_mined_pairs(outcomes):
    (_, proxy), (_, pairs) = outcomes[5], outcomes[6]
    assert proxy.lines == {} and pairs.lines and proxy.centers_learned and not pairs.centers_learned
    assert proxy.geometry["separation"] > 60 and pairs.geometry["separation"] < 30 and pairs.geometry["spread"] < 0.05


def test_mdr_levels_are_shown_and_move(outcomes):
    session, frame = outcomes[7]
    assert frame.extras["mdr_levels"].shape == (3,)
    assert not (frame.extras["mdr_levels"] == [-3, 0, 3]).all()


def test_the_temperature_of_a_proxy_loss(outcomes):
    (_, low), (_, high) = outcomes[8], outcomes[9]
    assert low.geometry["separation"] < 5 and high.geometry["separation"] > 35 and high.geometry["dispersion"] > 0.9
