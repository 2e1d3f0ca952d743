"""Non-isotropic probabilistic proxies, EL-nivMF (Kirchhof, Roth, Akata, Kasneci; ECCV 2022, arXiv 2207.03784).
**Experimental** in dmlviz: its sampler and normaliser are checked against theory, its training recipe is fragile.

Official code: ExplainableML/Probabilistic_Deep_Metric_Learning, ``criteria/proxyvmf_panc.py`` (the
loss), ``utilities/misc.py`` (``log_ppk_vmf_vec``, ``approx_log_cp``), ``utilities/vmf_sampler.py``.
As there:

- An image is a von Mises–Fisher distribution: direction z/‖z‖, concentration ‖z‖ (its certainty).
- A proxy is a non-isotropic vMF: a direction μ_c (a free vector, normalised when used) and a
  per-dimension concentration κ_c ∈ R^D, clamped at >= 0.1. With m_c = κ_c ⊙ μ_c and n_c = ‖m_c‖:
  log p(x | c) = log C_D(n_c) + n_c·cos(x, m_c) + Σ_d log κ_cd − log n_c.
- sim(z, c) = log( (1/S) Σ_s exp(log p(x_s | c) / T) ), x_s ~ vMF(z/‖z‖, ‖z‖), S = ``samples``,
  T = ``temperature`` (learnable).
- loss = mean_i [ −sim(z_i, y_i) + logsumexp_c sim(z_i, c) ] (their "PNCA++ formulation")
  + ``guidance`` × their Proxy-Anchor term on unit vectors against the proxy directions
  (α 32, δ 0.1; its positive part averages over the batch's samples, so a class with more samples
  in the batch weighs more: the authors' quirk, kept).
- Warm start: before the first epoch each proxy direction is its class's mean training embedding
  and κ_c = ``concentration`` everywhere; the last linear layer's weights and bias are multiplied
  once by ``init_norm_multiplier`` so image concentrations start in range. Epoch 0 is recorded
  before that: its directions are the same, its norms are not.
- Defaults: the authors' CUB 128-d run (``example_runs.sh``): κ₀ 6, T 0.003, 5 samples,
  guidance 3, norm multiplier 30.

Where dmlviz differs:

- log C_D: the authors' quadratic fits exist for D = 128 and 512 only (``normalizer="authors"``,
  the default at those D; any other D falls back, in their code, to the 512 fit). Elsewhere dmlviz
  uses the exact normaliser: closed forms for D = 2, 3, 4 (``torch.special.i0e``, ``i1e``), and
  Debye's uniform expansion of log I_{D/2−1} to second order for D >= 5
  (``normalizer="exact"``; tested against SciPy's Bessel functions).
- The sampler is Wood's (1994) rejection scheme with the accepted Beta draw held fixed, so the
  gradient flows through w(κ) and the Householder rotation (the reparameterised part of s-vae's
  estimator, which the authors adapted; the correction term is omitted there too).
- The authors' learning-rate multipliers (×5,000 proxies, ×20,000 κ, ×200 T with Adam at 1e-5) are
  not reproduced: directions and κ train at ``center_lr``, T at ``lr``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_choice, check_positive_float, check_positive_int
from .base import DMLLoss
from .registry import register

#: the authors' fits of log C_D(κ) (``approx_log_cp``, mode "new")
AUTHORS_FITS = {128: (127.0, -0.01909, -0.003355), 512: (868.0, -0.0002662, -0.0009685)}


def log_bessel_i(order: float, x: torch.Tensor) -> torch.Tensor:
    """log I_order(x) for x > 0: exact for orders 0 and 1 (``i0e``, ``i1e``) and 0.5; Debye's uniform expansion to second order above."""
    if order == 0:
        return torch.log(torch.special.i0e(x)) + x
    if order == 1:
        return torch.log(torch.special.i1e(x)) + x
    if order == 0.5:  # I_½(x) = sqrt(2 / (π x)) sinh x
        return 0.5 * math.log(2 / math.pi) - 0.5 * torch.log(x) + x + torch.log1p(-torch.exp(-2 * x)) - math.log(2)
    z = x / order
    root = torch.sqrt(1 + z * z)
    eta = root + torch.log(z / (1 + root))
    t = 1 / root
    u1 = (3 * t - 5 * t**3) / 24
    u2 = (81 * t**2 - 462 * t**4 + 385 * t**6) / 1152
    return order * eta - 0.5 * math.log(2 * math.pi * order) - 0.5 * torch.log(root) + torch.log1p(u1 / order + u2 / order**2)


