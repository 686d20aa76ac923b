"""A refused VQ-VAE names what the user set it with: the CLI's --vae, or the ROS node's `vae`
parameter (the node has no --vae flag; `depthart-node -p vae:=/tmp/nope.pth` used to be told
"--vae /tmp/nope.pth is only for the authors' checkpoint").

The node's path is run without ROS: `DepthArtCore._load_model` on a stand-in node, as
tests/test_node_parts.py does for the `device` parameter.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from safetensors.torch import save_file
from test_authors_checkpoint import SMALL, small_authors_state

from depthart_core import authors_layout
from depthart_core.checkpoint import CheckpointFile, read_checkpoint_info, refuse_vae
from depthart_core.runtime import get_backend

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
    monkeypatch.setattr(authors_layout, "authors_config", lambda keys, base=None: SMALL)
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


def test_the_cli_still_names_its_flag(tiny_checkpoint, authors_files, tmp_path):
    """Every caller but the node keeps --vae (the default)."""
    full, bare = authors_files
    nope = tmp_path / "nope.pth"
    info = read_checkpoint_info(tiny_checkpoint)
    want = f"^--vae {re.escape(str(nope))} is only for the authors' checkpoint"
    with pytest.raises(ValueError, match=want):
        refuse_vae(nope, info, tiny_checkpoint)
    with pytest.raises(ValueError, match=want):
        get_backend("torch", tiny_checkpoint, threads=1, vae=nope)
    with pytest.raises(ValueError, match="which is what loads; drop --vae$"):
        CheckpointFile(full, vae=nope)
    with pytest.raises(FileNotFoundError, match=r"\(--vae\) or put it beside"):
        CheckpointFile(bare, vae=nope).load()
