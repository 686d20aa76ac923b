"""Every integer setting of `TrainConfig` is refused by name when out of range, before anything is
written: counts, sizes and periods below 1, the 0-means-off ones below 0. The walk finds every
integer field, so a new one must be put in one of the lists."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from depthart_core.cli import main
from depthart_core.training.config import (
    POSITIVE_INTS,
    SEEDS,
    ZERO_MEANS_OFF,
    TrainConfig,
    load_train_config,
)

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "training" / "configs" / "tiny_depthart.yaml"


def _int_fields(cls: type = TrainConfig, prefix: str = "") -> list[str]:
    """Dotted names of every int (not bool) field, nested dataclasses included."""
    names = []
    defaults = cls()
    for f in dataclasses.fields(cls):
        value = getattr(defaults, f.name)
        if dataclasses.is_dataclass(value):
            names += _int_fields(type(value), f"{prefix}{f.name}.")
        elif isinstance(value, int) and not isinstance(value, bool):
            names.append(f"{prefix}{f.name}")
    return names


def test_every_integer_field_has_a_range():
    fields = _int_fields()
    lists = [*POSITIVE_INTS, *ZERO_MEANS_OFF, *SEEDS]
    assert sorted(lists) == sorted(fields)  # each in exactly one list, none forgotten
    assert len(fields) > 10 and {"ckpt_every", "val_every", "data.val_count"} <= set(fields)


@pytest.mark.parametrize("name", [*POSITIVE_INTS, *ZERO_MEANS_OFF])
def test_out_of_range_is_refused_by_name(name):
    low = 1 if name in POSITIVE_INTS else 0
    for bad in (low - 1, -5):
        with pytest.raises(ValueError) as exc:
            load_train_config(CONFIG, [f"{name}={bad}"])
        assert str(exc.value) == f"{name} must be >= {low}, got {bad}"
    load_train_config(CONFIG, [f"{name}={low}"])  # the bound itself is accepted


@pytest.mark.parametrize("name", SEEDS)
def test_seeds_may_be_any_integer(name):
    for value in (-3, 0):
        cfg = load_train_config(CONFIG, [f"{name}={value}"])
        for part in name.split("."):  # data.seed -> cfg.data.seed
            cfg = getattr(cfg, part)
        assert cfg == value


@pytest.mark.parametrize("setting", ["ckpt_every=0", "val_every=0", "log_every=-1", "steps=-5"])
def test_cli_refuses_before_writing_anything(setting, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--config", str(CONFIG), "--out", str(out), "--set", setting]
    assert main(argv) == 1
    name, value = setting.split("=")
    err = capsys.readouterr().err
    assert err.startswith(f"depthart train: error: {name} must be >= 1, got {value}")
    assert err.count("\n") == 1 and not out.exists()  # no folder, lock or config.json
