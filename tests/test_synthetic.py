"""Synthetic RGB-D generator and its on-disk set: determinism, planar depth against analytic ray
casts, masks, intrinsics, camera paths, and the depthart-synth/1 layout round trip."""

from __future__ import annotations

import json
import logging
import math

import cv2
import numpy as np
import pytest
import torch

from depthart_core.data.benchmarks._io import BadFrameError
from depthart_core.data.synthetic.config import Scene, SynthConfig
from depthart_core.data.synthetic.render import (
    SyntheticStream,
    frame_scene,
    render_batch,
    render_frame,
    render_scenes,
    render_sequence,
    sequence_scenes,
)
from depthart_core.data.synthetic.scene import intrinsics, look_rotation
from depthart_core.data.synthetic.set import SyntheticSet, write_synthetic_set

SMALL = SynthConfig(size=(24, 32))


def _same(a, b) -> None:
    assert np.array_equal(a.rgb, b.rgb)
    assert np.array_equal(a.depth, b.depth)
    assert np.array_equal(a.valid, b.valid)
    assert np.array_equal(a.intrinsics, b.intrinsics)


def test_frames_are_deterministic_and_distinct():
    a, b = render_frame(7, 3, SMALL), render_frame(7, 3, SMALL)
    _same(a, b)
    assert a.name == "synth_7_000003"
    assert a.rgb.shape == (24, 32, 3) and a.rgb.dtype == np.uint8
    assert a.depth.dtype == np.float32 and a.valid.dtype == bool
    c = render_frame(7, 4, SMALL)
    assert not np.array_equal(a.depth, c.depth)
    assert not np.array_equal(render_frame(8, 3, SMALL).depth, a.depth)


def test_batch_frames_equal_single_frames_and_stream_is_resumable():
    out = render_batch(11, [5, 0, 9], SMALL)
    assert out["rgb"].shape == (3, 3, 24, 32) and out["rgb"].dtype == torch.uint8
    assert out["depth"].shape == (3, 24, 32) and out["depth"].dtype == torch.float32
    assert out["valid"].dtype == torch.bool and out["K"].shape == (3, 3, 3)
    for i, idx in enumerate([5, 0, 9]):
        single = render_frame(11, idx, SMALL)
        assert np.array_equal(out["rgb"][i].permute(1, 2, 0).numpy(), single.rgb)
        assert np.array_equal(out["depth"][i].numpy(), single.depth)
        assert np.array_equal(out["valid"][i].numpy(), single.valid)
    stream = SyntheticStream(11, SMALL, batch_size=2)
    b = stream.batch(2)  # frames 4 and 5
    assert torch.equal(b["depth"][1], out["depth"][0])
    assert torch.equal(b["rgb"][1], out["rgb"][0])
    with pytest.raises(ValueError, match="-1"):
        stream.batch(-1)


def _empty_scene(room, cam_pos, cam_R, K, **kw) -> Scene:
    mats = np.tile([0.0, 0.8, 0.8, 0.8, 0.5, 1.0, 0.0], (7, 1))
    mats[6, 6] = 2.0  # window view emits
    fields = dict(
        room=np.asarray(room, float),
        wall_mat=np.full(4, 2.0),
        materials=mats,
        openings=np.zeros((0, 8)),
        boxes=np.zeros((0, 9)),
        cylinders=np.zeros((0, 6)),
        spheres=np.zeros((0, 5)),
        lights=np.array([[room[0] / 2, room[1] - 0.4, room[2] / 2, 5.0, 5.0, 5.0]]),
        ambient=np.full(3, 0.2),
        solids=np.zeros((0, 6)),
        cam_pos=np.asarray(cam_pos, float),
        cam_R=cam_R,
        K=K,
    )
    fields.update(kw)
    return Scene(**fields)


