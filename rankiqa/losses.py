"""Losses for learning quality from rankings. Each is a plain function plus a thin ``nn.Module``.

Convention: scores are unbounded reals, **higher = better quality**; distortion levels are ints,
0 = pristine = best, higher = worse. The margin sets the score scale: with ``margin=1`` a trained
model puts adjacent levels of one image about 1 apart, pristine vs level 5 about 5 apart (the
original RankIQA code used ``margin=10`` on a VGG-16 whose fc8 output is unnormalised; the scale is
arbitrary, only the order matters for SRCC, and MOS fine-tuning re-scales it).

What each loss teaches:

* ``pairwise_ranking_loss`` — hinge on one (better, worse) pair: the better image must score at
  least ``margin`` above the worse one. A direct ranking signal.
* ``batch_ranking_loss`` — RankIQA's efficient Siamese form: the same hinge over *every* ordered
  pair inside each (reference, distortion) set of a batch, from one forward pass. Same objective as
  the pairwise loss, many more pairs per image forwarded.
* ``contrastive_loss`` (Hadsell et al. 2006) — pulls "similar" embeddings together, pushes
  "dissimilar" ones at least ``margin`` apart. It sees distances only, so on 1-D scores it cannot
  say which side is better, nor order levels 1..5 among themselves: it only separates levels.
  ``ranked_contrastive_loss`` adds a ranking term (pristine above each of its distorted versions)
  that fixes the sign; the order among distorted levels is *not* enforced by it.
* ``triplet_loss`` (FaceNet) — an anchor must be closer to its positive than to its negative by
  ``margin``. With anchor = pristine, positive = the less distorted and negative = the more
  distorted image of the same set, and 1-D scores below the pristine one (the sign term of
  ``ranked_triplet_loss``), ``|s_0 - s_pos| + m < |s_0 - s_neg|`` becomes ``s_pos > s_neg + m``:
  exactly the ranking hinge, so it does order levels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pairwise_ranking_loss(score_better: torch.Tensor, score_worse: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Mean of ``max(0, margin - (score_better - score_worse))`` over pairs (same as ``F.margin_ranking_loss``)."""
    if score_better.shape != score_worse.shape:
        raise ValueError(f"score_better {tuple(score_better.shape)} and score_worse {tuple(score_worse.shape)} differ")
    return F.relu(margin - (score_better - score_worse)).mean()


def ranking_pair_mask(
    reference_ids: torch.Tensor, distortion_ids: torch.Tensor, levels: torch.Tensor, cross_reference: bool = False
) -> torch.Tensor:
    """(N, N) bool mask: ``mask[i, j]`` is True when image i should score above image j.

    That is: same distortion, same reference (or any reference when ``cross_reference``), and
    ``levels[i] < levels[j]`` (lower level = less distorted = better).
    """
    same_group = distortion_ids[:, None] == distortion_ids[None, :]
    if not cross_reference:
        same_group &= reference_ids[:, None] == reference_ids[None, :]
    return same_group & (levels[:, None] < levels[None, :])


def batch_ranking_loss(
    scores: torch.Tensor,
    reference_ids: torch.Tensor,
    distortion_ids: torch.Tensor,
    levels: torch.Tensor,
    margin: float | torch.Tensor = 1.0,
    cross_reference: bool = False,
) -> torch.Tensor:
    """All-pairs hinge over one forward pass: mean over valid pairs of ``max(0, margin - (s_i - s_j))``.

    ``scores``, ``reference_ids``, ``distortion_ids``, ``levels``: (N,) tensors, one entry per image.
    Valid pairs (i, j) come from ``ranking_pair_mask``. ``margin`` is a float or an (N, N) tensor of
    per-pair margins (see ``target_margins``). Normalised by the number of valid pairs
    (the original Caffe layer divided by the number of images instead); a batch without any valid
    pair gives 0 (still connected to the graph).
    """
    if not (scores.shape == reference_ids.shape == distortion_ids.shape == levels.shape) or scores.dim() != 1:
        raise ValueError("scores, reference_ids, distortion_ids and levels must all have the same shape (N,)")
    mask = ranking_pair_mask(reference_ids, distortion_ids, levels, cross_reference)
    hinge = F.relu(margin - (scores[:, None] - scores[None, :]))
    return (hinge * mask).sum() / mask.sum().clamp(min=1)


