"""ResNet backbones as embedding models: shapes, pooling, frozen BatchNorm, offline ImageNet weights, backbone lr."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dmlviz.cli import build_parser
from dmlviz.models import BackboneEmbedder, build_model
from dmlviz.models.backbones import weights_file
from image_trees import make_cub


def _batch(n: int = 4, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("pooling", ["avg", "avg+max"])
def test_resnet18_embeds_images(pooling):
    torch.manual_seed(0)
    net = build_model("resnet18", (3, 32, 32), 16, pretrained=False, pooling=pooling)
    assert isinstance(net, BackboneEmbedder) and net.pooling == pooling
    out = net(_batch())
    assert out.shape == (4, 16) and torch.isfinite(out).all()
    out.sum().backward()
    assert net.head.weight.grad is not None and net.trunk[0].weight.grad is not None


def test_pooling_variants_differ_and_are_summed():
    torch.manual_seed(0)
    avg = build_model("resnet18", (3, 32, 32), 8, pooling="avg").eval()
    both = build_model("resnet18", (3, 32, 32), 8, pooling="avg+max").eval()
    both.load_state_dict(avg.state_dict())
    x = _batch()
    with torch.no_grad():
        maps = avg.trunk(x)
        want = avg.head(maps.mean(dim=(2, 3)) + maps.amax(dim=(2, 3)))
        torch.testing.assert_close(both(x), want)
        assert not torch.allclose(avg(x), both(x))


def test_resnet50_and_one_channel_images():
    assert build_model("resnet50", (3, 32, 32), 8, pooling="avg+max")(_batch(2)).shape == (2, 8)
    assert build_model("resnet18", (1, 28, 28), 8)(torch.rand(2, 1, 28, 28)).shape == (2, 8)


def test_bad_options_name_what_works():
    with pytest.raises(ValueError, match="pooling must be one of 'avg', 'avg\\+max'; got 'max'"):
        build_model("resnet18", (3, 32, 32), 8, pooling="max")
    with pytest.raises(ValueError, match="model 'resnet18' does not take \\['dropout'\\]; it takes: pretrained, pooling, freeze_bn"):
        build_model("resnet18", (3, 32, 32), 8, dropout=0.1)
    with pytest.raises(ValueError, match="model 'linear' does not take \\['pretrained'\\]; it takes: no parameters"):
        build_model("linear", (16,), 8, pretrained=True)
    with pytest.raises(ValueError, match="resnet18.*\\(3, height, width\\).*got input shape \\(16,\\)"):
        build_model("resnet18", (16,), 8)
    with pytest.raises(ValueError, match="pretrained='V9' is not a weights name of resnet18.*IMAGENET1K_V1"):
        build_model("resnet18", (3, 32, 32), 8, pretrained="V9")


def test_freeze_bn_keeps_running_stats_and_affine_params():
    torch.manual_seed(0)
    net = build_model("resnet18", (3, 32, 32), 8, freeze_bn=True)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = {k: v.clone() for k, v in net.state_dict().items() if "running" in k or "bn" in k or "downsample.1" in k}
    net.train()
    assert net.training and not any(bn.training for bn in bns)
    assert all(not p.requires_grad for bn in bns for p in bn.parameters())
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    net(_batch()).pow(2).sum().backward()
    assert all(p.grad is None for bn in bns for p in bn.parameters())
    optimizer.step()
    after = net.state_dict()
    for key, value in before.items():
        torch.testing.assert_close(after[key], value, msg=key)
    # without freeze_bn the running statistics move
    plain = build_model("resnet18", (3, 32, 32), 8).train()
    mean = plain.trunk[1].running_mean.clone()
    plain(_batch())
    assert not torch.equal(plain.trunk[1].running_mean, mean)


def test_compile_flag_is_accepted():
    net = build_model("resnet18", (3, 32, 32), 8, compile=True, channels_last=False)
    assert net.use_compile and not net.channels_last and callable(net.compile)  # nn.Module.compile is not hidden
    assert net.embed(_batch(2)).shape == (2, 8)  # the eager path; compiling (slow on CPU) is left to GPU runs
    assert "compile=True" in repr(net)


def test_only_training_steps_are_compiled_and_a_copy_compiles_its_own(monkeypatch):
    """torch.compile (faked here: it records the function and wraps it) sees training steps only; eval / no_grad run eagerly.
    A deep copy (LSD's teacher) must not keep the original's compiled function, which is bound to the original's weights."""
    import copy

    compiled = []

    def fake_compile(fn):  # like torch.compile's result: a function around fn, which deepcopy copies by reference
        compiled.append(fn)
        return lambda *args: fn(*args)

    monkeypatch.setattr(torch, "compile", fake_compile)
    net = build_model("resnet18", (3, 32, 32), 8, compile=True, channels_last=False)
    x = _batch()
    net.eval()
    with torch.no_grad():
        net(x)
    net.train()
    with torch.no_grad():
        net(x)
    assert compiled == []  # the model check and recording run eagerly
    out = net(x)
    assert len(compiled) == 1 and out.requires_grad
    teacher = copy.deepcopy(net)
    assert teacher._compiled is None and net._compiled is not None
    with torch.no_grad():
        teacher.head.weight.add_(1.0)
    assert not torch.allclose(teacher(x), net(x))  # compiled steps: the copy runs its own weights (it once ran the original's)
    assert len(compiled) == 2 and compiled[1].__self__ is teacher



@pytest.mark.parametrize("how", ["set_dir", "TORCH_HOME"])
def test_pretrained_offline_names_the_file_and_folder(tmp_path, monkeypatch, how):
    if how == "set_dir":
        monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    else:
        monkeypatch.setattr(torch.hub, "_hub_dir", None)
        monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError) as error:
        build_model("resnet18", (3, 32, 32), 8, pretrained=True)
    message = str(error.value)
    assert "'resnet18-f37072fd.pth'" in message and str(tmp_path / "hub" / "checkpoints") in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message


