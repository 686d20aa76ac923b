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
    # half of it holds 10 frames at 16 px and the 2 held-out ones of them at 32x24 to score, not
    # 40 and 8 (nor 14 and 3: the held-out frames at full size count too)
    available = 100_000 // page * page
    _small_memory(monkeypatch, available, tmp_path if source == "meminfo" else None)
    assert prep_mod.available_memory() == available
    with caplog.at_level("WARNING"):
        prepare([bag], FinetuneConfig(frames=FRAMES), size=16, progress=False)
    warned = [r.getMessage() for r in caplog.records if "of memory" in r.getMessage()]
    assert len(warned) == 1 and "\n" not in warned[0], warned
    assert "keeping 40 of 40 images (--stride 1) at the model's 16 px" in warned[0]
    assert "and 8 held-out ones at their full 32x24 to score" in warned[0]  # the bag's size
    assert "--stride 4 would keep 10 frames" in warned[0]  # stride 3: 48 KB + 3 x 6 KB > 49 KB
    caplog.clear()
    with caplog.at_level("WARNING"):  # warned, not refused; the suggested stride fits
        frames = dataclasses.replace(FRAMES, stride=4)
        prep = prepare([bag], FinetuneConfig(frames=frames), size=16, progress=False)
    assert not [r for r in caplog.records if "of memory" in r.getMessage()]
    assert prep.counts[0].paired == 10 and len(prep.scored) == 2
    assert prep.scans[0].image_wh == (32, 24)


def test_the_memory_estimate_of_a_long_recording():
    hour = [108_000]  # one hour at 30 Hz
    note = prep_mod.memory_warning(hour, 1, 64, 8 * 10**9)
    assert note is not None and "about 5.9 GB of memory (55 KB a frame)" in note
    assert "more than half of the 8.0 GB available: --stride 2 would keep 54000 frames" in note
    assert prep_mod.memory_warning(hour, 2, 64, 8 * 10**9) is None
    assert prep_mod.memory_warning(hour, 1, 64, None) is None  # a system that does not say
    assert "no --stride fits 3 bags" in prep_mod.memory_warning([5, 5, 5], 1, 64, 200_000)


def _scored_note(images, available, stride=1, eval_frames=100, teacher=False):
    """The warning for `images` at 256 px with `eval_frames` held-out frames (20 % held out)
    scored at 1920x1080."""
    return prep_mod.memory_warning(
        images, stride, 256, available, eval_frames=eval_frames, image_wh=(1920, 1080),
        heldout=0.2, teacher=teacher,
    )  # fmt: skip


def test_the_frames_scored_at_full_size_count_in_the_memory_estimate():
    """Up to --eval-frames held-out frames stay in memory at the images' full size to score
    (RGB, depth, mask; a teacher's label too): 100 at 1920x1080 take 1.7 GB, which decides on
    an 8 GB Jetson whether a run fits."""
    assert prep_mod.scored_frame_bytes(1920, 1080) == 8 * 1920 * 1080  # 16.6 MB
    assert prep_mod.scored_frame_bytes(1920, 1080, teacher=True) == 12 * 1920 * 1080
    five_minutes = [3000]  # 10 Hz: 2.6 GB at the model's 256 px, under half of 8 GB
    assert prep_mod.memory_warning(five_minutes, 1, 256, 8 * 10**9) is None
    note = _scored_note(five_minutes, 8 * 10**9)
    assert note is not None and "\n" not in note
    assert note.startswith(
        "keeping 3000 of 3000 images (--stride 1) at the model's 256 px and 100 held-out ones at "
        "their full 1920x1080 to score takes about 4.3 GB of memory (881 KB a frame, 17 MB a "
        "scored one), more than half of the 8.0 GB available: --stride 2 would keep 1500 frames "
        "(about 3.0 GB)"
    )
    assert _scored_note(five_minutes, 8 * 10**9, stride=2) is None  # the advice fits
    # 100 images keep 20 held-out ones: those are scored, not 100
    assert "and 20 held-out ones" in _scored_note([100], 500 * 10**6)


def test_the_advice_names_eval_frames_where_no_stride_can_help():
    """Where the frames scored at full size alone outgrow half the memory, a stride keeps them
    all (until it drops held-out frames): the advice is the --eval-frames that fits, with the
    stride the training frames then need."""
    note = _scored_note([3000], 3 * 10**9)  # 1.7 GB scored > 1.5 GB, and 2.6 GB training
    assert note.endswith(
        "available: --stride 4 --eval-frames 45 would keep 750 frames and score 45 at full size "
        "(about 1.4 GB)"
    )
    assert _scored_note([3000], 3 * 10**9, stride=4, eval_frames=45) is None
    note = _scored_note([500], 3 * 10**9)  # the training frames leave 1.06 GB at this stride
    assert note.endswith(
        "--eval-frames 63 would keep 500 frames and score 63 at full size (about 1.5 GB)"
    )
    assert _scored_note([500], 3 * 10**9, eval_frames=63) is None
    teacher = _scored_note([500], 3 * 10**9, teacher=True)  # and the teacher's labels
    assert "25 MB a scored one" in teacher and "--eval-frames 42 would" in teacher
    assert _scored_note([500], 3 * 10**9, eval_frames=42, teacher=True) is None


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
