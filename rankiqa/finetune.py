"""MOS fine-tuning: regress a ranking model's score onto the human scores of an IQA database.

Protocol (RankIQA's fine-tuning stage, with model selection made explicit):

* Targets: MOS normalised to [0, 1] with the training part's range,
  ``target = (mos - mos_low) / (mos_high - mos_low)`` (``mos`` is higher-is-better, see
  ``rankiqa.data``); the model's output is mapped back with the same range, so predictions and all
  reported metrics are on the database's original (higher-is-better) MOS scale.
* Training: one random ``patch_size`` crop per image per epoch (images whose short side is smaller
  are resized up first), L1 or L2 loss, Adam.
* Model selection: a validation part carved from the TRAINING references (content-disjoint,
  ``val_fraction`` of them); the epoch with the best validation SRCC is kept. The test part is
  only scored once, with the selected model.
* Scoring (validation and test): ``rankiqa.score`` protocol, mean of ``eval_patches`` seeded crops.

A run folder holds ``config.json``, ``last.pt`` (resumable state, rewritten every epoch),
``best.pt`` (a plain model checkpoint plus ``mos_range``), ``history.csv``, ``test_predictions.csv``
and ``metrics.json``. Re-running with the same configuration resumes, or returns the finished result.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from rankiqa.atomic import write_text_atomic
from rankiqa.csvio import write_csv_atomic  # also re-exported: rankiqa.finetune.write_csv_atomic
from rankiqa.devices import RUNTIME_OPTIONS, default_workers, loader_start_method, resolve_device
from rankiqa.errors import InvalidOption, UserError, check_choice
from rankiqa.imageio import MIN_SIDE, fit_to_patch, header_problem, read_for_scoring
from rankiqa.metrics import evaluate, srcc  # evaluate also re-exported: rankiqa.finetune.evaluate
from rankiqa.patches import crop_patches, patch_positions
from rankiqa.score import score_paths
from rankiqa.seeding import stable_seed
from rankiqa.training.loop import Callback, run_loop

LOSSES = ("l1", "l2")
HEAD_INITS = ("ridge", "none")
PREDICTION_COLUMNS = ("path", "reference", "distortion", "mos", "mos_raw", "score", "pred")


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning hyper-parameters (defaults sized for a GPU and a 224-px backbone).

    ``epochs``: passes over the training images; ``batch_size``: images per step; ``lr``: Adam
    learning rate; ``weight_decay``: L2 penalty; ``loss``: "l1" or "l2" on normalised MOS;
    ``patch_size``: crop side in pixels; ``val_fraction``: share of training references used for
    model selection (0 = keep the last epoch); ``eval_patches``: crops per image when scoring;
    ``seed``: everything random (validation carve, crops, shuffling, init of dropout);
    ``workers``: data-loading processes (default ``rankiqa.devices.default_workers()``, sized to the
    machine); ``device``: "auto" (CUDA when available), "cpu", "cuda", ...; ``head_init``:
    "ridge" fits the score head to the training targets by a linear probe before any gradient step
    (see ``init_head``), "none" keeps the checkpoint's head (the behaviour before this option).
    """

    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 5e-4
    loss: str = "l2"
    patch_size: int = 224
    val_fraction: float = 0.2
    eval_patches: int = 30
    seed: int = 0
    workers: int = dataclasses.field(default_factory=lambda: default_workers())
    device: str = "auto"
    head_init: str = "ridge"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patch_size", "eval_patches"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidOption(f"{name} must be a positive integer, got {value!r}", params=(name,))
        check_choice("loss", self.loss, LOSSES)
        if not 0 <= self.val_fraction < 1:
            raise InvalidOption(f"val_fraction must be in [0, 1), got {self.val_fraction}", params=("val_fraction",))
        check_choice("head_init", self.head_init, HEAD_INITS)
        if self.lr <= 0 or self.weight_decay < 0 or self.workers < 0:
            raise InvalidOption(f"lr must be > 0, weight_decay and workers >= 0, got lr={self.lr}, weight_decay="
                                f"{self.weight_decay}, workers={self.workers}", params=("lr", "weight_decay", "workers"))


