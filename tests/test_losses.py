"""Losses against independent references: torch built-ins, nested loops, hand-computed cases."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from rankiqa.losses import (
    BatchRankingLoss,
    ContrastiveLoss,
    PairwiseRankingLoss,
    TripletLoss,
    batch_ranking_loss,
    contrastive_loss,
    pairwise_ranking_loss,
    ranked_contrastive_loss,
    ranked_triplet_loss,
    ranking_pair_mask,
    triplet_loss,
)


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _ranked_batch(generator, n_refs=3, n_dist=2, levels=6, copies=1):
    """Labels of ``copies`` sets per (reference, distortion) pair, shuffled, with random scores."""
    ref, dist, lev = zip(*itertools.product(range(n_refs), range(n_dist), range(levels)))
    ref, dist, lev = (torch.tensor(v * copies) for v in (ref, dist, lev))
    order = torch.randperm(len(ref), generator=generator)
    scores = torch.randn(len(ref), generator=generator, dtype=torch.float64) * 2
    return scores, ref[order], dist[order], lev[order]


def _nested_loop_batch_loss(scores, ref, dist, lev, margin, cross_reference):
    total, pairs = 0.0, 0
    for i in range(len(scores)):
        for j in range(len(scores)):
            if dist[i] == dist[j] and (cross_reference or ref[i] == ref[j]) and lev[i] < lev[j]:
                total += max(0.0, margin - (scores[i].item() - scores[j].item()))
                pairs += 1
    return total / pairs, pairs


def test_pairwise_matches_margin_ranking_loss(generator):
    better, worse = torch.randn(2, 50, generator=generator)
    for margin in (0.0, 0.5, 10.0):
        expected = F.margin_ranking_loss(better, worse, torch.ones(50), margin=margin)
        torch.testing.assert_close(pairwise_ranking_loss(better, worse, margin), expected)
        torch.testing.assert_close(PairwiseRankingLoss(margin)(better, worse), expected)


def test_pairwise_hand_computed_and_gradient():
    better = torch.tensor([3.0, 1.0], requires_grad=True)
    worse = torch.tensor([1.0, 1.5])
    loss = pairwise_ranking_loss(better, worse, margin=1.0)  # pairs: max(0, 1-2)=0, max(0, 1+0.5)=1.5
    assert loss.item() == pytest.approx(0.75)
    loss.backward()
    torch.testing.assert_close(better.grad, torch.tensor([0.0, -0.5]))


def test_pairwise_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ"):
        pairwise_ranking_loss(torch.zeros(2), torch.zeros(3))


@pytest.mark.parametrize("cross_reference", [False, True])
@pytest.mark.parametrize("copies", [1, 2])
def test_batch_ranking_matches_nested_loop(generator, cross_reference, copies):
    scores, ref, dist, lev = _ranked_batch(generator, copies=copies)
    expected, pairs = _nested_loop_batch_loss(scores, ref, dist, lev, 1.5, cross_reference)
    got = batch_ranking_loss(scores, ref, dist, lev, margin=1.5, cross_reference=cross_reference)
    assert got.item() == pytest.approx(expected, rel=1e-12)
    assert ranking_pair_mask(ref, dist, lev, cross_reference).sum().item() == pairs
    module = BatchRankingLoss(margin=1.5, cross_reference=cross_reference)
    torch.testing.assert_close(module(scores, ref, dist, lev), got)


def test_batch_ranking_pair_counts_and_normalisation():
    # 3 references x 2 distortions x 6 levels: 15 pairs per set, 6 sets. Cross-reference pairs any two
    # references (3 x 3 ordered combinations) of one type: 2 types x 15 level pairs x 9
    lev = torch.arange(6).repeat(6)
    dist = torch.arange(2).repeat_interleave(6).repeat(3)
    ref = torch.arange(3).repeat_interleave(12)
    assert ranking_pair_mask(ref, dist, lev).sum() == 6 * 15
    assert ranking_pair_mask(ref, dist, lev, cross_reference=True).sum() == 2 * 15 * 9
    # perfectly ordered scores 2 apart: every pair satisfied with margin 1 -> zero loss
    assert batch_ranking_loss(-2.0 * lev.double(), ref, dist, lev, margin=1.0) == 0
    # all scores equal: every valid pair costs exactly the margin, mean over pairs = margin
    assert batch_ranking_loss(torch.zeros(36), ref, dist, lev, margin=0.7).item() == pytest.approx(0.7)


def test_batch_ranking_gradient_matches_pairwise_on_the_same_pairs(generator):
    scores, ref, dist, lev = _ranked_batch(generator)
    scores.requires_grad_(True)
    batch_ranking_loss(scores, ref, dist, lev, margin=1.0).backward()
    grad_batch = scores.grad.clone()
    scores.grad = None
    better, worse = torch.nonzero(ranking_pair_mask(ref, dist, lev), as_tuple=True)
    pairwise_ranking_loss(scores[better], scores[worse], margin=1.0).backward()
    torch.testing.assert_close(grad_batch, scores.grad)


def test_batch_ranking_without_pairs_is_zero_with_gradient():
    scores = torch.randn(3, requires_grad=True)
    same = torch.zeros(3, dtype=torch.long)
    loss = batch_ranking_loss(scores, torch.arange(3), same, same, margin=1.0)
    assert loss.item() == 0
    loss.backward()
    assert torch.equal(scores.grad, torch.zeros(3))


def test_batch_ranking_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        batch_ranking_loss(torch.zeros(4), torch.zeros(4), torch.zeros(4), torch.zeros(3))


def test_contrastive_hand_computed_1d_and_nd():
    a = torch.tensor([0.0, 0.0, 0.0])
    b = torch.tensor([0.5, 0.5, 3.0])
    similar = torch.tensor([True, False, False])
    # similar: 0.5*0.25 ; dissimilar d=0.5 < m=2: 0.5*1.5^2 ; d=3 >= m: 0
    expected = (0.125 + 1.125 + 0.0) / 3
    assert contrastive_loss(a, b, similar, margin=2.0).item() == pytest.approx(expected)
    a2 = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    b2 = torch.tensor([[3.0, 4.0], [1.0, 2.0]])  # distances 5 and 1
    got = ContrastiveLoss(margin=2.0)(a2, b2, torch.tensor([1, 0]))
    assert got.item() == pytest.approx((0.5 * 25 + 0.5 * 1) / 2)


def test_triplet_matches_torch_and_hand_case(generator):
    anchor, positive, negative = torch.randn(3, 20, 8, generator=generator, dtype=torch.float64)
    expected = F.triplet_margin_loss(anchor, positive, negative, margin=0.5, eps=0.0)
    torch.testing.assert_close(triplet_loss(anchor, positive, negative, 0.5), expected)
    # 1-D: |0-1| - |0-3| + 1 = -1 -> 0 ; |0-2| - |0-1| + 1 = 2
    got = TripletLoss(margin=1.0)(torch.zeros(2), torch.tensor([1.0, 2.0]), torch.tensor([3.0, -1.0]))
    assert got.item() == pytest.approx(1.0)


def test_losses_have_finite_gradients_even_at_coinciding_embeddings():
    emb = torch.zeros(4, 3, requires_grad=True)
    (contrastive_loss(emb, emb.detach().clone(), torch.tensor([1, 0, 1, 0]), 1.0)
     + triplet_loss(emb, emb.detach().clone(), emb.detach().clone(), 1.0)).backward()
    assert torch.isfinite(emb.grad).all()


def test_ranked_triplet_equals_ranking_hinge_once_sign_is_right():
    # distorted scores all below pristine: triplet term == hinge over distorted pairs; sign term 0
    set_scores = torch.tensor([[10.0, 6.0, 5.5, 3.0, 2.5, 0.0]], dtype=torch.float64)
    set_levels = torch.arange(6)[None]
    pairs = [(i, j) for i in range(1, 6) for j in range(i + 1, 6)]
    hinge = sum(max(0.0, 1.0 - (set_scores[0, i] - set_scores[0, j]).item()) for i, j in pairs) / len(pairs)
    assert ranked_triplet_loss(set_scores, set_levels, margin=1.0).item() == pytest.approx(hinge)


def test_ranked_triplet_hand_case_with_the_sign_term():
    set_levels = torch.arange(3)[None]
    # one triplet, anchor pristine 0, positive (level 1) 2, negative (level 2) -1, margin 1.5:
    # relu(|0 - 2| - |0 + 1| + 1.5) = 2.5; sign term relu(1.5 - (0 - 2)) = 3.5, relu(1.5 - (0 + 1)) = 0.5 -> mean 2.0
    got = ranked_triplet_loss(torch.tensor([[0.0, 2.0, -1.0]]), set_levels, margin=1.5)
    assert got.item() == pytest.approx(2.5 + 2.0)


def test_ranked_contrastive_hand_case_and_sign_term():
    set_levels = torch.arange(3)[None]
    # all pairs dissimilar, margin 1.5: (0,1) d=2 -> 0, (0,2) d=1 -> 0.5*0.5^2, (1,2) d=3 -> 0; mean /3.
    # sign term, pristine 0 vs 2 and -1: relu(1.5-(0-2))=3.5, relu(1.5-(0+1))=0.5 -> mean 2.0
    got = ranked_contrastive_loss(torch.tensor([[0.0, 2.0, -1.0]]), set_levels, margin=1.5)
    assert got.item() == pytest.approx(0.125 / 3 + 2.0)
    with pytest.raises(ValueError, match="exactly one image of its lowest level"):
        ranked_contrastive_loss(torch.zeros(1, 3), torch.tensor([[0, 0, 1]]), margin=1.0)


@pytest.mark.parametrize("objective", [ranked_contrastive_loss, ranked_triplet_loss])
def test_ranked_objectives_are_finite_and_differentiable(generator, objective):
    set_scores = torch.randn(4, 6, generator=generator, requires_grad=True)
    loss = objective(set_scores, torch.arange(6).repeat(4, 1), margin=1.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(set_scores.grad).all() and set_scores.grad.abs().sum() > 0


def test_default_margin_is_1_and_pairs_stay_within_a_reference():
    better, worse = torch.tensor([0.5, 3.0]), torch.tensor([0.0, 0.0])
    # margin 1: max(0, 1 - 0.5) = 0.5 and max(0, 1 - 3) = 0 -> mean 0.25
    assert pairwise_ranking_loss(better, worse).item() == pytest.approx(0.25)
    assert PairwiseRankingLoss()(better, worse).item() == pytest.approx(0.25)
    # two references, one distortion, levels 0 and 1 each; scores equal: only the 2 within-reference pairs count
    ref, dist, lev = torch.tensor([0, 0, 1, 1]), torch.zeros(4, dtype=torch.long), torch.tensor([0, 1, 0, 1])
    scores = torch.tensor([0.0, -0.25, 5.0, 4.75])
    # within references: each pair is 0.25 apart -> max(0, 1 - 0.25) = 0.75; across references, pair (2, 1)
    # would add max(0, 1 - 5.25) = 0 and pair (0, 3) max(0, 1 + 4.75) = 5.75
    assert batch_ranking_loss(scores, ref, dist, lev).item() == pytest.approx(0.75)
    assert BatchRankingLoss()(scores, ref, dist, lev).item() == pytest.approx(0.75)
    assert BatchRankingLoss(cross_reference=True)(scores, ref, dist, lev).item() == pytest.approx((0.75 * 2 + 0 + 5.75) / 4)
    a, b = torch.zeros(2), torch.tensor([0.5, 2.0])
    # dissimilar, margin 1: 0.5 * (1 - 0.5)^2 = 0.125 and 0 -> mean 0.0625
    assert contrastive_loss(a, b, torch.tensor([False, False])).item() == pytest.approx(0.0625)
    assert ContrastiveLoss()(a, b, torch.tensor([False, False])).item() == pytest.approx(0.0625)
    # triplet, margin 1: |0 - 0.5| - |0 - 1| + 1 = 0.5
    assert triplet_loss(torch.zeros(1), torch.tensor([0.5]), torch.tensor([1.0])).item() == pytest.approx(0.5)
    assert TripletLoss()(torch.zeros(1), torch.tensor([0.5]), torch.tensor([1.0])).item() == pytest.approx(0.5)
    set_scores, set_levels = torch.tensor([[3.0, 2.5, 0.0]]), torch.arange(3)[None]
    for objective in (ranked_contrastive_loss, ranked_triplet_loss):
        assert objective(set_scores, set_levels).item() == pytest.approx(objective(set_scores, set_levels, margin=1.0).item())
        assert objective(set_scores, set_levels).item() != pytest.approx(objective(set_scores, set_levels, margin=2.0).item())


def test_small_distances_between_embeddings_are_exact():
    # distances below 1 (squared 0.36 and 0.09): 0.5 * 0.36 for the similar pair, 0.5 * (1 - 0.3)^2 for the other
    a = torch.zeros(2, 2, dtype=torch.float64)
    b = torch.tensor([[0.36, 0.48], [0.18, 0.24]], dtype=torch.float64)  # |b| = 0.6 and 0.3
    got = contrastive_loss(a, b, torch.tensor([True, False]), margin=1.0)
    assert got.item() == pytest.approx((0.5 * 0.36 + 0.5 * 0.49) / 2, rel=1e-12)
    # triplet in 2-D: d(a, p) = 0.3, d(a, n) = 0.6, margin 0.1 -> max(0, 0.3 - 0.6 + 0.1) = 0; margin 0.5 -> 0.2
    assert triplet_loss(a[:1], b[1:], b[:1], margin=0.5).item() == pytest.approx(0.2, rel=1e-12)


def test_a_batch_with_a_single_valid_pair_is_not_averaged_with_anything():
    # one reference, one distortion, levels 0 and 1: exactly one pair, hinge max(0, 1 - (0.2 - 0)) = 0.8
    ones = torch.zeros(2, dtype=torch.long)
    loss = batch_ranking_loss(torch.tensor([0.2, 0.0]), ones, ones, torch.tensor([0, 1]), margin=1.0)
    assert loss.item() == pytest.approx(0.8)
