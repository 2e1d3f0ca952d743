"""A pytorch-metric-learning trainer recorded as a dmlviz run through RecordingHooks."""

import numpy as np
import torch
from pytorch_metric_learning import losses, trainers

import dmlviz
from dmlviz.integrations.pml import RecordingHooks


class Pairs(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def test_a_pml_trainer_records_every_epoch_with_its_proxies(tmp_path):
    torch.manual_seed(0)
    labels = torch.arange(4).repeat_interleave(25)
    x = torch.randn(100, 6) + labels[:, None].float()
    data = Pairs(x, labels)
    trunk = torch.nn.Linear(6, 8)
    loss = losses.ProxyAnchorLoss(num_classes=4, embedding_size=8)
    optimizers = {"trunk_optimizer": torch.optim.Adam(trunk.parameters(), 1e-2),
                  "metric_loss_optimizer": torch.optim.Adam(loss.parameters(), 1e-1)}
    with dmlviz.Recorder(tmp_path / "pml", labels=labels.numpy(), config={"loss": "proxyanchor (PML trainer)"}) as rec:
        hooks = RecordingHooks(rec, data)
        hooks.record(0, {"trunk": trunk}, {"metric_loss": loss})  # the untrained baseline
        trainer = trainers.MetricLossOnly({"trunk": trunk}, optimizers, 20, {"metric_loss": loss}, data, dataloader_num_workers=0,
                                          end_of_iteration_hook=hooks.end_of_iteration, end_of_epoch_hook=hooks.end_of_epoch)
        trainer.train(num_epochs=3)
    run = dmlviz.load_run(tmp_path / "pml")
    assert run.epochs == [0, 1, 2, 3] and run.snapshot(3).centers.shape == (4, 1, 8) and run.snapshot(3).centers_kind == "learned"
    assert np.isnan(run.metrics["loss"].iloc[0]) and np.isfinite(run.metrics["loss"].iloc[1:]).all()