@dataclass(frozen=True)
class FinetuneResult:
    """Test predictions (``PREDICTION_COLUMNS``; ``pred`` on the MOS scale) and their metrics."""

    run_dir: Path
    predictions: pd.DataFrame
    metrics: dict[str, Any]


class _CropDataset:
    """(image, normalised MOS) pairs; item ``i`` of epoch ``e`` is one seeded random crop.

    Item ``i`` is ``{"image": (3, P, P) float tensor in [0, 1], "target": normalised MOS}``; an image
    that cannot be decoded gives ``{"error": "skipped PATH: REASON"}`` instead of raising, so that a
    bad file read in a worker process is skipped and reported, not a worker traceback.
    """

    def __init__(self, paths: list[str], targets: np.ndarray, patch_size: int, seed: int):
        self.paths, self.targets, self.patch_size, self.seed = paths, targets, patch_size, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch

        try:
            image = fit_to_patch(read_for_scoring(self.paths[index]), self.patch_size)
        except UserError as exc:
            return {"error": f"skipped {exc}"}
        position = patch_positions(image.shape, 1, self.patch_size, stable_seed(self.seed, "crop", self.epoch, index))
        crop = crop_patches(image, position, self.patch_size)[0]
        tensor = torch.from_numpy(crop).permute(2, 0, 1).float().div_(255)
        return {"image": tensor, "target": torch.tensor(self.targets[index], dtype=torch.float32)}


def _collate_usable(items: list[dict[str, Any]]):
    """(images, targets) of the decodable items (None when there is none) and the error messages of the rest."""
    import torch

    usable = [item for item in items if "error" not in item]
    errors = [item["error"] for item in items if "error" in item]
    if not usable:
        return None, errors
    return (torch.stack([item["image"] for item in usable]), torch.stack([item["target"] for item in usable])), errors


class _SkipReport:
    """Prints each ``skipped PATH: REASON`` line once to stderr (above any progress bar)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, line: str) -> None:
        from tqdm import tqdm

        if line not in self.seen:
            self.seen.add(line)
            tqdm.write(line, file=sys.stderr)


def usable_images(frame: pd.DataFrame, log=print) -> pd.DataFrame:
    """The rows of ``frame`` whose image file looks decodable from its header (exists, is an image,
    both sides >= ``MIN_SIDE`` px); every other one is reported through ``log`` and left out."""
    keep = []
    for path in frame["path"]:
        problem = header_problem(path, min_side=MIN_SIDE)
        if problem is not None:
            log(f"skipped {path}: {problem}")
        keep.append(problem is None)
    return frame[np.array(keep, dtype=bool)] if len(frame) else frame


def _config_dict(config: FinetuneConfig, init: str, mos_range: tuple[float, float],
                 train: pd.DataFrame, test: pd.DataFrame) -> dict[str, Any]:
    """What identifies a run: everything but ``rankiqa.devices.RUNTIME_OPTIONS`` (``workers`` and
    ``device`` may change between resumptions)."""
    hyper_parameters = {k: v for k, v in dataclasses.asdict(config).items() if k not in RUNTIME_OPTIONS}
    return {"init": str(init), "finetune": hyper_parameters, "mos_range": list(mos_range),
            "n_train_images": len(train), "n_test_images": len(test)}


def _load_last(path: Path, device) -> dict[str, Any]:
    """A fine-tuning run's ``last.pt``, its entries checked; ``UserError`` naming it otherwise."""
    from rankiqa.checkpoint import check_entries, check_state_dict, load_checkpoint

    state = load_checkpoint(path, map_location=device)
    check_entries(state, str(path), "rankiqa fine-tuning checkpoint (last.pt)", {
        "model_state": dict, "optimizer_state": dict, "epoch": int, "best_srcc": (float, int),
        "best_state": dict, "history": list})
    check_state_dict(state["model_state"], str(path))
    check_state_dict(state["best_state"], str(path), "best_state")
    if state["epoch"] < 0:
        raise UserError(f"{path}: not a rankiqa fine-tuning checkpoint (epoch {state['epoch']} < 0)")
    return state


