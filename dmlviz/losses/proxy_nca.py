"""ProxyNCA (Movshovitz-Attias et al., ICCV 2017) and ProxyNCA++ (Teh et al., ECCV 2020).

pytorch-metric-learning's ``ProxyNCALoss`` is NCA over *all* proxies (the positive included) of
−scale·‖x̂ − p̂‖²; with ``softmax_scale=9`` it equals ProxyNCA++'s ``ProxyNCA_prob(scale=3)``
(euwern/proxynca_pp ``loss.py``; checked to 1e-6 in seed003's appendix). The 2017 paper's own form
leaves the positive out of the denominator (it can go negative); that is ``variant="classic"``,
written here (no library has it). ProxyNCA++'s recipe outside the loss (max pooling + LayerNorm,
proxy lr 4e2 vs 4e-3, a warm-up with the backbone frozen) is the trainer's: ``center_lr``,
``model_params={"pooling": "max"}``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml_losses

from .._validation import check_choice, check_positive_float, check_positive_int
from .pml_adapters import _ProxyLoss
from .registry import register


@register("proxynca")
class ProxyNCA(_ProxyLoss):
    """ProxyNCA: one proxy per class; ``variant`` "nca" (pytorch-metric-learning's, positive in the
    denominator, the default) or "classic" (the 2017 paper's, positive left out); distances scaled by ``softmax_scale``."""

    name = "proxynca"

    def __init__(self, num_classes: int, embedding_dim: int, softmax_scale: float = 1.0, variant: str = "nca") -> None:
        softmax_scale = check_positive_float("softmax_scale", softmax_scale, example=1.0)
        check_choice("variant", variant, ("nca", "classic"))
        super().__init__(
            check_positive_int("num_classes", num_classes),
            embedding_dim,
            pml_losses.ProxyNCALoss(num_classes, embedding_dim, softmax_scale=softmax_scale),
        )
        self.softmax_scale, self.variant = softmax_scale, variant
        self.hparams = dict(softmax_scale=softmax_scale, variant=variant)

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """The NCA loss over proxies (PML's), or the classic one: mean of d(x, p_y) + log Σ_{c≠y} exp(−d(x, p_c))."""
        if self.variant == "nca":
            return super().compute(embeddings, labels)
        d = self.softmax_scale * torch.cdist(F.normalize(embeddings, dim=1), F.normalize(self.loss.proxies, dim=1)).pow(2)
        own = d.gather(1, labels[:, None]).squeeze(1)
        others = (-d).masked_fill(F.one_hot(labels, d.shape[1]).bool(), float("-inf"))
        return {"loss": (own + torch.logsumexp(others, dim=1)).mean()}


@register("proxyncapp")
class ProxyNCAPlusPlus(ProxyNCA):
    """ProxyNCA++: NCA over all proxies at low temperature (``softmax_scale`` 9 = the authors' scale 3 on
    both vectors), proxies initialised randn/8 as in their code. Train proxies fast: ``center_lr`` ≫ ``lr``."""

    name = "proxyncapp"

    def __init__(self, num_classes: int, embedding_dim: int, softmax_scale: float = 9.0) -> None:
        super().__init__(num_classes, embedding_dim, softmax_scale=softmax_scale, variant="nca")
        with torch.no_grad():
            self.loss.proxies.copy_(torch.randn_like(self.loss.proxies) / 8)
        self.hparams = dict(softmax_scale=self.softmax_scale)
