"""Training a comparison grid: loss specs, one run per loss, kept or resumed on a second call."""

import pytest

from dmlviz.training import TrainConfig
from dmlviz.training.grid import grid_folder, parse_loss_spec, parse_losses, train_grid


def test_loss_specs_name_a_loss_a_regularizer_and_parameters():
    spec = parse_loss_spec("triplet+mdr:mining=distance;margin=0.2;scale=mean_distance")
    assert (spec.loss, spec.regularizer, spec.params) == ("triplet", "mdr", {"mining": "distance", "margin": 0.2, "scale": "mean_distance"})
    assert "/" not in spec.slug and ":" not in spec.slug
    assert parse_loss_spec("softmax").params == {} and parse_loss_spec("softmax").regularizer is None
    with pytest.raises(ValueError, match="unknown loss 'softmaxx'"):
        parse_loss_spec("softmaxx")
    with pytest.raises(ValueError, match="unknown regularizer 'l2'"):
        parse_loss_spec("triplet+l2")
    with pytest.raises(ValueError, match="parameter 'margin' must be KEY=VALUE"):
        parse_loss_spec("triplet:margin")
    with pytest.raises(ValueError, match="at least two losses"):
        parse_losses("softmax")
    with pytest.raises(ValueError, match="more than once"):
        parse_losses("softmax,softmax")


def test_the_grid_trains_once_then_keeps_or_extends_its_runs(small_synthetic, tmp_path):
    specs = parse_losses("softmax,triplet+mdr:mining=distance;margin=0.2")
    base = TrainConfig(dataset=small_synthetic, model="linear", epochs=1, batch_size=32, embedding_dim=8, split="samples", progress=False)
    calls = []

    def counting(config):
        from dmlviz.training import train

        calls.append(config)
        return train(config)

    runs = train_grid(specs, base, tmp_path, "cmp", train=counting)
    assert [r.path for r in runs] == [grid_folder(tmp_path, "cmp", s) for s in specs] and len(calls) == 2
    assert runs[1].config["regularizer"] == "mdr" and runs[1].config["loss_params"]["mining"] == "distance"
    assert (runs[0].probe["ids"] == runs[1].probe["ids"]).all()
    again = train_grid(specs, base, tmp_path, "cmp", train=counting)
    assert len(calls) == 2 and [r.last_epoch for r in again] == [1, 1]  # kept, nothing trained
    longer = train_grid(specs, base.replace(epochs=2), tmp_path, "cmp", train=counting)
    assert len(calls) == 4 and all(c.resume for c in calls[2:]) and [r.last_epoch for r in longer] == [2, 2]
