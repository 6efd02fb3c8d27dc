"""Frozen-feature headroom of a model for the human-target scale (issue 9), step 1 of 2: cache features.

Caches the pooled backbone features (before the score head) of CHECKPOINT in OUT/: `train.npz`
(N random training photos of runs/pool x 35 types x 6 images, one 160 px crop per set, as in
training), `within.npz` (all 840 Kodak24 sets, 160 px crops, seed 0: the within-set protocol of
compare_models.py) and `kodak.npz` (every Kodak24 (photo, type, level 0-5) image: mean features of 5
seeded 224 px crops: the scoring protocol; with a linear head, mean score = head(mean features)).
Then `headroom_fit.py` refits the linear head on the training features and evaluates it.

    PYTHONPATH=. .venv/bin/python benchmarks/headroom_extract.py rankiqa/assets/default.pt OUT 240 1 kodak val train

Arguments: CHECKPOINT OUT N_PHOTOS EPOCHS PARTS...; run from the repository root, runs/pool as made by
benchmarks/train_default.sh. About 20 min on 2 cores.
"""
import sys, time, numpy as np, torch
from pathlib import Path
import distortions
from rankiqa.data.ranked import RankedSets
from rankiqa.generate import distortion_seed
from rankiqa.imageio import read_rgb
from rankiqa.score import load_module, _seeded_patches

torch.set_num_threads(2)
ckpt, out, n_photos, epochs = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
module = load_module(ckpt).eval()
types = distortions.names(composed=False)

@torch.no_grad()
def feats(x):
    return torch.cat([module.extract_features(x[i:i + 64]) for i in range(0, len(x), 64)]).numpy()

def sets_features(ds, indices, label):
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, indices), batch_size=6, num_workers=1)
    F, R, D = [], [], []
    t = time.time()
    for i, batch in enumerate(loader):
        x = batch["images"].flatten(0, 1)
        F.append(feats(x).reshape(-1, 6, module.feature_dim)); R += batch["reference_id"].tolist(); D += batch["distortion_id"].tolist()
        if i % 50 == 0: print(label, i * 6, len(indices), f"{time.time() - t:.0f}s", flush=True)
    return np.concatenate(F), np.array(R), np.array(D)

if "train" in sys.argv[5:]:
    pool = RankedSets("runs/pool", patch_size=160, seed=0, max_side=512)
    rng = np.random.default_rng(1)
    refs = sorted(rng.choice(len(pool.references), n_photos, replace=False))
    blocks = []
    for epoch in range(epochs):
        pool.set_epoch(100 + epoch)
        idx = [r * len(pool.distortion_names) + d for r in refs for d in range(len(pool.distortion_names))]
        blocks.append(sets_features(pool, idx, f"train e{epoch}"))
    F = np.concatenate([b[0] for b in blocks]); R = np.concatenate([b[1] for b in blocks]); D = np.concatenate([b[2] for b in blocks])
    np.savez(out / "train.npz", feats=F, ref=R, dist=np.array(pool.distortion_names)[D])

if "val" in sys.argv[5:]:
    val = RankedSets("../shared/data/pristine/val", patch_size=160, seed=0, max_side=512)
    F, R, D = sets_features(val, list(range(len(val))), "within")
    np.savez(out / "within.npz", feats=F, ref=R, dist=np.array(val.distortion_names)[D])

if "kodak" in sys.argv[5:]:
    photos = sorted(Path("../shared/data/pristine/val").glob("*.png"))
    F, P, T = [], [], []
    t = time.time()
    for p in photos:
        rgb = read_rgb(p)
        ref = feats(torch.from_numpy(_seeded_patches(rgb, 5, 224, 0)).permute(0, 3, 1, 2).float().div(255)).mean(0)
        for name in types:
            lv = distortions.apply_levels(rgb, name, seed=distortion_seed(0, p.name, name))
            row = [ref]
            for im in lv:
                row.append(feats(torch.from_numpy(_seeded_patches(im, 5, 224, 0)).permute(0, 3, 1, 2).float().div(255)).mean(0))
            F.append(np.stack(row)); P.append(p.name); T.append(name)
        print("kodak", p.name, f"{time.time() - t:.0f}s", flush=True)
    np.savez(out / "kodak.npz", feats=np.stack(F), photo=np.array(P), dist=np.array(T))
