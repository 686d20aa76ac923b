"""A refused VQ-VAE names what the user set it with: the CLI's --vae, or the ROS node's `vae`
parameter (the node has no --vae flag; `depthart-node -p vae:=/tmp/nope.pth` used to be told
"--vae /tmp/nope.pth is only for the authors' checkpoint").

The node's path is run without ROS: `DepthArtCore._load_model` on a stand-in node, as
tests/test_node_parts.py does for the `device` parameter.

A command with no --vae (replay, parity, train) names no flag: an authors' file without its VQ-VAE
is told only to have VAR's file beside it (they used to say "(--vae)", an unknown argument there).
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from safetensors.torch import save_file
from test_authors_checkpoint import SMALL, small_authors_state

from depthart_core import checkpoint_file
from depthart_core.checkpoint import (
    CheckpointFile,
    load_checkpoint,
    load_model,
    read_checkpoint_info,
    refuse_vae,
)
from depthart_core.cli import main
from depthart_core.rosio.bags import write_synthetic_bag
from depthart_core.runtime import get_backend

ROOT = Path(__file__).resolve().parent.parent

NODE_SETTING = "the node's vae parameter"


def _node_load(cfg: dict) -> str:
    """The node's model load with these parameters (the rest default); its error's text."""
    pytest.importorskip("sensor_msgs.msg", reason="needs the ROS 2 sensor_msgs package")
    from depthart_ros import node as node_mod
    from depthart_ros.params import PARAMS

    core = SimpleNamespace(
        cfg={p.name: p.default for p in PARAMS} | {"backend": "torch", "threads": 1} | cfg,
        get_logger=lambda: SimpleNamespace(info=print, warning=print, error=print),
        context=SimpleNamespace(ok=lambda: True),
    )
    with pytest.raises((ValueError, FileNotFoundError)) as refused:
        node_mod.DepthArtCore._load_model(core)
    return str(refused.value)


def test_the_node_names_its_vae_parameter_for_a_complete_checkpoint(tiny_checkpoint, tmp_path):
    nope = tmp_path / "nope.pth"
    msg = _node_load({"checkpoint": tiny_checkpoint, "vae": str(nope)})
    assert "--vae" not in msg, msg
    assert msg == (
        f"{NODE_SETTING} {nope} is only for the authors' checkpoint; {tiny_checkpoint} is complete"
    )


@pytest.fixture
def authors_files(tmp_path, monkeypatch):
    """An authors' file at the small size saved with its VQ-VAE, and one saved without it."""
    monkeypatch.setattr(checkpoint_file, "authors_config", lambda keys, base=None: SMALL)
    state = small_authors_state(seed=3)
    full, bare = tmp_path / "full.safetensors", tmp_path / "bare.safetensors"
    save_file(state, full)
    save_file({k: v for k, v in state.items() if not k.startswith("vae_proxy.")}, bare)
    return full, bare


def test_the_node_names_its_vae_parameter_for_an_authors_file(authors_files, tmp_path):
    full, _ = authors_files
    nope = tmp_path / "nope.pth"
    msg = _node_load({"checkpoint": str(full), "vae": str(nope)})  # holds its own: refused
    assert "--vae" not in msg, msg
    assert msg == (
        f"{NODE_SETTING} {nope}: {full} holds its own VQ-VAE, which is what loads; "
        f"drop {NODE_SETTING}"
    )


def test_the_node_names_its_vae_parameter_for_a_missing_vae(authors_files, tmp_path):
    _, bare = authors_files
    nope = tmp_path / "nope.pth"
    msg = _node_load({"checkpoint": str(bare), "vae": str(nope)})  # needs one: not found
    assert "--vae" not in msg, msg
    assert f"pass VAR's vae_ch160v4096z32.pth ({NODE_SETTING}) or put it beside" in msg


def test_a_python_caller_is_told_its_vae_argument(tiny_checkpoint, authors_files, tmp_path):
    """No setting named (the default): `vae` as the Python API takes it, never a CLI flag."""
    full, bare = authors_files
    nope = tmp_path / "nope.pth"
    info = read_checkpoint_info(tiny_checkpoint)
    want = f"^vae {re.escape(str(nope))} is only for the authors' checkpoint"
    with pytest.raises(ValueError, match=want):
        refuse_vae(nope, info, tiny_checkpoint)
    with pytest.raises(ValueError, match=want):
        get_backend("torch", tiny_checkpoint, threads=1, vae=nope)
    with pytest.raises(ValueError, match="which is what loads; drop vae$"):
        CheckpointFile(full, vae=nope)
    with pytest.raises(FileNotFoundError, match=r"\(vae\) or put it beside") as missing:
        load_model(CheckpointFile(bare, vae=nope))
    assert "--vae" not in str(missing.value)