def finetune(train: pd.DataFrame, test: pd.DataFrame, init: str | os.PathLike, run_dir: str | os.PathLike,
             config: FinetuneConfig | None = None, log=None, callbacks: Sequence[Callback] = ()) -> FinetuneResult:
    """Fine-tune ``init`` (checkpoint path, ``"default"`` or backbone name) on ``train``; test on ``test``.

    ``train``/``test``: ``rankiqa.data`` frames (``path, reference, distortion, mos, mos_raw``); they
    must not share reference content (use ``rankiqa.data.make_splits``). Returns the test predictions
    and metrics (``rankiqa.metrics.all_metrics`` on the original MOS scale). Skipped images and other
    warnings go to ``log(line)``; without it each is printed once to stderr. ``callbacks``
    (``rankiqa.training.loop.Callback``) run after each epoch, after validation and ``last.pt``;
    their ``state`` is a ``FinetuneState``.
    """
    config = config or FinetuneConfig()
    from tqdm import tqdm

    run_dir = Path(run_dir)
    report = log if log is not None else _SkipReport()
    train, mos_range = _checked_inputs(train, test, report)
    settings = _config_dict(config, init, mos_range, train, test)
    finished = _finished_result(run_dir, settings)
    if finished is not None:
        return finished
    write_text_atomic(run_dir / "config.json", json.dumps(settings, indent=2) + "\n")
    run = _FinetuneRun(train, init, run_dir, mos_range, config, report)
    epochs = tqdm(range(run.state.step, config.epochs), desc=f"fine-tune {run_dir.name}", unit="epoch",
                  initial=run.state.step, total=config.epochs)
    run_loop(_quiet_epochs(epochs, config.workers, report), run.train_epoch, run.state,
             [_SelectBest(run), _SaveLast(run), *callbacks])
    write_csv_atomic(pd.DataFrame(run.state.history), run_dir / "history.csv")
    return run.test(test, settings)


def _checked_inputs(train: pd.DataFrame, test: pd.DataFrame, report) -> tuple[pd.DataFrame, tuple[float, float]]:
    """The usable training rows and their MOS range; ``UserError`` when none is usable, train and
    test share reference content, or the MOS is constant."""
    from rankiqa.data.splits import content_groups

    train = usable_images(train, report)
    if train.empty:
        raise UserError("no training image could be read (reasons above)")
    shared = set(content_groups(train)) & set(content_groups(test))
    if shared:
        raise UserError(f"train and test share {len(shared)} reference contents, e.g. {sorted(shared)[0]}")
    mos = train["mos"].to_numpy(np.float64)
    mos_range = (float(mos.min()), float(mos.max()))
    if mos_range[1] <= mos_range[0]:
        raise UserError("training MOS is constant: nothing to regress")
    return train, mos_range


def _finished_result(run_dir: Path, settings: dict[str, Any]) -> FinetuneResult | None:
    """The saved result when ``run_dir`` holds this finished run; ``UserError`` when it holds
    another configuration's run; None otherwise."""
    config_path = run_dir / "config.json"
    if config_path.exists() and json.loads(config_path.read_text()) != settings:
        raise InvalidOption(f"run_dir {run_dir} holds a run with a different configuration; choose another run_dir",
                            params=("run_dir",))
    if (run_dir / "metrics.json").exists() and (run_dir / "test_predictions.csv").exists():
        return FinetuneResult(run_dir, pd.read_csv(run_dir / "test_predictions.csv", keep_default_na=False,
                                                   dtype={"reference": str}),
                              json.loads((run_dir / "metrics.json").read_text()))
    return None


@dataclass
class FinetuneState:
    """What fine-tuning carries from epoch to epoch (saved in ``last.pt``): ``step`` epochs done,
    ``history`` (one row per epoch: train loss, validation SRCC), the best validation SRCC (higher
    is better) and its weights; ``loss``: the last epoch's mean training loss; ``seconds``: its
    wall time."""

    step: int = 0
    best_srcc: float = -np.inf
    best_state: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    loss: float = float("nan")
    seconds: float = 0.0


