"""torch.hub entry point: ``torch.hub.load("path/to/rankiqa", "rankiqa", source="local")``.

Returns the same ``torch.nn.Module`` as ``rankiqa.metric(...)``: (N, 3, H, W) float RGB in [0, 1] ->
(N,) differentiable quality scores, higher is better (``lower_better = False``).
"""
dependencies = ["torch", "torchvision", "numpy", "scipy", "PIL", "cv2", "pandas", "click", "tqdm", "matplotlib"]


def rankiqa(name="default", device=None, scale="raw", **options):
    """The rankiqa quality metric (see ``rankiqa.metric`` and docs/metric.md): ``name`` is
    "default" (the bundled model) or a checkpoint path; ``scale`` "raw" or "calibrated";
    ``options``: ``mode`` ("whole" or "grid"), ``patch_size``."""
    from rankiqa.torch_metric import metric

    return metric(name, device=device, scale=scale, **options)