def log_vmf_normalizer(kappa: torch.Tensor, dim: int, how: str = "exact") -> torch.Tensor:
    """log C_D(κ) of the vMF density C_D(κ)·exp(κ μᵀx) on the sphere in R^dim; ``how="authors"``: their fit (D = 128, 512)."""
    if how == "authors":
        a, b, c = AUTHORS_FITS.get(dim, AUTHORS_FITS[512])  # their code uses the 512 fit for any D but 128
        return a + b * kappa + c * kappa**2
    v = dim / 2 - 1
    k = kappa.clamp(min=1e-6)
    return v * torch.log(k) - (dim / 2) * math.log(2 * math.pi) - log_bessel_i(v, k)


def sample_vmf(mean: torch.Tensor, kappa: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` draws [n, B, D] from vMF(mean [B, D] (unit), kappa [B]) by Wood's rejection scheme, differentiable in both.

    Draws come from torch's global generator (the trainer seeds it per epoch); one host sync per round of proposals.
    """
    b_size, dim = mean.shape
    m1 = dim - 1
    k = kappa.clamp(min=1e-4)[None, :].expand(n, b_size)
    root = torch.sqrt(4 * k * k + m1 * m1)
    b = torch.where(k > 1e3, m1 / (2 * k), (-2 * k + root) / m1)  # stable for large κ
    a = (m1 + 2 * k + root) / 4
    d = 4 * a * b / (1 + b) - m1 * math.log(m1)
    beta = torch.distributions.Beta(torch.tensor(m1 / 2, device=mean.device, dtype=mean.dtype),
                                    torch.tensor(m1 / 2, device=mean.device, dtype=mean.dtype))
    e = torch.zeros(n, b_size, device=mean.device, dtype=mean.dtype)
    todo = torch.ones(n, b_size, dtype=torch.bool, device=mean.device)
    for _ in range(100):  # acceptance is high (> 0.6 for every κ and D); a few rounds, 8 proposals each
        proposals = beta.sample((8, n, b_size))
        u = torch.rand((8, n, b_size), device=mean.device, dtype=mean.dtype)
        with torch.no_grad():
            bd, ad, dd = b.detach(), a.detach(), d.detach()
            t = 2 * ad * bd / (1 - (1 - bd) * proposals)
            ok = (m1 * torch.log(t) - t + dd) >= torch.log(u)
        first = ok.float().argmax(dim=0)  # the first accepted proposal (if any)
        chosen = proposals.gather(0, first[None]).squeeze(0)
        accepted = ok.any(dim=0) & todo
        e = torch.where(accepted, chosen, e)
        todo = todo & ~accepted
        if not bool(todo.any()):
            break
    w = (1 - (1 + b) * e) / (1 - (1 - b) * e)  # [n, B], differentiable through b(κ)
    v = torch.randn((n, b_size, m1), device=mean.device, dtype=mean.dtype)
    v = F.normalize(v, dim=-1)
    x = torch.cat([w[..., None], torch.sqrt((1 - w * w).clamp(min=0))[..., None] * v], dim=-1)  # around e1
    e1 = torch.zeros(dim, device=mean.device, dtype=mean.dtype)
    e1[0] = 1
    u_ = F.normalize(e1 - mean, dim=-1)  # Householder: e1 -> mean
    return x - 2 * (x * u_).sum(-1, keepdim=True) * u_


def expected_likelihood(samples: torch.Tensor, directions: torch.Tensor, kappa: torch.Tensor, temperature: torch.Tensor,
                        normalizer: str) -> torch.Tensor:
    """sim [B, C] = log mean_s exp(log p(x_s | c) / T) for samples [S, B, D], proxy directions [C, D] and concentrations [C, D]."""
    m = F.normalize(directions, dim=-1) * kappa  # m_c = κ_c ⊙ μ_c
    n = m.norm(dim=-1)  # [C]
    cos = torch.einsum("sbd,cd->sbc", F.normalize(samples, dim=-1), m / n[:, None])
    log_p = log_vmf_normalizer(n, samples.shape[-1], normalizer) + n * cos + torch.log(kappa).sum(-1) - torch.log(n)
    return torch.logsumexp(log_p / temperature, dim=0) - math.log(samples.shape[0])


@register("nivmf")
class NonIsotropicVMF(DMLLoss):
    """EL-nivMF (experimental): images as vMFs (direction, norm = concentration), proxies with a direction and a per-dimension
    concentration; NCA over the Monte-Carlo expected likelihoods, plus ``guidance`` × Proxy-Anchor on the directions.

    Terms: "likelihood" and "guidance". ``centers()``: the proxies' directions [C, 1, D]. Recorded each epoch:
    ``nivmf_concentration`` [C] (n_c = ‖κ_c ⊙ μ_c‖), ``nivmf_anisotropy`` [C] (max over min of κ_c), ``nivmf_tilt`` [C] (degrees
    between μ_c and the likelihood's mode κ_c ⊙ μ_c) and ``nivmf_temperature``. As the authors' ``log_ppk_vmf_vec`` computes
    it, the likelihood is isotropic around its mode κ_c ⊙ μ_c with concentration n_c (the per-dimension κ tilt the mode and
    scale n_c, and add Σ log κ_c); views therefore report n_c's angular spread and the tilt, not per-dimension spreads.
    """

    name = "nivmf"

    def __init__(self, num_classes: int, embedding_dim: int, concentration: float = 6.0, temperature: float = 0.003, samples: int = 5,
                 guidance: float = 3.0, init_norm_multiplier: float = 30.0, warm_start: bool = True, normalizer: str = "auto") -> None:
        super().__init__(check_positive_int("num_classes", num_classes), check_positive_int("embedding_dim", embedding_dim))
        if embedding_dim < 2:
            raise ValueError(f"nivmf needs embeddings on a sphere, embedding_dim >= 2, got {embedding_dim}")
        check_choice("normalizer", normalizer, ("auto", "authors", "exact"))
        if normalizer == "authors" and embedding_dim not in AUTHORS_FITS:
            raise ValueError(f"normalizer='authors' exists for embedding_dim 128 and 512 only, got {embedding_dim}; use 'exact' or 'auto'")
        if warm_start not in (0, 1, True, False):
            raise ValueError(f"warm_start must be True or False, got {warm_start!r}")
        self.hparams = dict(
            concentration=check_positive_float("concentration", concentration, example=6.0),
            temperature=check_positive_float("temperature", temperature, example=0.003),
            samples=check_positive_int("samples", samples),
            guidance=check_positive_float("guidance", guidance, allow_zero=True, example=3.0),
            init_norm_multiplier=check_positive_float("init_norm_multiplier", init_norm_multiplier, example=30.0),
            warm_start=bool(warm_start), normalizer=normalizer,
        )
        self.how = ("authors" if embedding_dim in AUTHORS_FITS else "exact") if normalizer == "auto" else normalizer
        gain = self.hparams["concentration"]
        self.directions = nn.Parameter(nn.init.xavier_normal_(torch.empty(num_classes, embedding_dim), gain=gain))
        self.kappa = nn.Parameter(torch.full((num_classes, embedding_dim), gain))
        self.temperature = nn.Parameter(torch.tensor(self.hparams["temperature"]))
        self.register_buffer("started", torch.zeros((), dtype=torch.bool))

    def concentrations(self) -> torch.Tensor:
        """κ_c clamped at >= 0.1 [C, D], as the loss uses them."""
        return self.kappa.clamp(min=0.1)

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """NCA over the expected likelihoods, and the guidance term."""
        unit, norm = F.normalize(embeddings, dim=1), embeddings.norm(dim=1)
        x = sample_vmf(unit, norm, self.hparams["samples"])
        sim = expected_likelihood(x, self.directions, self.concentrations(), self.temperature, self.how)
        likelihood = (-sim.gather(1, labels[:, None]).squeeze(1) + torch.logsumexp(sim, dim=1)).mean()
        parts = {"likelihood": likelihood}
        parts["guidance"] = self.hparams["guidance"] * self._guidance(unit, labels) if self.hparams["guidance"] else likelihood * 0.0
        return parts

    def _guidance(self, unit: torch.Tensor, labels: torch.Tensor, alpha: float = 32.0, delta: float = 0.1) -> torch.Tensor:
        """The authors' ``oproxy`` (mode "anchor"): log(1 + Σ) over samples per column, positives per batch sample's class."""
        proxies = F.normalize(self.directions, dim=-1)
        same = labels[None, :] == labels[:, None]  # [B, B]: column j is sample j's class proxy
        other = labels[:, None] != torch.arange(self.num_classes, device=labels.device)[None, :]  # [B, C]
        pos = _log1p_sum_exp(-alpha * (unit @ proxies[labels].T - delta), same)
        neg = _log1p_sum_exp(alpha * (unit @ proxies.T - delta), other)
        return pos.mean() + neg.mean()

    def centers(self) -> torch.Tensor:
        """The proxies' directions [C, 1, D]."""
        return F.normalize(self.directions.detach(), dim=-1)[:, None, :]

    def center_parameters(self) -> list[nn.Parameter]:
        """Directions and concentrations (at ``center_lr``; the temperature trains with the model)."""
        return [self.directions, self.kappa]

    def start_epoch(self, epoch: int, epochs: int, model: nn.Module) -> None:
        """Before the first epoch: multiply the model's last linear layer by ``init_norm_multiplier`` (once per run)."""
        if bool(self.started):
            return
        last = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if last and self.hparams["init_norm_multiplier"] != 1:
            with torch.no_grad():
                last[-1].weight.mul_(self.hparams["init_norm_multiplier"])
                if last[-1].bias is not None:
                    last[-1].bias.mul_(self.hparams["init_norm_multiplier"])

    def wants_training_embeddings(self, epoch: int, epochs: int) -> bool:
        """Once, before the first epoch, for the warm start."""
        return not bool(self.started)

    @torch.no_grad()
    def set_training_embeddings(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        """Warm start: directions at the class means (scaled by ``concentration``), κ = ``concentration``."""
        if self.hparams["warm_start"]:
            sums = torch.zeros_like(self.directions).index_add_(0, labels, embeddings.to(self.directions.dtype))
            seen = torch.bincount(labels, minlength=self.num_classes) > 0
            self.directions.copy_(torch.where(seen[:, None], F.normalize(sums, dim=1) * self.hparams["concentration"], self.directions))
            self.kappa.fill_(self.hparams["concentration"])
        self.started.fill_(True)

    def snapshot_arrays(self) -> dict[str, torch.Tensor]:
        """Per class: the concentration n_c and the anisotropy max κ / min κ; the temperature."""
        kappa = self.concentrations().detach()
        m = F.normalize(self.directions.detach(), dim=-1) * kappa
        mu = F.normalize(self.directions.detach(), dim=-1)
        tilt = torch.rad2deg(torch.arccos((mu * F.normalize(m, dim=-1)).sum(-1).clamp(-1, 1)))
        return {"nivmf_concentration": m.norm(dim=-1), "nivmf_anisotropy": kappa.max(dim=1).values / kappa.min(dim=1).values,
                "nivmf_tilt": tilt, "nivmf_temperature": self.temperature.detach()}


def _log1p_sum_exp(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log(1 + Σ_rows exp(values)) per column over ``mask``ed rows [B, n] → [n]; 0 for a column without any."""
    filled = values.masked_fill(~mask, torch.finfo(values.dtype).min)
    zeros = torch.zeros(1, values.shape[1], dtype=values.dtype, device=values.device)
    out = torch.logsumexp(torch.cat([filled, zeros]), dim=0)
    return out.masked_fill(~mask.any(dim=0), 0.0)