def _room_depth(room, pos, R, K, h, w) -> np.ndarray:
    """Planar depth of an empty room by a separate float64 ray cast: min over the 6 planes."""
    v, u = np.mgrid[0:h, 0:w].astype(float)
    a, b = (u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1]
    d = R[:, 0, None, None] * a + R[:, 1, None, None] * b + R[:, 2, None, None]  # (3, h, w)
    t = np.full((h, w), np.inf)
    for k in range(3):
        for plane in (0.0, room[k]):
            with np.errstate(divide="ignore"):
                tk = (plane - pos[k]) / d[k]
            t = np.where((tk > 0) & (tk < t), tk, t)
    return t


@pytest.mark.parametrize("yaw_deg", [0.0, 30.0])
def test_depth_is_planar_in_an_empty_room(yaw_deg):
    h, w = 25, 33  # odd sizes: the centre pixel lies on the optical axis
    cfg = SynthConfig(size=(h, w))
    room, pos = np.array([4.0, 3.0, 5.0]), np.array([2.0, 1.5, 1.0])
    yaw = math.radians(yaw_deg)
    R = look_rotation([math.sin(yaw), 0.0, math.cos(yaw)])
    K = intrinsics(60.0, (h, w))
    out = render_scenes([_empty_scene(room, pos, R, K)], cfg)
    depth = out["depth"][0].numpy()
    assert out["valid"][0].all()
    np.testing.assert_allclose(depth, _room_depth(room, pos, R, K, h, w), rtol=2e-6)
    if yaw_deg == 0.0:
        # facing the far wall z = 5 head-on: planar depth is 4 m along the whole wall, although
        # the ray length grows towards the image corners
        assert depth[12, 16] == pytest.approx(4.0, abs=1e-6)
        wall = np.abs(depth - 4.0) < 1e-4
        assert wall.sum() > 100 and wall[12, :].sum() > 20


def test_box_and_sphere_depth_match_hand_computation():
    h, w = 25, 33
    cfg = SynthConfig(size=(h, w))
    room, pos = np.array([4.0, 3.0, 5.0]), np.array([2.0, 1.5, 1.0])
    R, K = look_rotation([0.0, 0.0, 1.0]), intrinsics(60.0, (h, w))
    sphere = np.array([[2.0, 1.5, 3.0, 0.5, 0.0]])  # on the optical axis
    box = np.array([[2.0, 0.5, 3.5, 0.3, 0.5, 0.2, 1.0, 0.0, 0.0]])  # front face z = 3.3
    scene = _empty_scene(room, pos, R, K, spheres=sphere, boxes=box)
    depth = render_scenes([scene], cfg)["depth"][0].numpy()
    assert depth[12, 16] == pytest.approx(1.5, abs=1e-5)  # 3.0 - 0.5 - 1.0
    # pixel column 16 looks along x = 2; the row whose ray reaches y = 0.5 at z = 3.3 hits the face
    f = K[1, 1]
    row = int(round(K[1, 2] + (1.0 / 2.3) * f))
    y_at_face = 1.5 - (row - K[1, 2]) / f * 2.3
    assert 0.0 < y_at_face < 1.0
    assert depth[row, 16] == pytest.approx(2.3, abs=1e-5)


def test_window_glass_is_invalid_and_door_leads_into_a_corridor():
    h, w = 25, 33
    room, pos = np.array([4.0, 3.0, 5.0]), np.array([2.0, 1.5, 1.0])
    R, K = look_rotation([0.0, 0.0, 1.0]), intrinsics(60.0, (h, w))
    window = np.array([[1.0, 5.0, 1.5, 2.5, 1.0, 2.0, 0.25, 1.0]])  # wall z = Lz, 25 cm recess
    door = np.array([[1.0, 5.0, 1.5, 2.5, 0.0, 2.2, 3.0, 0.0]])  # 3 m corridor behind z = Lz
    for glass_invalid in (True, False):
        cfg = SynthConfig(size=(h, w), glass_invalid=glass_invalid)
        out = render_scenes([_empty_scene(room, pos, R, K, openings=window)], cfg)
        valid, depth = out["valid"][0].numpy(), out["depth"][0].numpy()
        if glass_invalid:
            assert not valid[12, 16] and depth[12, 16] == 0.0
            assert valid[0, 0] and valid.sum() < h * w
        else:
            assert valid.all() and depth[12, 16] == pytest.approx(4.25, abs=1e-5)
    out = render_scenes([_empty_scene(room, pos, R, K, openings=door)], SynthConfig(size=(h, w)))
    assert out["valid"][0].all()
    assert out["depth"][0, 12, 16].item() == pytest.approx(7.0, abs=1e-5)  # 5 + 3 - 1