BESIDE = "does not exist: put VAR's vae_ch160v4096z32.pth beside the checkpoint"


def test_no_vae_given_where_none_can_be_only_says_where_to_put_it(authors_files):
    """The calls of replay (`get_backend`), parity (`CheckpointFile`) and training's
    init_checkpoint (`load_checkpoint`): none of these commands has --vae to pass."""
    _, bare = authors_files
    for load in (
        lambda: get_backend("torch", bare, threads=1),
        lambda: load_model(CheckpointFile(bare)),
        lambda: load_checkpoint(bare),
    ):
        with pytest.raises(FileNotFoundError) as missing:
            load()
        assert str(missing.value).endswith(BESIDE), missing.value
        assert "--vae" not in str(missing.value)


def _cli_error(capsys, argv: list[str]) -> str:
    """`depthart ARGV`'s one-line error (it exits 1)."""
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return err


def test_commands_without_a_vae_option_do_not_name_one(authors_files, tmp_path, capsys):
    """replay, parity and train have no --vae (`depthart replay --help`): their error for an
    authors' file without its VQ-VAE used to say "pass VAR's vae_ch160v4096z32.pth (--vae)"."""
    _, bare = authors_files
    bag = write_synthetic_bag(tmp_path / "bag", 1, size=(24, 32))
    replay = ["replay", str(bag), "--checkpoint", str(bare), "--out", str(tmp_path / "r")]
    parity = ["parity", "--checkpoint", str(bare), "--backend", "torch", "--precision", "bf16"]
    config = str(ROOT / "training" / "configs" / "tiny_depthart.yaml")
    train = ["train", "--config", config, "--out", str(tmp_path / "t"), "--no-progress"]
    train += ["--set", f"init_checkpoint={bare}", "--set", "random_tokenizer_ok=true"]
    replay += ["--image-topic", "/camera/image_raw", "--no-plots", "--backend", "torch"]
    for argv in (replay, parity + ["--count", "1"], train):
        err = _cli_error(capsys, argv)
        assert err.rstrip().endswith(BESIDE), (argv[0], err)  # the whole line, not cut
        assert "--vae" not in err, (argv[0], err)


def test_commands_with_a_vae_option_name_it(tiny_checkpoint, authors_files, tmp_path, capsys):
    full, bare = authors_files
    nope = tmp_path / "nope.pth"
    img = tmp_path / "img.png"
    cv2.imwrite(str(img), np.zeros((8, 8, 3), np.uint8))
    predict = ["predict", str(img), "--out", str(tmp_path / "p"), "--threads", "1"]
    export = ["export", "--out", str(tmp_path / "e.onnx")]
    bench = ["bench", "--backend", "torch", "--runs", "1", "--warmup", "0", "--no-peer"]
    convert = ["convert", str(bare), "--out", str(tmp_path / "c.safetensors")]
    for cmd in (predict, export, bench):
        err = _cli_error(capsys, [*cmd, "--checkpoint", tiny_checkpoint, "--vae", str(nope)])
        assert f"--vae {nope} is only for the authors' checkpoint" in err, (cmd[0], err)
        err = _cli_error(capsys, [*cmd, "--checkpoint", str(full), "--vae", str(nope)])
        assert "which is what loads; drop --vae" in err, (cmd[0], err)
    for argv in ([*predict, "--checkpoint", str(bare)], [*export, "--checkpoint", str(bare)],
                 [*bench, "--checkpoint", str(bare)], convert):  # fmt: skip
        err = _cli_error(capsys, argv)
        assert "pass VAR's vae_ch160v4096z32.pth (--vae) or put it beside" in err, (argv[0], err)
    # info and eval have --vae too
    err = _cli_error(capsys, ["info", str(full), "--vae", str(nope)])
    assert "which is what loads; drop --vae" in err, err
    assert "pass VAR's vae_ch160v4096z32.pth (--vae)" in _cli_error(capsys, ["info", str(bare)])
    sset = tmp_path / "set"
    assert main(["synth", "--out", str(sset), "--count", "1", "--size", "16x16",
                 "--no-progress"]) == 0  # fmt: skip
    ev = ["eval", "--dataset", "synthetic", "--root", str(sset), "--out", str(tmp_path / "ev")]
    err = _cli_error(capsys, [*ev, "--checkpoint", str(bare), "--backend", "torch"])
    assert "pass VAR's vae_ch160v4096z32.pth (--vae)" in err, err
