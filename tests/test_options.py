"""One source of truth for options: the CLI's defaults and choices are the library's; one answer to
"which options may change on resume"; `train` and `rankiqa.devices` accept the same devices."""
from __future__ import annotations

import dataclasses

import click
import pandas as pd
import pytest
import torch

from rankiqa.cli import cli, main
from rankiqa.devices import RUNTIME_OPTIONS, check_device, resolve_device
from rankiqa.errors import InvalidOption
from rankiqa.finetune import FinetuneConfig, _config_dict
from rankiqa.train import LOSSES, SCHEDULES, TARGET_LOSSES, TrainConfig
from rankiqa.training.distributed import setup_distributed
from rankiqa.training.state import RESUMABLE_CHANGES, _config_differences


def options_of(name: str) -> dict[str, click.Option]:
    return {param.name: param for param in cli.get_command(None, name).params if isinstance(param, click.Option)}


def test_train_with_no_options_runs_the_library_default_config(tmp_path, monkeypatch):
    seen = []

    def fake_train(config, progress=True):
        seen.append(config)
        raise SystemExit(0)

    monkeypatch.setattr("rankiqa.train.train", fake_train)
    with pytest.raises(SystemExit):
        main(["train", "--pristine", str(tmp_path), "--out", str(tmp_path / "run")])
    assert seen == [TrainConfig(out=str(tmp_path / "run"), pristine=str(tmp_path))]
    options = options_of("train")
    assert tuple(options["loss"].type.choices) == LOSSES and tuple(options["schedule"].type.choices) == SCHEDULES
    assert tuple(options["target_loss"].type.choices) == TARGET_LOSSES


def test_finetune_and_benchmark_defaults_are_finetune_configs(tmp_path):
    from rankiqa.cli.finetune import finetune_config
    from rankiqa.finetune import HEAD_INITS, LOSSES as FINETUNE_LOSSES

    for command in ("finetune", "benchmark"):
        options = options_of(command)
        values = {name: options[name].default for name in
                  ("loss", "epochs", "batch_size", "lr", "val_fraction", "workers", "head_init", "device")}
        assert finetune_config(**values) == FinetuneConfig(), command
        assert tuple(options["loss"].type.choices) == FINETUNE_LOSSES
        assert tuple(options["head_init"].type.choices) == HEAD_INITS
        assert (options["patch_size"].default, options["patches"].default, options["seed"].default) == \
            (FinetuneConfig().patch_size, FinetuneConfig().eval_patches, FinetuneConfig().seed)


def test_score_defaults_are_the_scorers():
    from rankiqa.score import Scorer

    options = options_of("score")
    fields = {field.name: field.default for field in dataclasses.fields(Scorer)}
    for name in ("patches", "patch_size", "aggregate", "batch_size", "seed", "backend", "precision"):
        assert options[name].default == fields[name], name


def test_train_accepts_every_device_that_rankiqa_devices_accepts(tmp_path, monkeypatch):
    config = TrainConfig(out=str(tmp_path), pristine=str(tmp_path), device="mps")
    assert config.device == check_device("mps") == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert setup_distributed("mps")[1] == torch.device("mps")  # not silently the CPU
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(InvalidOption) as from_config:
        TrainConfig(out=str(tmp_path), pristine=str(tmp_path), device="tpu")
    with pytest.raises(InvalidOption) as from_devices:
        resolve_device("tpu")
    assert str(from_config.value) == str(from_devices.value) == \
        "device must be auto or a torch device (cpu, cuda, cuda:1, mps, ...), got 'tpu'"


def test_one_answer_to_which_options_may_change_on_resume(tmp_path):
    assert RUNTIME_OPTIONS == {"device", "workers", "threads"}
    assert RESUMABLE_CHANGES == RUNTIME_OPTIONS | {"resume", "out"}
    run = TrainConfig(out=str(tmp_path), pristine=str(tmp_path))
    saved = run.to_dict()
    assert _config_differences(saved, dataclasses.replace(run, device="cpu", workers=3, threads=2, resume=True)) == []
    assert _config_differences(saved, dataclasses.replace(run, lr=0.5, seed=1)) == ["lr", "seed"]

    frame = pd.DataFrame({"path": ["a.png"], "mos": [1.0]})
    base = FinetuneConfig(workers=0)

    def identity(config):
        return _config_dict(config, "tiny", (1.0, 5.0), frame, frame)

    assert identity(dataclasses.replace(base, device="cpu", workers=3)) == identity(base)
    assert identity(dataclasses.replace(base, lr=0.5)) != identity(base)
