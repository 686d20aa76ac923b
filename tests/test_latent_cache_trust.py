"""The trainer's latent cache beside a synthetic pool (`<pool>.latents-<hash>.safetensors`) is
trusted as the pool itself is (test_cache_trust_more.py): a file that another user could have
written is never loaded as the training inputs but recomputed, with a warning naming the file,
its owner and mode; the one written is writable by its owner only; and where it cannot be
written at all the latents are kept in memory, the run going on. Another user's ownership is
simulated by the stat of the open file, so the tests run alike as root and as anyone else."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest
import torch
from cache_owner import OTHER_UID, file_mode, owned_by_another
from safetensors.torch import load_file, save_file

from depthart_core.fileutil import WriteError
from depthart_core.training import trainer as trainer_mod
from depthart_core.training.config import load_train_config
from depthart_core.training.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not hasattr(os, "getuid"), reason="no user ids (Windows)")


@pytest.fixture
def one_process(monkeypatch):
    """The pool renders in this process (no spawned workers: seconds saved)."""
    monkeypatch.setattr(os, "cpu_count", lambda: 1)


@pytest.fixture
def umask_002():
    old = os.umask(0o002)  # Ubuntu's for users: files written 0664
    yield
    os.umask(old)


def _trainer(tmp_path: Path, run: str) -> Trainer:
    cfg = load_train_config(
        ROOT / "training" / "configs" / "tiny_depthart.yaml",
        [
            "steps=2",
            "batch_size=2",
            "data.val_count=2",
            "data.render_size=0",
            "data.pool_size=4",
            f"data.pool_cache={tmp_path / 'pool.safetensors'}",
            "random_tokenizer_ok=true",
        ],
    )
    return Trainer(cfg, tmp_path / run, progress=False)


def _latents_file(tmp_path: Path) -> Path:
    (disk,) = tmp_path.glob("pool.latents-*.safetensors")
    return disk


def _plant(disk: Path) -> dict[str, torch.Tensor]:
    """Rewrite the latents file with other latents of the same shapes; returns them."""
    planted = {k: v + 1 for k, v in load_file(str(disk)).items()}
    disk.unlink()
    save_file(planted, str(disk))
    return planted


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("how", ["owner", "mode"])
def test_latents_others_could_write_are_recomputed_not_trained_on(
    tmp_path, monkeypatch, caplog, one_process, how
):
    fresh = _trainer(tmp_path, "a").latents
    disk = _latents_file(tmp_path)
    planted = _plant(disk)
    if how == "owner":
        os.chmod(disk, 0o644)
        owned_by_another(monkeypatch, disk)
    else:
        os.chmod(disk, 0o666)
    with caplog.at_level(logging.WARNING, logger=trainer_mod.__name__):
        again = _trainer(tmp_path, "b").latents
    assert not torch.equal(again[1], planted["f_D"])
    assert _same(again, fresh)
    assert f"latent cache {disk} is not trusted" in caplog.text and "recomputing" in caplog.text
    owner = OTHER_UID if how == "owner" else os.getuid()
    assert f"owner uid {owner}, mode {'0644' if how == 'owner' else '0666'}" in caplog.text
    assert file_mode(disk) == 0o644  # replaced by one only its owner can write
    assert torch.equal(load_file(str(disk))["f_D"], fresh[1])


def test_trusted_latents_written_under_umask_002_are_reused(tmp_path, one_process, umask_002):
    _trainer(tmp_path, "a")
    disk = _latents_file(tmp_path)
    assert file_mode(disk) == 0o644  # not 0664: trusted when read back
    planted = _plant(disk)  # a file of yours that no one else can write: taken as it is
    os.chmod(disk, 0o644)
    again = _trainer(tmp_path, "b").latents
    assert _same(again, (planted["img"], planted["f_D"]))


def test_latents_that_cannot_be_written_are_kept_in_memory(
    tmp_path, monkeypatch, caplog, one_process
):
    fresh = _trainer(tmp_path, "a").latents
    _latents_file(tmp_path).unlink()
    real_write = trainer_mod.atomic_write

    def refused(target, content, stale_after_s=None, owner_only=False):
        if ".latents-" in Path(target).name:
            raise WriteError(target, PermissionError(errno.EACCES, "Permission denied"))
        real_write(target, content, stale_after_s=stale_after_s, owner_only=owner_only)

    monkeypatch.setattr(trainer_mod, "atomic_write", refused)
    with caplog.at_level(logging.INFO, logger=trainer_mod.__name__):
        again = _trainer(tmp_path, "b").latents
    assert _same(again, fresh)
    assert not list(tmp_path.glob("pool.latents-*"))
    lines = [r.getMessage() for r in caplog.records if "latent cache" in r.getMessage()]
    assert len(lines) == 1 and "kept in memory only" in lines[0], lines


def test_latents_beside_a_frames_file_name_its_folder_as_what_to_move(
    tmp_path, monkeypatch, caplog, one_process
):
    """Beside a frames file (finetune's RUN/frames) the warning said to set DEPTHART_CACHE, which
    does not move those latents; it names the frames file's folder."""
    _trainer(tmp_path, "a")  # renders the pool: a frames file is the same three tensors
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # a folder others can write
    frames = shared / "train.safetensors"
    frames.write_bytes((tmp_path / "pool.safetensors").read_bytes())
    cfg = load_train_config(
        ROOT / "training" / "configs" / "tiny_depthart.yaml",
        ["steps=2", "batch_size=2", "data.source=frames", f"data.root={frames}",
         f"data.val_root={frames}", "random_tokenizer_ok=true"],
    )  # fmt: skip
    Trainer(cfg, tmp_path / "f1", progress=False)
    (disk,) = shared.glob("train.latents-*.safetensors")
    _plant(disk)
    os.chmod(disk, 0o644)
    owned_by_another(monkeypatch, disk)
    with caplog.at_level(logging.WARNING, logger=trainer_mod.__name__):
        Trainer(cfg, tmp_path / "f2", progress=False)
    assert f"latent cache {disk} is not trusted" in caplog.text, caplog.text
    assert "set data.root's folder (finetune: --out) to a folder only you can write" in caplog.text
    assert "DEPTHART_CACHE" not in caplog.text
