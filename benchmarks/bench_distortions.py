"""Speed of every distortion type on a 512x384 RGB image, one thread.

Prints, per type, the median milliseconds of one ``apply`` call at each level (over --repeats
runs), the sum over the 5 levels, and the median time of one ranked set made with
``apply_levels`` (the way generate and train make them; JPEG2000 encodes once per set), then the
totals for all types x 5 levels (goals: sets <= 1.0 s, every single call <= 60 ms), then one ``compose_levels`` call (all 5
levels of a chain) for a few chains. If the PyPI package
`imagecorruptions` is importable (install it in a separate throwaway venv and run this script with
that venv's python and PYTHONPATH pointing at this repo), it also times the corruptions both
libraries have and prints the per-image ratio.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_distortions.py
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import distortions  # noqa: E402

IMAGE = Path(__file__).resolve().parents[1] / "rankiqa" / "assets" / "images" / "kodim23.png"
WIDTH, HEIGHT = 512, 384
GOAL_TOTAL_S, GOAL_CALL_MS = 1.0, 60.0
COMPOSE_CHAINS = (("gaussian_blur", "jpeg"), ("gaussian_blur", "white_noise"), ("gaussian_blur", "jpeg", "white_noise"))
# imagecorruptions name -> ours (same kind of corruption, 5 severities each)
SHARED_CORRUPTIONS = {
    "gaussian_noise": "white_noise",
    "impulse_noise": "impulse_noise",
    "defocus_blur": "lens_blur",
    "motion_blur": "motion_blur",
    "brightness": "mean_shift_up",
    "contrast": "contrast_decrease",
    "pixelate": "pixelate",
    "jpeg_compression": "jpeg",
    "speckle_noise": "multiplicative_noise",
    "gaussian_blur": "gaussian_blur",
    "saturate": "color_saturation_increase",
}


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def test_image() -> np.ndarray:
    with Image.open(IMAGE) as picture:
        rgb = np.asarray(picture.convert("RGB"))
    return cv2.resize(rgb, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)


def bench_ours(image: np.ndarray, repeats: int) -> dict[str, list[float]]:
    return {
        name: [median_ms(lambda: distortions.apply(image, name, level, seed=0), repeats) for level in range(1, 6)]
        for name in distortions.names()
    }


def bench_sets(image: np.ndarray, repeats: int) -> dict[str, float]:
    """ms per ranked set (``apply_levels``, all 5 levels) of every type."""
    return {name: median_ms(lambda: distortions.apply_levels(image, name, seed=0), repeats) for name in distortions.names()}


def bench_imagecorruptions(image: np.ndarray, repeats: int) -> dict[str, list[float]] | None:
    """ms per call of every imagecorruptions corruption that runs here (some fail with new scikit-image)."""
    try:
        from imagecorruptions import corrupt, get_corruption_names
    except ImportError as exc:
        print(f"\nimagecorruptions: skipped (not importable here: {exc})")
        return None
    np.random.seed(0)
    timings: dict[str, list[float]] = {}
    for name in get_corruption_names("all"):
        try:
            timings[name] = [
                median_ms(lambda: corrupt(image, corruption_name=name, severity=level), repeats) for level in range(1, 6)
            ]
        except Exception as exc:  # noqa: BLE001 - a broken corruption in the other library is reported, not fatal
            print(f"imagecorruptions {name}: fails here ({type(exc).__name__}: {exc}), left out")
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per (type, level); the median is kept")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    image = test_image()
    ours = bench_ours(image, args.repeats)
    sets = bench_sets(image, args.repeats)
    print(f"distortions on a {WIDTH}x{HEIGHT} RGB image, 1 thread, median of {args.repeats} runs "
          f"(ms per apply call; 'set': one apply_levels call, all 5 levels)")
    print(f"{'type':28s} {'L1':>6s} {'L2':>6s} {'L3':>6s} {'L4':>6s} {'L5':>6s} {'5 levels':>9s} {'set':>7s}")
    for name, times in ours.items():
        flag = "  > goal" if max(times) > GOAL_CALL_MS else ""
        print(f"{name:28s} " + " ".join(f"{t:6.1f}" for t in times) + f" {sum(times):9.1f} {sets[name]:7.1f}{flag}")
    total = sum(sum(times) for times in ours.values())
    total_sets = sum(sets.values())
    slowest = max(ours, key=lambda name: max(ours[name]))
    print(f"\nall {len(ours)} types x 5 levels as ranked sets (apply_levels): {total_sets / 1000:.2f} s "
          f"(goal <= {GOAL_TOTAL_S:.1f} s); as 5 separate apply calls each: {total / 1000:.2f} s; "
          f"slowest call: {slowest} {max(ours[slowest]):.1f} ms (goal <= {GOAL_CALL_MS:.0f} ms)")
    print(f"\n{'compose_levels chain':40s} {'ms per call (5 levels)':>22s}")
    for chain in COMPOSE_CHAINS:
        ms = median_ms(lambda: distortions.compose_levels(image, chain, seed=0), args.repeats)
        print(f"{' -> '.join(chain):40s} {ms:22.1f}")
    theirs = bench_imagecorruptions(image, max(1, args.repeats // 2))
    if theirs is None:
        return
    print(f"\n{'imagecorruptions':20s} {'ours':28s} {'theirs ms':>10s} {'ours ms':>8s} {'ratio':>6s}  (5 levels)")
    shared = {name: ours_name for name, ours_name in SHARED_CORRUPTIONS.items() if name in theirs}
    for name, ours_name in shared.items():
        their_ms, our_ms = sum(theirs[name]), sum(ours[ours_name])
        print(f"{name:20s} {ours_name:28s} {their_ms:10.1f} {our_ms:8.1f} {their_ms / our_ms:6.1f}x")
    their_shared = sum(sum(theirs[n]) for n in shared)
    our_shared = sum(sum(ours[n]) for n in shared.values())
    print(f"{'shared types':49s} {their_shared:10.1f} {our_shared:8.1f} {their_shared / our_shared:6.1f}x")
    their_total = sum(sum(t) for t in theirs.values())
    print(f"per image, every working type x 5 levels: imagecorruptions {len(theirs)} types {their_total / 1000:.2f} s, "
          f"ours {len(ours)} types {total / 1000:.2f} s ({their_total / total:.1f}x)")


if __name__ == "__main__":
    main()
