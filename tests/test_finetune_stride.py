"""`depthart finetune --stride N`: every N-th image of each bag (recording order) is kept, the
others are counted and never decoded, the time split is that of every image, the setting is
recorded (a --resume with another is refused), a bad value is one line, and a recording whose
kept frames would outgrow the memory is warned about with a stride that fits."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from test_finetune import _finetune, _one_line_error, _write_bag

from depthart_core.finetune import prepare as prep_mod
from depthart_core.finetune.frames import FinetuneInputError, FrameConfig
from depthart_core.finetune.run import FinetuneConfig, prepare
from depthart_core.rosio import messages

FRAMES = FrameConfig(
    "/camera/image_raw", "/camera/depth", heldout=0.2, gap_s=0.5, min_train=4, min_heldout=2
)


def _blocks(prep) -> dict[str, list[int]]:
    """The frame indices per block, from the bag's scan."""
    out: dict[str, list[int]] = {"train": [], "gap": [], "heldout": []}
    for i, blk in enumerate(prep.scans[0].block):
        if blk is not None:
            out[blk].append(i)
    return out


def test_stride_keeps_every_nth_image_in_each_block_undecoded_otherwise(tmp_path, monkeypatch):
    bag = _write_bag(tmp_path / "bag", 41)
    every = prepare([bag], FinetuneConfig(frames=FRAMES), size=16, progress=False)
    decoded = {"rgb": 0, "depth": 0}
    for kind, name in (("rgb", "image_to_rgb"), ("depth", "image_to_depth")):
        real = getattr(messages, name)

        def counting(*args, _real=real, _kind=kind, **kwargs):
            decoded[_kind] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(messages, name, counting)
    frames = dataclasses.replace(FRAMES, stride=2)
    half = prepare([bag], FinetuneConfig(frames=frames), size=16, progress=False)
    assert decoded == {"rgb": 21, "depth": 21}  # the 20 left out cost no decode
    c = half.counts[0].to_dict()
    assert (c["images"], c["paired"], c["strided"], c["unmatched"]) == (41, 21, 20, 0)
    # the split of every image (span 0..4.0 s: held out t >= 3.2 s, gap (2.7, 3.2) s), the even
    # frames of each block kept: the held-out block spans the same time
    full, kept = _blocks(every), _blocks(half)
    assert full == {
        "train": list(range(28)),
        "gap": list(range(28, 32)),
        "heldout": list(range(32, 41)),
    }
    assert kept == {k: [i for i in v if i % 2 == 0] for k, v in full.items()}
    assert c["blocks"] == {"train": 14, "gap": 2, "heldout": 5}
    assert len(half.train) == 14 and len(half.heldout) == 5
    assert all(f.index % 2 == 0 and f.block == "heldout" for f in half.scored)
    assert "strided" not in every.counts[0].to_dict()


@pytest.mark.parametrize("value", ["0", "-1", "x", "1.5"])
def test_a_bad_stride_is_one_line_naming_the_value(tmp_path, capsys, value):
    assert _finetune(tmp_path / "bag", tmp_path / "run", "--stride", value) == 1
    err = _one_line_error(capsys)
    named = value if value.lstrip("-").isdigit() else repr(value)
    assert err.endswith(f"--stride must be a positive integer (keep every N-th image), got {named}")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("value", [0, -1, True, 2.0, "2"])
def test_frame_config_takes_a_positive_int_stride(value):
    with pytest.raises(ValueError, match=f"^stride must be a positive integer .*, got {value!r}$"):
        dataclasses.replace(FRAMES, stride=value)


def test_stride_is_recorded_and_reported_and_a_resume_with_another_is_refused(
    tmp_path, capsys, tiny_checkpoint
):
    bag = _write_bag(tmp_path / "bag", 61)  # span 6 s: held out from 4.8 s, gap (4.3, 4.8) s
    run = tmp_path / "run"
    fast = ["--checkpoint", tiny_checkpoint, "--steps", "1", "--batch-size", "2", "--device"]
    fast += ["cpu", "--eval-frames", "2", "--split-gap", "0.5"]
    assert _finetune(bag, run, *fast, "--stride", "2") == 0, capsys.readouterr().err
    capsys.readouterr()
    report = json.loads((run / "report.json").read_text())
    assert report["settings"]["frames"]["stride"] == 2
    total = report["counts"]["total"]
    assert (total["images"], total["paired"], total["strided"]) == (61, 31, 30)
    assert total["blocks"] == {"train": 22, "gap": 2, "heldout": 7}  # of 44, 4 and 13
    assert (report["split"]["train"], report["split"]["heldout"]) == (22, 7)
    md = (run / "report.md").read_text()
    assert "--stride 2: 1 image in 2 of each bag kept (recording order), 30 left out" in md
    assert json.loads((run / "finetune.json").read_text())["settings"]["frames"]["stride"] == 2
    assert _finetune(bag, run, *fast, "--stride", "3", "--resume") == 1
    err = _one_line_error(capsys)
    assert "--resume with other options" in err and "frames.stride 2 -> 3" in err, err


