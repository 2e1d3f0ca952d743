"""What the playground shows beside its knobs: each loss's formula, the choices of its text knobs, and the presets
(each teaching one thing in a sentence)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: each loss's formula, in the notation of its knobs (s = cosine similarity, d = Euclidean distance of unit vectors)
FORMULAS: dict[str, str] = {
    "softtriple": "S_c = Σ_k softmax_k(s_k / γ)·s_k (K centers per class);  L = −log softmax_y(λ(S − δ·1_y));  + τ·Σ_{k<k'}√(2 − 2 w_kᵀw_k')",
    "softmax": "L = −log exp(λ(s_y − δ)) / (exp(λ(s_y − δ)) + Σ_{c≠y} exp(λ s_c))   (one center per class)",
    "triplet": "L = mean over mined (a, p, n) of [d(a,p) − d(a,n) + margin]₊",
    "multisimilarity": "L = 1/α·log(1 + Σ_p e^{−α(s_p − base)}) + 1/β·log(1 + Σ_n e^{β(s_n − base)}),  pairs mined with ε",
    "circle": "L = log(1 + Σ_n e^{γ·α_n(s_n − Δ_n)} · Σ_p e^{−γ·α_p(s_p − Δ_p)}),  α_p = [1 + m − s_p]₊, α_n = [s_n + m]₊, Δ_p = 1 − m, Δ_n = m",
    "proxynca": "L = −log e^{−scale·d(x, p_y)²} / Σ_c e^{−scale·d(x, p_c)²}   (variant classic: the sum runs over c ≠ y)",
    "proxyncapp": "L = −log softmax_y(−d(x, p)²·scale)  (ProxyNCA++: scale 9, proxies at their own rate)",
    "proxyanchor": "L = 1/|P⁺|·Σ_p log(1 + Σ_{x∈X_p⁺} e^{−α(s(x,p) − δ)}) + 1/|P|·Σ_p log(1 + Σ_{x∈X_p⁻} e^{α(s(x,p) + δ)})",
    "npair": "L = mean_i log(1 + Σ_{j≠i} e^{f_iᵀf_j⁺ − f_iᵀf_i⁺}) + l2_reg·mean‖f‖²   (raw dot products)",
    "margin": "L = [α + y_ij(d_ij − β_{class})]₊ on distance-weighted pairs (β learned per class)",
    "contrastive": "L = mean⁺[d − m⁺]₊ + balance·mean⁻[m⁻ − d]₊",
    "ntxent": "L = mean over positive pairs of −s_ap/τ + balance·log(e^{s_ap/τ} + Σ_n e^{s_an/τ})",
    "smoothap": "L = 1 − mean AP with the rank step replaced by a sigmoid of temperature τ",
    "crossentropy": "L = KL(smoothed one-hot ‖ softmax(W x + b))   (a linear classifier; ε spread over the other classes)",
    "cbml": "L = contrastive Bayesian: positive/negative similarities scored by Beta-like densities (a±, b±), margin, weights",
    "roadmap": "L = 1 − SupAP (smooth rank, τ, ρ, δ) + calibration · contrastive(pos_margin, neg_margin)",
    "soprc": "L = AUPRC surrogate (squared hinge τ_pn, sigmoid τ_pp, per-class score buffers) + variance_weight·semi-variance",
    "proxysynthesis": "L = base proxy loss on the batch and on mixed embeddings/proxies λx_i + (1−λ)x_j as new classes (λ ~ Beta(α, α))",
    "multiproxyanchor": "S_c = soft max of the K proxies' similarities (γ);  L = Proxy-Anchor(S, α, δ)   (our approximation of MPA)",
    "ensemble": "L = Σ_l softmax(w)_l·L_l + classifier term; the weights w learned (prior, η)",
    "ccp": "L = 0.1·contrastive(batch) + contrastive(batch, K proxies/class) + λ/2‖θ − θ_best‖²; proxies re-seeded by k-center when MAP@R stalls",
    "nivmf": "sim(z,c) = log mean_s exp(log nivMF(x_s | κ_c⊙μ_c)/T), x_s ~ vMF(z/‖z‖, ‖z‖);  L = NCA(sim) + guidance·ProxyAnchor",
}

#: choices of a loss's text knobs
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("triplet", "mining"): ("semihard", "hard", "all", "distance"),
    ("triplet", "scale"): ("unit", "mean_distance"),
    ("proxynca", "variant"): ("nca", "classic"),
    ("cbml", "kind"): ("log", "sqrt", "const"),
    ("proxysynthesis", "base"): ("softmax", "proxynca"),
    ("nivmf", "normalizer"): ("auto", "exact"),
}


@dataclass(frozen=True)
class Preset:
    """A named setting of the playground and the one thing it teaches; ``steps`` is how long to play to see it."""

    name: str
    lesson: str
    settings: dict[str, Any]
    steps: int = 600


#: each lesson's figures were measured with seed 0 after ``steps`` steps (tests/playground/test_presets.py checks them)
PRESETS: tuple[Preset, ...] = (
    Preset("SoftMax vs SoftTriple: one center per class",
           "SoftMax has one center per class, so nothing in the loss keeps a class's two hidden modes apart: watch the mode "
           "gap, the angle between them (seed 0: from 94° to about 60° in 600 steps). The next preset gives each class two centers.",
           dict(loss="softmax", classes=3, modes_per_class=2, head="linear")),
    Preset("SoftMax vs SoftTriple: two centers per class",
           "SoftTriple's two centers per class can each take a hidden mode, but on the circle whether they do depends on the "
           "start: after 600 steps the sub-mode score is 0.54 with seed 0 (0 = chance); over seeds 0–11 it runs from 0.00 to "
           "0.65 (mean 0.29, untrained centers 0.20). Which seeds split is so fragile that another CPU's rounding can change "
           "it. Change the seed to see it.",
           dict(loss="softtriple", loss_params={"centers_per_class": 2}, classes=3, modes_per_class=2, head="linear")),
    Preset("Centers merging as τ grows",
           "τ pulls a class's six centers together: with τ = 2 effective K falls to about 2.3 in 600 steps (with τ = 0 it "
           "stays above 5). Set τ to 0 to compare.",
           dict(loss="softtriple", loss_params={"centers_per_class": 6, "tau": 2.0}, classes=3, modes_per_class=2, head="linear")),
    Preset("Semi-hard triplet mining",
           "Semi-hard mining picks negatives just beyond the positive: classes separate (separation from 10° to about 55°) and "
           "the embedding stays spread over the circle (dispersion about 0.8). Amber lines: semi-hard triplets.",
           dict(loss="triplet", loss_params={"mining": "semihard", "margin": 0.2}, head="mlp", classes=4)),
    Preset("Hard triplet mining (collapse)",
           "Batch-hard mining from the start pulls every sample towards its hardest negatives: within a few hundred steps the "
           "whole embedding collapses to one point (dispersion 0).",
           dict(loss="triplet", loss_params={"mining": "hard", "margin": 0.2}, head="mlp", lr=0.03, classes=4)),
    Preset("Proxies vs pairs: a proxy loss",
           "Normalised SoftMax is a proxy loss: each sample is compared with one learned proxy per class (the diamonds, with "
           "their own arrows), never with other samples, and nothing is mined; the classes end far apart (separation about 70°).",
           dict(loss="softmax", classes=3, modes_per_class=2)),
    Preset("Proxies vs pairs: a pair loss",
           "Multi-Similarity has no proxies: only the pairs its miner picks in each batch (the lines) move the samples, and the "
           "diamonds are class means. Classes pull tight (spread about 0.01), but two classes can stay close (separation about "
           "10°, SoftMax: 70°): once their pairs are no longer hard, nothing is mined to push them apart.",
           dict(loss="multisimilarity", classes=3)),
    Preset("MDR's levels",
           "MDR adds a pull of every pair distance towards the nearest of three learned levels; their values (in units of the "
           "running spread of distances) are printed below the picture and move as it learns.",
           dict(loss="triplet", loss_params={"mining": "distance", "margin": 0.2, "scale": "mean_distance"}, mdr=True, lambda_mdr=0.6, classes=4)),
    Preset("The temperature of a proxy loss: low",
           "At a large scale (low temperature) ProxyNCA++'s softmax saturates as soon as a sample is nearer its own proxy "
           "than the others: learning stalls with classes still overlapping (separation below 1°, spread about 0.2).",
           dict(loss="proxyncapp", loss_params={"softmax_scale": 16.0}, classes=4)),
    Preset("The temperature of a proxy loss: high",
           "At a small scale (high temperature) the softmax never saturates: it keeps pulling classes tight and apart "
           "(separation about 47° after 600 steps, dispersion above 0.9).",
           dict(loss="proxyncapp", loss_params={"softmax_scale": 2.0}, classes=4)),
)