def test_random_intrinsics_and_cameras_are_plausible():
    cfg = SynthConfig(size=(96, 128))
    fovs = []
    for i in range(25):
        sc = frame_scene(2, i, cfg)
        K = sc.K
        fovs.append(math.degrees(2 * math.atan(128 / 2 / K[0, 0])))
        assert K[0, 0] == K[1, 1] and K[0, 2] == 63.5 and K[1, 2] == 47.5
        assert np.all(sc.cam_pos > 0) and np.all(sc.cam_pos < sc.room)
        np.testing.assert_allclose(sc.cam_R.T @ sc.cam_R, np.eye(3), atol=1e-9)
        inside = np.all((sc.solids[:, :3] < sc.cam_pos) & (sc.cam_pos < sc.solids[:, 3:]), axis=1)
        assert not inside.any()
        lo, hi = sc.solids[:, :3], sc.solids[:, 3:]
        assert np.all(lo >= 0) and np.all(hi <= sc.room)
        for a in range(len(lo)):  # furniture never interpenetrates (touching is fine)
            for b in range(a + 1, len(lo)):
                assert not np.all((lo[a] < hi[b] - 1e-9) & (lo[b] < hi[a] - 1e-9))
        assert cfg.lights[0] <= len(sc.lights) <= cfg.lights[1]
    assert min(fovs) >= 45.0 and max(fovs) <= 90.0 and max(fovs) - min(fovs) > 15.0
    sample = render_frame(2, 0, cfg)
    np.testing.assert_allclose(sample.intrinsics, frame_scene(2, 0, cfg).K, rtol=1e-6)


def test_sequence_is_one_scene_with_a_smooth_camera_path():
    frames = list(render_sequence(4, 6, SMALL))
    assert len(frames) == 6 and frames[0].name == "synth_seq_4_000000"
    poses = np.stack([f.extras["pose"] for f in frames])
    steps = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)
    assert np.all(steps > 1e-3) and np.all(steps < 0.05)
    for a, b in zip(poses[:-1, :3, :3], poses[1:, :3, :3], strict=True):
        angle = math.degrees(math.acos(np.clip((np.trace(a.T @ b) - 1) / 2, -1.0, 1.0)))
        assert angle < 3.0
    for f in frames[1:]:
        assert np.array_equal(f.intrinsics, frames[0].intrinsics)
    scenes = sequence_scenes(4, 6, SMALL)
    assert all(np.array_equal(s.boxes, scenes[0].boxes) for s in scenes)
    # consecutive frames look alike, unlike independent frames
    diff = np.abs(frames[1].depth - frames[0].depth)[frames[0].valid & frames[1].valid]
    assert np.median(diff) < 0.1


def test_config_validation_and_round_trip():
    with pytest.raises(ValueError, match="100"):
        SynthConfig(fov_deg=(100.0, 50.0))
    with pytest.raises(ValueError, match="size"):
        SynthConfig(size=(0, 32))
    assert SynthConfig.from_dict(SMALL.to_dict()) == SMALL
    with pytest.raises(ValueError, match="colour"):
        SynthConfig.from_dict({"colour": 1})
    with pytest.raises(ValueError, match="-2"):
        render_frame(-2, 0, SMALL)


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "set"
    write_synthetic_set(root, count=3, seed=5, size=(24, 32), progress=False)
    return root


