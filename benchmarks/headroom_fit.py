"""Frozen-feature headroom for the human-target scale (issue 9), step 2 of 2: refit the linear head.

On the features cached by `headroom_extract.py` in DIR, refit only the score head (Adam on the
training losses of `rankiqa train --targets kadid --target-margins`: within-set ranking with
target-following margins, cross-set target ranking, optional target regression) and print, for the
current head and each refit: cross-type SRCC with the targets on Kodak24 (scoring protocol),
within-set SRCC (840 sets, 160 px crops; and at the scoring protocol) and the cross-type SRCC on the
training photos. Each SPEC is keyword arguments of `fit`, e.g. "within_w=3,target_w=1".

    PYTHONPATH=. .venv/bin/python -W ignore benchmarks/headroom_fit.py DIR rankiqa/assets/default.pt "target_w=1" "within_w=3,target_w=1"
"""
import sys, numpy as np, torch
from scipy.stats import spearmanr
from rankiqa.calibration import load_targets, target_matrix
from rankiqa.score import load_module
from rankiqa.losses import batch_ranking_loss, target_margins, target_ranking_loss, target_regression_loss
torch.manual_seed(0)
d = sys.argv[1]
module = load_module(sys.argv[2] if len(sys.argv) > 2 else "rankiqa/assets/default.pt").eval()
W0 = module.head.weight.detach().double().numpy().ravel(); b0 = float(module.head.bias)
table = load_targets()
def tmat(names):
    u = sorted(set(names)); mos, sd = target_matrix(u, table); ix = {n: i for i, n in enumerate(u)}
    r = [ix[n] for n in names]; return mos[r], sd[r]
K = np.load(f"{d}/kodak.npz"); Wn = np.load(f"{d}/within.npz")
kt, _ = tmat(K["dist"])
def evaluate(w, b, label):
    s = K["feats"] @ w + b  # (sets, 6)
    m = np.isfinite(kt); m[:, 0] = False
    m0 = np.isfinite(kt)
    cross = spearmanr(s[m], kt[m])[0]
    sw = Wn["feats"] @ w + b
    within = np.nanmean([spearmanr(row, -np.arange(6))[0] for row in sw])
    wk = np.nanmean([spearmanr(row, -np.arange(6))[0] for row in s])
    print(f"{label:30s} cross {cross:.3f}  within160 {within:.4f}  withinKodak5x224 {wk:.4f}", flush=True)
    return cross, within
evaluate(W0, b0, "current head")
def cell_means(w, b):
    """SRCC of the per-(type, level) mean score over the photos, and each type's mean residual
    (target - linear fit of the cell means): content averaged out, what is left is the type's place."""
    s = K["feats"] @ w + b
    names = sorted(set(K["dist"])); means, targets, kinds = [], [], []
    for name in names:
        rows = K["dist"] == name
        for level in range(1, 6):
            if np.isfinite(kt[rows, level]).all():
                means.append(s[rows, level].mean()); targets.append(kt[rows, level][0]); kinds.append(name)
    means, targets, kinds = np.array(means), np.array(targets), np.array(kinds)
    residual = targets - np.polyval(np.polyfit(means, targets, 1), means)
    print(f"{'current head':30s} cell-mean cross {spearmanr(means, targets)[0]:.3f} over {len(means)} cells")
    per_type = sorted((residual[kinds == k].mean(), k) for k in set(kinds))
    print("mean residual (MOS) per type:", ", ".join(f"{k} {r:+.2f}" for r, k in per_type))
cell_means(W0, b0)
if len(sys.argv) > 3 and sys.argv[3] == "base": sys.exit()
T = np.load(f"{d}/train.npz"); X = T["feats"]; tt, ts = tmat(T["dist"])
# feature standardisation for conditioning
mu = X.reshape(-1, X.shape[-1]).mean(0); sd = X.reshape(-1, X.shape[-1]).std(0) + 1e-6
def fit(target_w=1.0, within_w=1.0, reg_w=0.0, l2=1e-3, steps=3000, sets_per_batch=64, scale=1.5, anchor=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    Xt = torch.from_numpy((X - mu) / sd).float(); tT = torch.from_numpy(tt).float(); sT = torch.from_numpy(ts).float()
    w = torch.nn.Parameter(torch.from_numpy(W0 * sd).float()); b = torch.nn.Parameter(torch.tensor(float(b0 + W0 @ mu)))
    w_init = w.detach().clone()
    opt = torch.optim.Adam([w, b], lr=1e-3)
    n = len(Xt); levels = torch.arange(6).repeat(sets_per_batch)
    for step in range(steps):
        idx = torch.randint(n, (sets_per_batch,), generator=g)
        x = Xt[idx].flatten(0, 1); s = x @ w + b
        t = tT[idx].flatten(); ns = sT[idx].flatten()
        setid = torch.arange(sets_per_batch).repeat_interleave(6)
        margins = target_margins(t, 1.0, scale, 0.2)
        loss = within_w * batch_ranking_loss(s, setid, setid, levels, margin=margins)
        loss = loss + target_w * target_ranking_loss(s, t, ns, setid, scale=scale)
        if reg_w: loss = loss + reg_w * target_regression_loss(s, t, scale=scale)
        loss = loss + l2 * (w ** 2).sum() + anchor * ((w - w_init) ** 2).sum()
        opt.zero_grad(); loss.backward(); opt.step()
    wn = w.detach().double().numpy() / sd; bn = float(b) - wn @ mu
    return wn, bn
def train_cross(w, b):
    s = X @ w + b; m = np.isfinite(tt); m[:, 0] = False
    return spearmanr(s[m], tt[m])[0]
print(f"{'current head':30s} training-photo cross {train_cross(W0, b0):.3f}")
for spec in sys.argv[3:]:
    kw = eval(f"dict({spec})")
    w, b = fit(**kw)
    evaluate(w, b, spec)
    print(f"{spec:30s} training-photo cross {train_cross(w, b):.3f}")
