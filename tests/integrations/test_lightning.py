"""A PyTorch Lightning fit recorded as a dmlviz run through RecordingCallback."""

import lightning
import numpy as np
import torch
from pytorch_metric_learning import losses

import dmlviz
from dmlviz.integrations.lightning import RecordingCallback


class Model(lightning.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(6, 8)
        self.loss_fn = losses.ProxyAnchorLoss(num_classes=4, embedding_size=8)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, _):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam([{"params": self.net.parameters(), "lr": 1e-2}, {"params": self.loss_fn.parameters(), "lr": 1e-1}])


def test_a_lightning_fit_records_epoch_zero_and_every_epoch_with_its_proxies(tmp_path):
    torch.manual_seed(0)
    y = torch.arange(4).repeat_interleave(25)
    x = torch.randn(100, 6) + y[:, None].float()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=20, shuffle=True)
    rec = dmlviz.Recorder(tmp_path / "pl", labels=y.numpy(), config={"loss": "proxyanchor (Lightning)"})
    trainer = lightning.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                                enable_model_summary=False, callbacks=[RecordingCallback(rec, x, centers="loss_fn")])
    trainer.fit(Model(), loader)
    run = dmlviz.load_run(tmp_path / "pl")
    assert run.info["status"] == "finished" and run.epochs == [0, 1, 2, 3]
    assert run.snapshot(3).centers.shape == (4, 1, 8) and run.snapshot(3).centers_kind == "learned"
    assert np.isfinite(run.metrics["loss"].iloc[1:]).all()