def test_written_layout_round_trips_with_exact_millimetres(synth_dir):
    meta = json.loads((synth_dir / "meta.json").read_text())
    assert meta["format"] == "depthart-synth/1" and meta["count"] == 3 and meta["seed"] == 5
    assert meta["size"] == [24, 32] and meta["generator"]["size"] == [24, 32]
    raw = cv2.imread(str(synth_dir / "depth" / "000001.png"), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.shape == (24, 32)
    k = json.loads((synth_dir / "intrinsics" / "000001.json").read_text())
    assert set(k) == {"fx", "fy", "cx", "cy", "width", "height"} and k["width"] == 32
    ds = SyntheticSet(synth_dir)
    assert len(ds) == 3 and ds.skipped == 0 and ds.name == "synthetic"
    cfg = SynthConfig(size=(24, 32))
    for i in range(3):
        s, ref = ds[i], render_frame(5, i, cfg)
        assert s.name == ref.name
        assert np.array_equal(s.rgb, ref.rgb)
        mm = np.where(ref.valid, np.round(ref.depth.astype(np.float64) * 1000), 0).astype(np.uint16)
        assert np.array_equal(s.depth, mm.astype(np.float32) / np.float32(1000))
        assert np.abs(s.depth - ref.depth)[ref.valid].max() <= 0.0005 + 1e-6
        assert np.array_equal(s.valid, ref.valid)
        np.testing.assert_allclose(s.intrinsics, ref.intrinsics, rtol=1e-6)
    with pytest.raises(ValueError, match="overwrite"):
        write_synthetic_set(synth_dir, count=1, seed=5, size=(24, 32), progress=False)


def test_set_errors_and_damaged_frames_raised_when_read(synth_dir, tmp_path, caplog):
    """A frame with a file on disk stays in the index: one whose file is missing or damaged is
    not skipped when the set is opened but raises a frame error naming the file when read (as
    every other reader's does, so that `depthart eval` lists it as unreadable)."""
    with pytest.raises(FileNotFoundError, match="nowhere"):
        SyntheticSet(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "meta.json").write_text(
        json.dumps({"format": "depthart-synth/1", "count": 0, "seed": 0, "size": [8, 8]})
    )
    with pytest.raises(ValueError, match="empty"):
        SyntheticSet(empty)
    broken = tmp_path / "broken"
    write_synthetic_set(broken, count=3, seed=5, size=(24, 32), progress=False)
    bad_png = broken / "depth" / "000001.png"
    bad_png.write_bytes(b"not a png at all")
    (broken / "rgb" / "000002.png").unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        ds = SyntheticSet(broken)
    assert ds.skipped == 0 and len(ds) == 3 and ds.frames == [0, 1, 2]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert ds[0].name == "synth_5_000000"
    with pytest.raises(BadFrameError) as bad:
        ds[1]
    assert str(bad.value) == f"{bad_png} is not a PNG file"
    with pytest.raises(FileNotFoundError) as missing:
        ds[2]
    assert str(missing.value) == f"{broken / 'rgb' / '000002.png'} is missing"
    # a damaged body behind a valid PNG signature is found at read time, naming the file
    good = broken / "rgb" / "000000.png"
    good.write_bytes(good.read_bytes()[:40])
    ds = SyntheticSet(broken)
    with pytest.raises(ValueError, match="000000.png"):
        ds[0]


def test_cli_writes_a_set(tmp_path):
    from depthart_core.cli import main

    out = tmp_path / "cli_set"
    assert main(["synth", "--out", str(out), "--count", "2", "--seed", "1", "--size", "16x24"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["count"] == 2 and meta["size"] == [16, 24]
    assert SyntheticSet(out)[1].rgb.shape == (16, 24, 3)
    with pytest.raises(SystemExit):
        main(["synth", "--out", str(out), "--count", "1", "--size", "big"])


def test_overwrite_removes_the_old_sets_frames_and_only_those(tmp_path):
    from depthart_core.cli import main

    out = tmp_path / "set"
    base = ["synth", "--out", str(out), "--size", "16x24", "--no-progress"]
    assert main([*base, "--count", "20", "--seed", "1"]) == 0
    user = [out / "rgb" / "notes.txt", out / "rgb" / "12345.png", out / "depth" / "cover.png"]
    user += [out / "intrinsics" / "000050.png", out / "README.md"]  # not the set's names
    for path in user:
        path.write_bytes(b"the user's")
    assert main([*base, "--count", "3", "--seed", "2", "--overwrite"]) == 0
    for sub, ext in (("rgb", "png"), ("depth", "png"), ("intrinsics", "json")):
        held = sorted(p.name for p in (out / sub).iterdir() if p.suffix == f".{ext}")
        held = [n for n in held if (out / sub / n) not in user]
        assert held == [f"{i:06d}.{ext}" for i in range(3)], sub  # none of the old set's 3-19
    assert all(path.read_bytes() == b"the user's" for path in user)
    ds = SyntheticSet(out)
    assert len(ds) == 3 and ds.skipped == 0
    assert np.array_equal(ds[2].rgb, render_frame(2, 2, SynthConfig(size=(16, 24))).rgb)
    # an interrupted set replaced: its frames go too; without --overwrite nothing is removed
    (out / "meta.json").unlink()
    partial = {"format": "depthart-synth/1", "written": 3, "count": 3}
    (out / "partial.json").write_text(json.dumps(partial))
    assert main([*base, "--count", "1", "--seed", "2", "--overwrite"]) == 0
    assert sorted(p.name for p in (out / "rgb").glob("0*.png")) == ["000000.png"]
    assert not (out / "partial.json").exists() and len(SyntheticSet(out)) == 1
    assert main([*base, "--count", "1", "--seed", "2"]) == 1  # a set there: refused, kept
    assert sorted(p.name for p in (out / "rgb").glob("0*.png")) == ["000000.png"]


@pytest.mark.parametrize("marker", ["meta.json", "partial.json"])
def test_overwrite_never_touches_another_datasets_folder(tmp_path, capsys, marker):
    """A folder of another dataset with the same layout (rgb/, depth/, six-digit names) and its
    own meta.json or partial.json: --overwrite is refused before anything is removed (it would
    have deleted every frame-named file there)."""
    from depthart_core.cli import main

    out = tmp_path / "theirs"
    for sub in ("rgb", "depth"):
        (out / sub).mkdir(parents=True)
        for i in range(1, 6):
            (out / sub / f"{i:06d}.png").write_bytes(b"their frame")
    (out / marker).write_text(json.dumps({"name": "my dataset", "written": 5, "count": 5}))
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    argv = ["synth", "--out", str(out), "--size", "16x24", "--count", "2", "--no-progress"]
    assert main([*argv, "--overwrite"]) == 1
    err = capsys.readouterr().err
    assert f"{out / marker} is not one `depthart synth` wrote" in err, err
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
    assert (out / "rgb" / "000003.png").read_bytes() == b"their frame"


def test_near_view_puts_the_camera_close_to_furniture():
    with pytest.raises(ValueError, match="near_view"):
        SynthConfig(near_view=1.5)
    far, near = SynthConfig(size=(24, 32)), SynthConfig(size=(24, 32), near_view=1.0)

    def gap(scene: Scene) -> float:  # camera to the nearest piece's AABB, horizontally
        lo, hi = scene.solids[:, [0, 2]], scene.solids[:, [3, 5]]
        out = np.maximum(np.maximum(lo - scene.cam_pos[[0, 2]], scene.cam_pos[[0, 2]] - hi), 0.0)
        return float(np.min(np.linalg.norm(out, axis=1)))

    idx = list(range(24))
    gaps_far = [gap(frame_scene(3, i, far)) for i in idx]
    gaps_near = [gap(frame_scene(3, i, near)) for i in idx]
    assert np.median(gaps_near) < 1.2 < np.median(gaps_far) + 1.2
    assert np.mean(np.array(gaps_near) <= 1.25) > 0.8  # a few scenes fall back to a free camera
    d_far, d_near = render_batch(3, idx, far), render_batch(3, idx, near)

    def median_depth(out) -> float:
        return float(
            np.median([d[v].median() for d, v in zip(out["depth"], out["valid"], strict=True)])
        )

    assert median_depth(d_near) < 0.75 * median_depth(d_far)


def test_camera_light_and_ambient_change_lighting_not_geometry():
    with pytest.raises(ValueError, match="camera_light"):
        SynthConfig(camera_light=-0.1)
    with pytest.raises(ValueError, match="ambient"):
        SynthConfig(ambient=(0.5, 0.2))
    base = SynthConfig(size=(32, 32))
    lamp = SynthConfig(size=(32, 32), camera_light=1.0)
    scene, lit = frame_scene(2, 1, base), frame_scene(2, 1, lamp)
    assert len(lit.lights) == len(scene.lights) + 1
    assert np.allclose(lit.lights[-1, :3], lit.cam_pos + [0.0, 0.1, 0.0])
    idx = list(range(8))
    a, b = render_batch(2, idx, base), render_batch(2, idx, lamp)
    assert torch.equal(a["depth"], b["depth"])  # same scenes and cameras
    gain = b["rgb"].float().mean(1) - a["rgb"].float().mean(1)  # (B, H, W)
    d, v = a["depth"], a["valid"]
    near, far = v & (d < d[v].quantile(0.25)), v & (d > d[v].quantile(0.75))
    assert gain[near].mean() > 1.0 + gain[far].mean()  # the lamp lights near surfaces most
    flat = render_batch(2, idx, SynthConfig(size=(32, 32), ambient=(1.5, 1.5)))
    assert torch.equal(flat["depth"], a["depth"])

    def shadow_ratio(out) -> float:  # auto exposure fixes the median: shadows lift instead
        y = out["rgb"].float().mean(1).flatten(1)
        return float((y.quantile(0.1, dim=1) / y.quantile(0.5, dim=1)).mean())

    assert shadow_ratio(flat) > shadow_ratio(a) + 0.01


def test_a_set_being_written_by_another_process_is_refused(tmp_path):
    """Two `synth` into one folder at once wrote a mix of both seeds under one meta.json: the
    second is now refused while the first holds the folder, and a finished set leaves no lock."""
    import subprocess
    import sys

    from depthart_core.data.synthetic.set import write_synthetic_set
    from depthart_core.rundir import LOCK_NAME, RunDirError

    out = tmp_path / "set"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from depthart_core.rundir import hold_folder\n"
         "lock = hold_folder(sys.argv[1]); print('held', flush=True); time.sleep(60)",
         str(out)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirError, match="in use by another depthart process"):
            write_synthetic_set(out, 2, 0, (16, 16), progress=False)
        assert not (out / "meta.json").exists() and not (out / "rgb").exists()
    finally:
        holder.kill()
        holder.wait()
    write_synthetic_set(out, 2, 0, (16, 16), progress=False)
    assert (out / "meta.json").is_file() and not (out / LOCK_NAME).exists()


def test_validation_from_the_training_seed_is_said(tmp_path, caplog):
    """Frame i of a seed is one scene: a val_seed equal to the training seed (the stream's, or
    a set's without val_root) validates on training frames, and a warning says so."""
    from depthart_core.data.synthetic.set import write_synthetic_set
    from depthart_core.training.config import DataConfig
    from depthart_core.training.data import validation_batch

    with caplog.at_level(logging.WARNING):
        validation_batch(DataConfig(seed=5, val_seed=5, val_count=1), 16)
        assert "data.val_seed 5 is data.seed" in caplog.text
        caplog.clear()
        validation_batch(DataConfig(seed=5, val_seed=6, val_count=1), 16)
        assert "val_seed" not in caplog.text
        write_synthetic_set(tmp_path / "s", 1, 7, (16, 16), progress=False)
        cfg = DataConfig(source="synthetic_set", root=str(tmp_path / "s"), val_seed=7, val_count=1)
        validation_batch(cfg, 16)
        assert "data.val_seed 7 is the set" in caplog.text
