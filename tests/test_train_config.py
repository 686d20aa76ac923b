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
    parse_set,
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


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("model_overrides.tokenizer.vocab_size=0", "tokenizer.vocab_size must be an int >= 1"),
        ("model_overrides.tokenizer.share_quant_resi=0", "share_quant_resi must be an int >= 1"),
        ("model_overrides.tokenizer.ch=0", "tokenizer.ch must be an int >= 1, got 0"),
        ("model_overrides.tokenizer.dropout=1.5", "tokenizer.dropout must be in [0, 1)"),
        ("model_overrides.transformer.depth=0", "transformer.depth must be an int >= 1, got 0"),
        ("model_overrides.transformer.width=-64", "transformer.width must be an int >= 0"),
        ("model_overrides.transformer.mlp_ratio=0", "transformer.mlp_ratio must be > 0"),
        ("model_overrides.transformer.drop_path_rate=1.5", "drop_path_rate must be in [0, 1)"),
        ("model_overrides.transformer.tau=.nan", "transformer.tau must be finite and > 0"),
        ("soft_latent=.nan", "soft_latent must be finite and >= 0, got nan"),
        ("aux_latent=-5", "aux_latent must be finite and >= 0, got -5"),
        ("data.max_invalid_fraction=2", "data.max_invalid_fraction must be in [0, 1], got 2"),
        ("data.synth.camera_height=0.5", "camera_height must be 2 finite numbers, got 0.5"),
        ("data.synth.lights=[1.5,2]", "lights must be 2 whole numbers, got (1.5, 2)"),
        ("hflip=0.5", "hflip=0.5 needs transformer.image_prefix 'cnn'"),
    ],
)
def test_impossible_settings_are_one_line_before_anything_is_written(
    setting, message, tmp_path, capsys
):
    """Each was accepted (a model with no blocks trained), crashed with a traceback
    (ZeroDivisionError), or was refused only at the first step, after the pool was rendered."""
    out = tmp_path / "run"
    argv = ["train", "--config", str(CONFIG), "--out", str(out), "--set", setting]
    argv += ["--set", "data.pool_size=0", "--set", "steps=1", "--set", "batch_size=1"]
    argv += ["--set", "random_tokenizer_ok=true"]  # not refused for its missing init_checkpoint
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("depthart train: error: ") and message in err, err
    assert err.count("\n") == 1 and not out.exists()


def test_yaml_1_2_numbers_in_lists_and_files_and_a_home_in_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = load_train_config(None, ["data.synth.ambient=[0.1,1e0]", "data.root=~/frames"])
    assert cfg.data.synth["ambient"] == [0.1, 1.0] and cfg.data.root == f"{tmp_path}/frames"
    yml = tmp_path / "c.yaml"
    yml.write_text("optim:\n  lr: 1e-4\ndata:\n  pool_cache: ~/pool.safetensors\n")
    cfg = load_train_config(yml)
    assert cfg.optim.lr == 1e-4 and cfg.data.pool_cache == f"{tmp_path}/pool.safetensors"


def test_set_reads_numbers_as_a_command_line_means_them():
    """YAML 1.1 read 010 as 8 (octal), 08 as a string and 1:30 as 90 (base 60)."""
    got = parse_set(["data.seed=010", "seed=08", "a=1:30", "b=0", "c=-012", "d=0x1F"])
    assert got == {"data": {"seed": 10}, "seed": 8, "a": "1:30", "b": 0, "c": -12, "d": 31}
    # inside lists too (010 was still 8 there, 08 a string)
    assert parse_set(["l=[1e-4, 010, 08, 1:30, 0o17]"]) == {"l": [1e-4, 10, 8, "1:30", 15]}


def test_malformed_yaml_is_one_line_naming_the_file_or_the_set_item(tmp_path, capsys):
    """A tab-indented config file or an unclosed --set list printed yaml.scanner's traceback."""
    tabbed = tmp_path / "tabbed.yaml"
    tabbed.write_text("stage: transformer\n\tsteps: 3\n")
    with pytest.raises(ValueError, match=rf"training config {tabbed}: invalid YAML at line 2, "):
        load_train_config(tabbed)
    bad_set = "data.synth.camera_height=[0.3,0.6"
    with pytest.raises(ValueError, match=r"--set 'data\.synth\.camera_height=\[0\.3,0\.6': "):
        load_train_config(CONFIG, [bad_set])
    for argv in (["--config", str(tabbed)], ["--config", str(CONFIG), "--set", bad_set]):
        out = tmp_path / "run"
        assert main(["train", *argv, "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("depthart train: error: ") and "invalid YAML at " in err, err
        assert err.count("\n") == 1 and not out.exists()


def test_an_empty_value_is_an_empty_path(tmp_path):
    """`--set init_checkpoint=` (and `root:` in a file) read as null: "must be a string, got
    None"; a string setting whose default is "" takes it as "", the others still refuse it."""
    cfg = load_train_config(CONFIG, ["init_checkpoint=", "data.val_root="])
    assert cfg.init_checkpoint == "" and cfg.data.val_root == ""
    yml = tmp_path / "c.yaml"
    yml.write_text("stage: transformer\ndata:\n  root:\n")
    assert load_train_config(yml).data.root == ""
    with pytest.raises(TypeError, match="preset must be a string, got None"):
        load_train_config(CONFIG, ["preset="])


def test_every_path_setting_expands_a_home(tmp_path, monkeypatch):
    """`init_transformer_from: ~/x`, `var_pth`, `vae_pth` kept their `~`: the settings expanded
    were a list of their own, apart from the trainer's PATH_SETTINGS. It is one list now."""
    from depthart_core.training import config, trainer

    monkeypatch.setenv("HOME", str(tmp_path))
    names = ("init_checkpoint", "init_transformer_from", "var_pth", "vae_pth")
    names += ("data.root", "data.val_root", "data.pool_cache")
    yml = tmp_path / "c.yaml"
    yml.write_text(
        "init_checkpoint: ~/a\ninit_transformer_from: ~/b\nvar_pth: ~/c\nvae_pth: ~/d\n"
        "data:\n  root: ~/e\n  val_root: ~/f\n  pool_cache: ~/g\n"
    )
    for cfg in (load_train_config(yml), load_train_config(None, [f"{k}=~/x" for k in names])):
        for name in names:
            assert cfg._dotted(name).startswith(f"{tmp_path}/"), (name, cfg._dotted(name))
    assert trainer.PATH_SETTINGS is config.PATH_SETTINGS and set(names) == config.PATH_SETTINGS


def test_every_shipped_config_loads_and_the_papers_recipe_trains_as_the_authors() -> None:
    """Every file in training/configs is a valid TrainConfig; the paper's recipe builds the
    authors' plain-attention d16 and detaches the rollout where their code does."""
    configs = sorted((ROOT / "training" / "configs").glob("*.yaml"))
    assert len(configs) > 5
    for path in configs:
        load_train_config(path)
    paper = load_train_config(ROOT / "training" / "configs" / "hypersim_d16.yaml")
    assert paper.preset == "d16_authors" and paper.detach_embedding and paper.mode == "depthart"
