"""The rank pre-training objective: one shared quality model and a ranking loss, as one module."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rankiqa.losses import (batch_ranking_loss, pairwise_ranking_loss, ranked_contrastive_loss, ranked_triplet_loss,
                            target_margins, target_ranking_loss, target_regression_loss)

TARGET_MARGIN_FLOOR = 0.2  # with --target-margins: smallest within-set margin, as a share of --margin


def flatten_sets(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Collated sets -> per-image tensors: images (B*L, 3, P, P), levels, reference ids, distortion ids."""
    images = batch["images"]
    sets, per_set = images.shape[:2]
    return (
        images.reshape(sets * per_set, *images.shape[2:]),
        batch["levels"].reshape(-1),
        torch.as_tensor(batch["reference_id"]).repeat_interleave(per_set),
        torch.as_tensor(batch["distortion_id"]).repeat_interleave(per_set),
    )


class SiameseRanker(nn.Module):
    """One shared quality model + a ranking objective; ``forward(batch)`` returns the scalar loss.

    Wrapping the whole objective in one module keeps a single forward per step, which is what
    DistributedDataParallel expects even for the two-pass ``pairwise`` loss. With ``targets``
    ((types, 6) human MOS per distortion id and level, NaN = none) and ``target_noise`` (their
    standard deviations), ``target_weight`` times a human-target term is added: images of
    different sets are ranked by their targets (``target_loss="rank"``) or regressed onto them.
    ``target_margins``: within-set pairs with targets get margins that follow the targets
    (``rankiqa.losses.target_margins``) instead of the uniform ``margin``.
    """

    def __init__(self, model: nn.Module, loss: str, margin: float, cross_reference: bool = False,
                 targets: np.ndarray | None = None, target_noise: np.ndarray | None = None,
                 target_loss: str = "rank", target_weight: float = 1.0, target_scale: float = 1.5,
                 target_margins: bool = False):
        super().__init__()
        self.model = model
        self.loss = loss
        self.margin = margin
        self.cross_reference = cross_reference
        self.target_loss, self.target_weight, self.target_scale = target_loss, target_weight, target_scale
        self.target_margins = target_margins
        self.targets = None if targets is None else torch.as_tensor(targets, dtype=torch.float32)
        self.target_noise = None if target_noise is None else torch.as_tensor(target_noise, dtype=torch.float32)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        images, levels, reference_ids, distortion_ids = flatten_sets(batch)
        if self.loss == "pairwise":
            set_levels = batch["levels"]
            set_index, better, worse = torch.nonzero(set_levels[:, :, None] < set_levels[:, None, :], as_tuple=True)
            per_set = set_levels.shape[1]
            score_better = self.model(images[set_index * per_set + better])
            score_worse = self.model(images[set_index * per_set + worse])
            return pairwise_ranking_loss(score_better, score_worse, self.margin)
        scores = self.model(images)
        image_targets = None if self.targets is None else \
            self.targets[distortion_ids.cpu(), levels.cpu()].to(scores.device)
        if self.loss == "batch-ranking":
            margin = self.margin
            if image_targets is not None and self.target_margins:
                margin = target_margins(image_targets, self.margin, self.target_scale,
                                        TARGET_MARGIN_FLOOR * self.margin)
            objective = batch_ranking_loss(scores, reference_ids, distortion_ids, levels, margin,
                                           self.cross_reference)
        else:
            set_scores = scores.view(batch["levels"].shape)
            ranked = ranked_contrastive_loss if self.loss == "contrastive" else ranked_triplet_loss
            objective = ranked(set_scores, batch["levels"], self.margin)
        if image_targets is None or self.target_weight == 0:
            return objective
        return objective + self.target_weight * self.human_term(scores, image_targets, batch, distortion_ids.cpu(),
                                                                levels.cpu())

    def human_term(self, scores: torch.Tensor, targets: torch.Tensor, batch: dict[str, torch.Tensor],
                   distortion_ids: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """The human-target part of the loss for one batch (see the class docstring); ``targets``: (N,)
        MOS of the batch's images, NaN where none."""
        if self.target_loss == "regression":
            return target_regression_loss(scores, targets, self.target_scale)
        sets, per_set = batch["levels"].shape
        set_ids = torch.arange(sets, device=scores.device).repeat_interleave(per_set)
        noise = self.target_noise[distortion_ids, levels].to(scores.device)
        return target_ranking_loss(scores, targets, noise, set_ids, self.target_scale)