def contrastive_loss(emb_a: torch.Tensor, emb_b: torch.Tensor, similar: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Hadsell-Chopra-LeCun (2006) contrastive loss, mean over pairs.

    ``0.5 * d**2`` for similar pairs, ``0.5 * max(0, margin - d)**2`` for dissimilar ones, where
    ``d`` is the Euclidean distance. Embeddings are (N, D) or (N,) (1-D: scalar scores);
    ``similar`` is (N,) bool or 0/1.
    """
    distance = _distance(emb_a, emb_b)
    similar = similar.to(distance.dtype)
    return 0.5 * (similar * distance.pow(2) + (1 - similar) * F.relu(margin - distance).pow(2)).mean()


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """FaceNet triplet loss, mean of ``max(0, d(a, p) - d(a, n) + margin)``; Euclidean distances.

    Embeddings are (N, D) or (N,) (1-D: scalar scores). Ranking reading: the positive is the image
    whose level is closer to the anchor's.
    """
    return F.relu(_distance(anchor, positive) - _distance(anchor, negative) + margin).mean()


def _distance(emb_a: torch.Tensor, emb_b: torch.Tensor) -> torch.Tensor:
    if emb_a.shape != emb_b.shape:
        raise ValueError(f"embeddings have different shapes {tuple(emb_a.shape)} and {tuple(emb_b.shape)}")
    if emb_a.dim() == 1:
        return (emb_a - emb_b).abs()
    # sqrt with a floor keeps the gradient finite when two embeddings coincide
    return (emb_a - emb_b).pow(2).sum(dim=1).clamp(min=1e-12).sqrt()


def _pristine_mask(set_levels: torch.Tensor) -> torch.Tensor:
    """(B, L) bool: the single lowest-level (pristine) image of each set; raises if it is not unique."""
    pristine = set_levels == set_levels.min(dim=1, keepdim=True).values
    if not pristine.sum(dim=1).eq(1).all():
        raise ValueError("each set must contain exactly one image of its lowest level (the pristine)")
    return pristine


def _pristine_above_distorted(set_scores: torch.Tensor, pristine: torch.Tensor, margin: float) -> torch.Tensor:
    """Sign term: mean hinge ``max(0, margin - (s_pristine - s_distorted))`` over the distorted images."""
    anchor = set_scores[pristine][:, None]
    return F.relu(margin - (anchor - set_scores))[~pristine].mean()


def ranked_contrastive_loss(set_scores: torch.Tensor, set_levels: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Contrastive loss on 1-D scores of ranked sets, plus a sign-fixing ranking term.

    ``set_scores``, ``set_levels``: (B, L) for B sets of L images (lowest level = pristine). Inside a
    set every pair differs in level, so every pair is "dissimilar" and pushed ``margin`` apart; the
    ranking term is the hinge "pristine above each of its distorted versions". Levels 1..5 are
    separated but their mutual order is not enforced, so expect lower SRCC than ``batch_ranking_loss``.
    """
    pristine = _pristine_mask(set_levels)
    set_index, first, second = torch.nonzero(set_levels[:, :, None] < set_levels[:, None, :], as_tuple=True)
    a, b = set_scores[set_index, first], set_scores[set_index, second]
    separation = contrastive_loss(a, b, torch.zeros_like(a, dtype=torch.bool), margin)
    return separation + _pristine_above_distorted(set_scores, pristine, margin)


def ranked_triplet_loss(set_scores: torch.Tensor, set_levels: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Triplet loss on 1-D scores of ranked sets, anchored at the pristine image, plus the sign term.

    For each set: anchor = its pristine (lowest level); every (positive, negative) pair of distorted
    images with the positive less distorted. Once distorted scores are below the pristine one (the
    sign term), the triplet condition equals ``s_pos > s_neg + margin``.
    """
    pristine = _pristine_mask(set_levels)
    anchor = set_scores[pristine]
    distorted = ~pristine
    is_triplet = distorted[:, :, None] & distorted[:, None, :] & (set_levels[:, :, None] < set_levels[:, None, :])
    set_index, positive, negative = torch.nonzero(is_triplet, as_tuple=True)
    ordering = triplet_loss(anchor[set_index], set_scores[set_index, positive], set_scores[set_index, negative], margin)
    return ordering + _pristine_above_distorted(set_scores, pristine, margin)


class PairwiseRankingLoss(nn.Module):
    """Module form of ``pairwise_ranking_loss``: holds the margin."""

    def __init__(self, margin: float = 1.0):
        super().__init__()
        self.margin = margin

    def forward(self, score_better: torch.Tensor, score_worse: torch.Tensor) -> torch.Tensor:
        return pairwise_ranking_loss(score_better, score_worse, self.margin)


class BatchRankingLoss(nn.Module):
    """Module form of ``batch_ranking_loss``: holds the margin and the cross-reference switch."""

    def __init__(self, margin: float = 1.0, cross_reference: bool = False):
        super().__init__()
        self.margin = margin
        self.cross_reference = cross_reference

    def forward(self, scores: torch.Tensor, reference_ids: torch.Tensor, distortion_ids: torch.Tensor,
                levels: torch.Tensor) -> torch.Tensor:
        return batch_ranking_loss(scores, reference_ids, distortion_ids, levels, self.margin, self.cross_reference)


class ContrastiveLoss(nn.Module):
    """Module form of ``contrastive_loss``: holds the margin."""

    def __init__(self, margin: float = 1.0):
        super().__init__()
        self.margin = margin

    def forward(self, emb_a: torch.Tensor, emb_b: torch.Tensor, similar: torch.Tensor) -> torch.Tensor:
        return contrastive_loss(emb_a, emb_b, similar, self.margin)


class TripletLoss(nn.Module):
    """Module form of ``triplet_loss``: holds the margin."""

    def __init__(self, margin: float = 1.0):
        super().__init__()
        self.margin = margin

    def forward(self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        return triplet_loss(anchor, positive, negative, self.margin)


# z such that a normal difference of z standard deviations keeps its sign with probability 0.75
TARGET_NOISE_Z = 0.674


def target_pair_mask(targets: torch.Tensor, noise: torch.Tensor, set_ids: torch.Tensor,
                     z: float = TARGET_NOISE_Z) -> torch.Tensor:
    """(N, N) bool: ``mask[i, j]`` when image i's human target is above image j's by more than the
    targets' noise, and the two images come from different sets.

    ``targets``: (N,) MOS targets (NaN = no target); ``noise``: (N,) their standard deviation over
    photos. A pair counts when ``t_i - t_j > z * sqrt(sd_i**2 + sd_j**2)``: with normal errors its
    order is then right with probability >= 0.75 (``z = 0.674``).
    """
    known = torch.isfinite(targets)
    t = torch.where(known, targets, torch.zeros_like(targets))
    sd = torch.where(known, noise, torch.zeros_like(noise))
    threshold = z * torch.sqrt(sd[:, None] ** 2 + sd[None, :] ** 2)
    different_set = set_ids[:, None] != set_ids[None, :]
    return known[:, None] & known[None, :] & different_set & (t[:, None] - t[None, :] > threshold)


def target_margins(targets: torch.Tensor, margin: float, scale: float, floor: float) -> torch.Tensor:
    """(N, N) per-pair margins for within-set ranking with human targets: ``scale * (t_i - t_j)``
    where both images have a target, at least ``floor`` (a level step people barely see still has to
    be ordered, with a small margin); ``margin`` where either has none.

    With a uniform margin, every level step of every type is pushed equally far apart, which fights
    the human scale (darken levels 1-3 differ by 0.4 MOS, blur levels 1-3 by 2.5).
    """
    known = torch.isfinite(targets)
    t = torch.where(known, targets, torch.zeros_like(targets))
    scaled = (scale * (t[:, None] - t[None, :])).clamp(min=floor)
    return torch.where(known[:, None] & known[None, :], scaled, torch.full_like(scaled, margin))


def target_ranking_loss(scores: torch.Tensor, targets: torch.Tensor, noise: torch.Tensor, set_ids: torch.Tensor,
                        scale: float = 1.0, z: float = TARGET_NOISE_Z) -> torch.Tensor:
    """Cross-set ranking by human targets, with a margin that grows with the target difference.

    Mean over the pairs of ``target_pair_mask`` of ``max(0, scale * (t_i - t_j) - (s_i - s_j))``:
    an image people rate 1 MOS point higher must score at least ``scale`` higher. 0 (still on the
    graph) when no pair qualifies.
    """
    mask = target_pair_mask(targets, noise, set_ids, z)
    t = torch.where(torch.isfinite(targets), targets, torch.zeros_like(targets)).to(scores.dtype)
    hinge = F.relu(scale * (t[:, None] - t[None, :]) - (scores[:, None] - scores[None, :]))
    return (hinge * mask).sum() / mask.sum().clamp(min=1)


def target_regression_loss(scores: torch.Tensor, targets: torch.Tensor, scale: float = 1.0,
                           centre: float = 3.0) -> torch.Tensor:
    """Smooth-L1 regression of the score onto ``scale * (target - centre)`` for images with a target
    (MOS 3, the middle of KADID's scale, maps to score 0). 0 when no image has a target."""
    known = torch.isfinite(targets)
    if not bool(known.any()):
        return scores.sum() * 0.0
    goal = scale * (targets[known].to(scores.dtype) - centre)
    return F.smooth_l1_loss(scores[known], goal)