class _FinetuneRun:
    """One fine-tuning run: its parts (training and validation images, model, optimiser, state
    restored from ``last.pt`` if there is one) and the epoch, validate, checkpoint and test units."""

    def __init__(self, train: pd.DataFrame, init: str | os.PathLike, run_dir: Path, mos_range: tuple[float, float],
                 config: FinetuneConfig, report):
        import torch

        from rankiqa.data.splits import holdout
        from rankiqa.models import load_module

        self.run_dir, self.mos_range, self.config, self.report = run_dir, mos_range, config, report
        if config.val_fraction > 0:
            carve = holdout(train, config.val_fraction, stable_seed(config.seed, "validation"))
            fit_part, self.val_part = train.iloc[carve.train], train.iloc[carve.test]
        else:
            fit_part, self.val_part = train, train.iloc[:0]
        self.device = resolve_device(config.device)
        torch.manual_seed(stable_seed(config.seed, "init"))
        self.module = load_module(str(init)).to(self.device)
        self.optimizer = torch.optim.Adam(self.module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.state = self._restore()
        targets = (fit_part["mos"].to_numpy(np.float64) - mos_range[0]) / (mos_range[1] - mos_range[0])
        if self.state.step == 0 and config.head_init == "ridge":
            head = init_head(self.module, fit_part, targets, config, self.device, report)
            write_text_atomic(run_dir / "head_init.json", json.dumps(head, indent=2) + "\n")
        self.dataset = _CropDataset(fit_part["path"].tolist(), targets, config.patch_size, config.seed)
        self.loss_fn = torch.nn.L1Loss() if config.loss == "l1" else torch.nn.MSELoss()

    def _restore(self) -> FinetuneState:
        """The state saved in ``last.pt`` (model and optimiser loaded), or a fresh one."""
        from rankiqa.checkpoint import first_line

        path = self.run_dir / "last.pt"
        if not path.exists():
            return FinetuneState()
        saved = _load_last(path, self.device)
        try:
            self.module.load_state_dict(saved["model_state"])
            self.optimizer.load_state_dict(saved["optimizer_state"])
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise UserError(f"{path}: the saved state does not fit this run ({first_line(exc)})") from None
        return FinetuneState(saved["epoch"] + 1, saved["best_srcc"], saved["best_state"], list(saved["history"]))

    def train_epoch(self, epoch: int) -> None:
        """One pass over the training images (one seeded crop each, seeded shuffle); sets ``state.loss``."""
        import torch

        config = self.config
        self.dataset.epoch = epoch
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=config.batch_size, shuffle=True,
                                             num_workers=config.workers,
                                             multiprocessing_context=loader_start_method(config.workers),
                                             drop_last=len(self.dataset) > config.batch_size,
                                             collate_fn=_collate_usable,
                                             generator=torch.Generator().manual_seed(stable_seed(config.seed, "shuffle", epoch)))
        self.module.train()
        losses = []
        for batch, errors in loader:
            for line in errors:
                self.report(line)
            if batch is None:
                continue
            images, targets = batch
            self.optimizer.zero_grad()
            loss = self.loss_fn(self.module(images.to(self.device)), targets.to(self.device))
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
        if not losses:
            raise UserError("no training image could be decoded (reasons above)")
        self.state.loss = float(np.mean(losses))

    def save_last(self) -> None:
        """``last.pt``: the model, optimiser and state after ``state.step`` epochs."""
        from rankiqa.checkpoint import save_checkpoint

        state = self.state
        save_checkpoint(self.run_dir / "last.pt", {
            "model_config": dict(self.module.config), "model_state": self.module.state_dict(),
            "optimizer_state": self.optimizer.state_dict(), "epoch": state.step - 1, "best_srcc": float(state.best_srcc),
            "best_state": state.best_state, "history": state.history})

    def test(self, test: pd.DataFrame, settings: dict[str, Any]) -> FinetuneResult:
        """Load the selected weights, save ``best.pt``, score the test images once and write
        test_predictions.csv and metrics.json (``last.pt`` is then removed: the run is finished)."""
        from rankiqa.checkpoint import save_checkpoint

        best_state, run_dir, config = self.state.best_state, self.run_dir, self.config
        self.module.load_state_dict(best_state)
        save_checkpoint(run_dir / "best.pt", {"model_config": dict(self.module.config), "model_state": best_state,
                                               "mos_range": list(self.mos_range), "finetune": settings})
        scores = score_paths(self.module, test["path"].tolist(), config.eval_patches, config.patch_size, config.seed,
                             self.device, desc=f"test {run_dir.name}", log=self.report)
        predictions = test[list(PREDICTION_COLUMNS[:5])].reset_index(drop=True)
        predictions["score"] = scores
        predictions["pred"] = self.mos_range[0] + scores * (self.mos_range[1] - self.mos_range[0])
        metrics = evaluate(predictions)
        write_csv_atomic(predictions, run_dir / "test_predictions.csv")
        write_text_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        (run_dir / "last.pt").unlink(missing_ok=True)
        return FinetuneResult(run_dir, predictions, metrics)