def test_a_resume_compares_the_stride_a_run_recorded(tmp_path):
    """A run recorded before --stride existed compares only what it recorded (its frame files
    then tell another stride apart by content); one that recorded it is refused another."""
    from depthart_core.finetune import run as ft

    run = tmp_path / "run"
    run.mkdir()
    cfg = FinetuneConfig(FRAMES)
    settings = ft._settings(cfg)
    del settings["frames"]["stride"]
    (run / "finetune.json").write_text(json.dumps({"settings": settings}))
    other = dataclasses.replace(cfg, frames=dataclasses.replace(FRAMES, stride=4))
    ft._check_resumed_settings(run, ft._settings(other))  # not recorded: not compared
    recorded = {"settings": ft._settings(cfg)}
    (run / "finetune.json").write_text(json.dumps(recorded))
    with pytest.raises(FinetuneInputError, match=r"frames\.stride 1 -> 4"):
        ft._check_resumed_settings(run, ft._settings(other))


def _small_memory(monkeypatch, available: int, tmp_path=None) -> None:
    """`available` bytes as sysconf's free pages; and as /proc/meminfo's MemAvailable, which
    `available_memory` reads first, in a stand-in file (or none: sysconf alone)."""
    real = os.sysconf
    page = real("SC_PAGE_SIZE")

    def sysconf(name):
        return available // page if name == "SC_AVPHYS_PAGES" else real(name)

    monkeypatch.setattr(os, "sysconf", sysconf)
    meminfo = (tmp_path or Path("/nonexistent-depthart")) / "meminfo"
    if tmp_path is not None:
        meminfo.write_text(f"MemTotal: 99999999 kB\nMemAvailable: {available // 1024} kB\n")
    monkeypatch.setattr(prep_mod, "MEMINFO", meminfo)


def test_memory_counts_what_the_page_cache_would_give_back(tmp_path, monkeypatch):
    """MemAvailable, not the free pages: a machine up a while has little free memory and much
    page cache (the bags just read fill it), which a run gets back; the free pages alone told
    a 16 GB-free, 24 GB-available machine to drop half a long recording."""
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 32000000 kB\nMemFree: 1000000 kB\nMemAvailable: 24000000 kB\n")
    monkeypatch.setattr(prep_mod, "MEMINFO", meminfo)
    _real = os.sysconf
    monkeypatch.setattr(os, "sysconf", lambda n: 1000 if n == "SC_AVPHYS_PAGES" else _real(n))
    assert prep_mod.available_memory() == 24_000_000 * 1024


@pytest.mark.skipif("SC_AVPHYS_PAGES" not in getattr(os, "sysconf_names", {}), reason="no sysconf")
@pytest.mark.parametrize("source", ["sysconf", "meminfo"])
def test_a_recording_that_would_outgrow_the_memory_is_warned_about(
    tmp_path, monkeypatch, caplog, source
):
    bag = _write_bag(tmp_path / "bag", 40)
    per = prep_mod.frame_bytes(16)  # (3 + 4 + 1) * 16 * 16 bytes and the margin
    assert per == 3441 and 54_000 < prep_mod.frame_bytes(64) < 56_000  # ~55 KB at 64 px
    page = os.sysconf("SC_PAGE_SIZE")
    available = 100_000 // page * page  # half of it holds 14 frames at 16 px, not 40
    _small_memory(monkeypatch, available, tmp_path if source == "meminfo" else None)
    assert prep_mod.available_memory() == available
    with caplog.at_level("WARNING"):
        prepare([bag], FinetuneConfig(frames=FRAMES), size=16, progress=False)
    warned = [r.getMessage() for r in caplog.records if "of memory" in r.getMessage()]
    assert len(warned) == 1 and "\n" not in warned[0], warned
    assert "keeping 40 of 40 images (--stride 1) at the model's 16 px" in warned[0]
    assert "--stride 3 would keep 14 frames" in warned[0]  # 20 frames take 69 KB > 50 KB
    caplog.clear()
    with caplog.at_level("WARNING"):  # warned, not refused; the suggested stride fits
        frames = dataclasses.replace(FRAMES, stride=3)
        prep = prepare([bag], FinetuneConfig(frames=frames), size=16, progress=False)
    assert not [r for r in caplog.records if "of memory" in r.getMessage()]
    assert prep.counts[0].paired == 14


def test_the_memory_estimate_of_a_long_recording():
    hour = [108_000]  # one hour at 30 Hz
    note = prep_mod.memory_warning(hour, 1, 64, 8 * 10**9)
    assert note is not None and "about 5.9 GB of memory (55 KB a frame)" in note
    assert "more than half of the 8.0 GB available: --stride 2 would keep 54000 frames" in note
    assert prep_mod.memory_warning(hour, 2, 64, 8 * 10**9) is None
    assert prep_mod.memory_warning(hour, 1, 64, None) is None  # a system that does not say
    assert "no --stride fits 3 bags" in prep_mod.memory_warning([5, 5, 5], 1, 64, 200_000)


def test_teacher_labels_made_before_the_stride_option_still_match():
    """The labels' key holds every frame setting; --stride 1 (every image, as before the
    option) is left out of it, so a labels file made before keeps matching, and another stride
    is a different key."""
    from depthart_core.finetune.teacher import key_parts, labels_key

    teacher = {"sha256": "ab", "sampling": "soft", "seed": 0, "flip_average": False}
    parts = key_parts(teacher, [], FRAMES, 8, 64)
    before = {k: v for k, v in dataclasses.asdict(FRAMES).items() if k != "stride"}
    assert parts["frames"] == before
    strided = key_parts(teacher, [], dataclasses.replace(FRAMES, stride=2), 8, 64)
    assert strided["frames"]["stride"] == 2 and labels_key(strided) != labels_key(parts)