def test_pretrained_loads_a_cached_checkpoint_without_network(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    path, _ = weights_file("resnet18")
    assert path == tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    torch.manual_seed(123)
    reference = torchvision.models.resnet18(weights=None)
    torch.save(reference.state_dict(), path)
    torch.manual_seed(0)
    net = build_model("resnet18", (3, 32, 32), 8, pretrained=True)
    torch.testing.assert_close(net.trunk[0].weight, reference.conv1.weight)
    torch.testing.assert_close(net.trunk[7][1].bn2.running_var, reference.layer4[1].bn2.running_var)


def test_train_resnet18_on_cub_with_separate_learning_rates(tmp_path, monkeypatch):
    import dmlviz
    from dmlviz.training import trainer

    seen = {}
    real_train = trainer._train_epoch

    def spy(trainer_, epoch):
        seen["groups"] = {g["name"]: (g["lr"], len(g["params"])) for g in trainer_.setup.optimizer.param_groups}
        seen["net"] = trainer_.setup.net
        return real_train(trainer_, epoch)

    monkeypatch.setattr(trainer, "_train_epoch", spy)
    root = make_cub(tmp_path / "data", class_ids=(1, 2, 3, 101, 102, 103), per_class=3)
    run = dmlviz.train(
        dataset="cub200", data_root=root, data_params={"image_size": 32, "resize": 36}, model="resnet18",
        model_params={"pretrained": False, "pooling": "avg+max", "freeze_bn": True}, loss="softtriple",
        centers_per_class=2, embedding_dim=8, epochs=1, batch_size=8, lr=1e-3, backbone_lr=1e-4, center_lr=1e-2,
        out=tmp_path / "run", progress=False, probe_size=18,
    )
    assert run.status == "finished" and list(run.metrics["epoch"]) == [0, 1]
    assert run.config["model"] == "resnet18" and run.config["backbone_lr"] == 1e-4
    assert run.config["model_params"] == {"pretrained": False, "pooling": "avg+max", "freeze_bn": True}
    groups = seen["groups"]
    assert groups["backbone"][0] == 1e-4 and groups["model"] == (1e-3, 2) and groups["centers"][0] == 1e-2
    assert groups["backbone"][1] == len(list(seen["net"].trunk.parameters()))
    command = run.resume_command()
    assert "--backbone-lr 0.0001" in command and "--model-param pooling=avg+max" in command
    # resume restores each group's learning rate by name
    run = dmlviz.train(
        dataset="cub200", data_root=root, data_params={"image_size": 32, "resize": 36}, model="resnet18",
        model_params={"pretrained": False, "pooling": "avg+max", "freeze_bn": True}, loss="softtriple",
        centers_per_class=2, embedding_dim=8, epochs=2, batch_size=8, lr=1e-3, backbone_lr=1e-4, center_lr=1e-2,
        out=tmp_path / "run", progress=False, probe_size=18, resume=True,
    )
    assert list(run.metrics["epoch"]) == [0, 1, 2]
    assert seen["groups"]["backbone"][0] == 1e-4 and seen["groups"]["model"][0] == 1e-3


def test_backbone_lr_needs_a_backbone():
    import dmlviz

    with pytest.raises(ValueError, match="backbone_lr=0.0001 was given, but model 'linear' has no backbone"):
        dmlviz.train(dataset="digits", model="linear", backbone_lr=1e-4, epochs=1, out=None, progress=False)


def test_cli_backbone_flags(monkeypatch):
    from dmlviz import cli
    from dmlviz import training

    args = build_parser().parse_args(
        ["train", "--model", "resnet18", "--pretrained", "--freeze-bn", "--pooling", "avg+max", "--backbone-lr", "1e-4",
         "--compile", "--model-param", "channels_last=false"]
    )
    assert args.pretrained and args.freeze_bn and args.pooling == "avg+max" and args.backbone_lr == 1e-4
    got = {}

    def fake_train(config):
        got.update(vars(config))
        raise ValueError("stop here")

    monkeypatch.setattr(training, "train", fake_train)
    assert cli.main(["train", "--model", "resnet18", "--pretrained", "--freeze-bn", "--pooling", "avg+max", "--backbone-lr", "1e-4"]) == 2
    assert got["model_params"] == {"pretrained": True, "freeze_bn": True, "pooling": "avg+max"} and got["backbone_lr"] == 1e-4
    cli.main(["train", "--model", "linear"])
    assert got["model_params"] is None and got["backbone_lr"] is None