class _SelectBest(Callback):
    """After each epoch: the validation SRCC, a history row, and the weights kept when they are the
    best so far (every epoch's replace the last when there is no validation part)."""

    def __init__(self, run: _FinetuneRun):
        self.run = run

    def on_step_end(self, state: FinetuneState) -> None:
        run = self.run
        val_srcc = _validation_srcc(run.module, run.val_part, run.config, run.device, run.report)
        state.history.append({"epoch": state.step - 1, "train_loss": state.loss, "val_srcc": val_srcc})
        if state.best_state is None or len(run.val_part) == 0 or val_srcc > state.best_srcc:
            state.best_srcc = val_srcc if len(run.val_part) else state.best_srcc
            state.best_state = {k: v.detach().cpu().clone() for k, v in run.module.state_dict().items()}


class _SaveLast(Callback):
    """``last.pt`` after every epoch."""

    def __init__(self, run: _FinetuneRun):
        self.run = run

    def on_step_end(self, state: FinetuneState) -> None:
        self.run.save_last()


def init_head(module, frame: pd.DataFrame, targets: np.ndarray, config: FinetuneConfig, device: str,
              log=None) -> dict[str, Any]:
    """Set ``module.head`` to a linear probe of the frozen features onto ``targets`` (normalised MOS).

    Features: mean ``extract_features`` over the scoring protocol's ``eval_patches`` seeded crops
    (``rankiqa.probe.patch_features``); the head is linear, so the model's score under that protocol
    is exactly the probe's prediction. Ridge with alpha by inner cross-validation over ``frame``'s
    references (``rankiqa.probe.fit_probe``). Returns what was fitted (alpha, images, training RMSE).
    """
    import torch

    from rankiqa.data.splits import content_groups
    from rankiqa.probe import fit_probe, patch_features

    features = patch_features(module, frame["path"].tolist(), config.eval_patches, config.patch_size, config.seed,
                              device, log)
    usable = np.all(np.isfinite(features), axis=1)
    if usable.sum() < 2:
        raise UserError(f"head initialisation: only {int(usable.sum())} training image(s) could be read")
    probe = fit_probe(features[usable], targets[usable], content_groups(frame.iloc[np.flatnonzero(usable)]),
                      seed=stable_seed(config.seed, "head_init"))
    weights, bias = probe.raw_weights()
    with torch.no_grad():
        module.head.weight.copy_(torch.as_tensor(weights, dtype=module.head.weight.dtype).reshape(1, -1))
        module.head.bias.fill_(bias)
    fitted = probe.predict(features[usable])
    return {"method": "ridge on mean patch features", "alpha": probe.alpha, "n_images": int(usable.sum()),
            "train_rmse_normalised": float(np.sqrt(np.mean((fitted - targets[usable]) ** 2)))}


def _quiet_epochs(epochs, workers: int, report):
    """Yield ``epochs`` with torch's "excessive worker creation" warning (raised by every epoch's
    DataLoader) silenced; when ``workers`` exceeds the CPUs available it is reported once instead."""
    import warnings

    from rankiqa.devices import available_cpus

    if workers > available_cpus():
        report(f"--workers {workers} is more than the {available_cpus()} CPU(s) this process may use; "
               "data loading may be slow")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="This DataLoader will create")
        yield from epochs


def _validation_srcc(module, val_part: pd.DataFrame, config: FinetuneConfig, device: str, report) -> float:
    if len(val_part) == 0:
        return float("nan")
    scores = score_paths(module, val_part["path"].tolist(), config.eval_patches, config.patch_size, config.seed,
                         device, log=report)
    valid = np.isfinite(scores)
    try:
        return srcc(scores[valid], val_part["mos"].to_numpy()[valid])
    except ValueError:
        return float("-inf")
