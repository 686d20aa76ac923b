"""The up from the image's vertical lines (`depthart_core.vertical_lines`): on drawn images of
known vertical edges seen by a pitched and rolled camera, on scenes without vertical structure,
and on the renderer's rooms against their true up; and the horizon's vanishing points where
there are no vertical edges (a drawn tiled floor) or the vertical lines refuse the frame."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from depthart_core.ground_plane import expected_up
from depthart_core.vertical_lines import (
    VerticalLinesConfig,
    frame_lines_up,
    line_segments,
    up_from_lines,
    up_from_vertical_lines,
)

H, W, F = 480, 640, 450.0
K_33 = np.array([[F, 0.0, (W - 1) / 2], [0.0, F, (H - 1) / 2], [0.0, 0.0, 1.0]])


def angle_deg(a_3, b_3) -> float:
    return math.degrees(math.acos(min(1.0, abs(float(np.dot(a_3, b_3))))))


def optical_from_world(pitch_deg: float, roll_deg: float) -> np.ndarray:
    """(3, 3) world (x right, y up, z forward) -> optical frame, for a camera pitched down and
    rolled right side down; its image of the world's up is `expected_up(pitch, roll)`."""
    p, r = math.radians(pitch_deg), math.radians(roll_deg)
    flip_33 = np.diag([1.0, -1.0, 1.0])  # y up -> y down
    pitch_33 = np.array(
        [[1.0, 0.0, 0.0], [0.0, math.cos(p), -math.sin(p)], [0.0, math.sin(p), math.cos(p)]]
    )
    roll_33 = np.array(
        [[math.cos(r), math.sin(r), 0.0], [-math.sin(r), math.cos(r), 0.0], [0.0, 0.0, 1.0]]
    )
    return roll_33 @ pitch_33 @ flip_33


def drawn_scene(
    pitch_deg: float,
    roll_deg: float,
    vertical: bool = True,
    lean_deg: float = 0.0,
    leaning: int = 0,
) -> np.ndarray:
    """A grey image of dark poles (or, with vertical=False, horizontal rails) 2-8 m ahead, 2 m
    tall from 1 m below the camera, drawn anti-aliased; and `leaning` more poles, all leaning
    `lean_deg` to the right (parallel, like a slanted texture's joints: they agree on their own
    vanishing point)."""
    R_33 = optical_from_world(pitch_deg, roll_deg)
    img = np.full((H, W), 200, np.uint8)
    rng = np.random.default_rng(1)
    lean = math.radians(lean_deg)
    lean_3 = np.array([math.sin(lean), math.cos(lean), 0.0])  # world y up, tilted toward x
    for k in range(24 + leaning):
        x, z = rng.uniform(-4.0, 4.0), rng.uniform(2.0, 8.0)
        if k >= 24:
            base = np.array([x, -1.0, z])
            ends = [base, base + 2.0 * lean_3]
        elif vertical:
            ends = [np.array([x, -1.0, z]), np.array([x, 1.0, z])]
        else:
            y = rng.uniform(-1.0, 1.0)
            ends = [np.array([x - 1.0, y, z]), np.array([x + 1.0, y, z])]
        pix = []
        for e in ends:
            c = R_33 @ e
            if c[2] <= 0.1:
                break
            pix.append((K_33 @ (c / c[2]))[:2])
        if len(pix) == 2:
            a, b = (tuple(int(round(v * 16)) for v in q) for q in pix)
            cv2.line(img, a, b, 40, 3, cv2.LINE_AA, 4)  # 4 fractional bits: sub-pixel ends
    return img


def drawn_floor(pitch_deg: float, roll_deg: float, families: int = 2) -> np.ndarray:
    """A grey image of a floor 1 m below the camera, 1.5-9 m ahead, 0.75 m tiles drawn as filled
    polygons (their edges are the lines): a checkerboard (edges across and along the view), or
    with families=1 bands across the view only; no vertical edge."""
    R_33 = optical_from_world(pitch_deg, roll_deg)
    img = np.full((H, W), 200, np.uint8)
    step = 0.75
    for i, x in enumerate(np.arange(-6.0, 6.0, step)):
        for j, z in enumerate(np.arange(1.5, 9.0, step)):
            if (i + j if families == 2 else j) % 2:
                continue
            corners = [(x, z), (x + step, z), (x + step, z + step), (x, z + step)]
            c_43 = np.array([R_33 @ np.array([cx, -1.0, cz]) for cx, cz in corners])
            if (c_43[:, 2] <= 0.1).any():
                continue
            pix_42 = (c_43 @ K_33.T)[:, :2] / c_43[:, 2:]
            cv2.fillPoly(img, [np.round(pix_42 * 16).astype(np.int32)], 60, cv2.LINE_AA, 4)
    return img


@pytest.mark.parametrize("pitch, roll", [(0.0, 0.0), (10.0, 2.0), (25.0, -3.0), (4.0, 6.0)])
def test_the_up_of_drawn_vertical_edges_is_found_to_a_fraction_of_a_degree(pitch, roll):
    true_3 = expected_up(pitch, roll)
    prior_3 = expected_up(pitch + 3.0, roll - 2.0)  # the mount's prior, the bumps unknown
    found = up_from_vertical_lines(drawn_scene(pitch, roll), K_33, prior_3)
    assert found.code == "ok", found.reason
    assert angle_deg(found.up_3, true_3) < 0.3, (found, angle_deg(prior_3, true_3))
    assert np.dot(found.up_3, true_3) > 0  # pointing up, not down
    # P (3x4) works as K does
    P = np.concatenate([K_33, np.zeros((3, 1))], axis=1).reshape(-1)
    assert up_from_vertical_lines(drawn_scene(pitch, roll), P, prior_3).up_3 == found.up_3


def test_a_rival_family_of_parallel_lines_makes_the_frame_ambiguous():
    """Poles leaning 5 deg, as many as the true verticals, agree on their own vanishing point:
    the ratio test refuses the frame and says why; a few leaning poles do not (the up is still
    the true one); with the test off (ratio 1) an up comes back."""
    true_3 = expected_up(10.0, 2.0)
    prior_3 = expected_up(12.0, 0.0)
    rival = up_from_vertical_lines(drawn_scene(10.0, 2.0, lean_deg=5.0, leaning=24), K_33, prior_3)
    assert rival.up_3 is None and rival.code == "ambiguous", rival
    assert "another family of lines, 2+ deg from the up" in rival.reason
    few = up_from_vertical_lines(drawn_scene(10.0, 2.0, lean_deg=5.0, leaning=3), K_33, prior_3)
    assert few.code == "ok" and angle_deg(few.up_3, true_3) < 0.3, few
    off = up_from_vertical_lines(
        drawn_scene(10.0, 2.0, lean_deg=5.0, leaning=24),
        K_33,
        prior_3,
        VerticalLinesConfig(rival_ratio=1.0),
    )
    assert off.code == "ok", off


def test_no_vertical_structure_gives_no_up_and_says_why():
    prior_3 = expected_up(10.0, 0.0)
    blank = up_from_vertical_lines(np.full((H, W, 3), 128, np.uint8), K_33, prior_3)
    assert blank.up_3 is None and blank.code == "few_lines"
    assert "no vertical structure" in blank.reason
    rails = up_from_vertical_lines(drawn_scene(10.0, 0.0, vertical=False), K_33, prior_3)
    assert rails.up_3 is None and rails.code in ("few_lines", "few_inliers")


@pytest.mark.parametrize("pitch, roll", [(5.0, 0.0), (12.0, 3.0), (25.0, -2.0)])
def test_without_vertical_edges_the_horizon_of_a_floor_grid_gives_the_up(pitch, roll):
    """No vertical edge: the vertical lines refuse; the two families of the floor's grid meet
    the horizon, and their vanishing points give the up to half a degree (the mount prior is
    3.5-3.6 deg off); the node's and replay's entry point says it came from the horizon."""
    true_3 = expected_up(pitch, roll)
    prior_3 = expected_up(pitch + 3.0, roll - 2.0)
    floor = drawn_floor(pitch, roll)
    assert up_from_vertical_lines(floor, K_33, prior_3).up_3 is None
    found = up_from_lines(floor, K_33, prior_3)
    assert found.code == "ok" and found.source == "horizon", found
    assert angle_deg(found.up_3, true_3) < 0.5, (found, angle_deg(prior_3, true_3))
    assert np.dot(found.up_3, true_3) > 0
    up_3, source, code = frame_lines_up(floor, floor.shape, K_33, prior_3)
    assert code == "horizon" and source.startswith("horizon (") and np.allclose(up_3, found.up_3)


def test_the_horizon_needs_two_families_and_can_be_switched_off():
    """One family of parallel floor lines fixes one direction on the horizon, not the horizon:
    no up, and the reason says so; `horizon_vps=0` keeps the vertical lines alone; where the
    vertical lines find an up, the horizon is not consulted; a horizon more than 5 deg from the
    prior is not taken."""
    prior_3 = expected_up(10.0, 0.0)
    one = up_from_lines(drawn_floor(10.0, 1.0, families=1), K_33, prior_3)
    assert one.up_3 is None and one.code in ("few_lines", "few_inliers", "far_from_prior"), one
    assert "horizon: " in one.reason and "none two 20+ deg apart" in one.reason, one.reason
    off = up_from_lines(drawn_floor(10.0, 1.0), K_33, prior_3, VerticalLinesConfig(horizon_vps=0))
    assert off.up_3 is None and "horizon" not in off.reason, off
    poles = up_from_lines(drawn_scene(10.0, 1.0), K_33, prior_3)
    assert poles.source == "vertical" and poles.code == "ok", poles
    # a rival family and no horizontal edges: still ambiguous, and the reason says both
    rival = up_from_lines(drawn_scene(10.0, 2.0, lean_deg=5.0, leaning=24), K_33, prior_3)
    assert rival.up_3 is None and rival.code == "ambiguous", rival
    assert "another family of lines" in rival.reason and "; horizon: " in rival.reason, rival
    # a horizon 7 deg from the prior is outside the 5 deg the up is kept within (either source)
    far = up_from_lines(drawn_floor(17.0, 0.0), K_33, prior_3)
    assert far.up_3 is None and "the horizon's up is 6." in far.reason, far
    assert "deg from the prior (tolerance 5)" in far.reason, far.reason
    wide = VerticalLinesConfig(up_tolerance_deg=10.0)
    found = up_from_lines(drawn_floor(17.0, 0.0), K_33, prior_3, wide)
    assert found.source == "horizon" and angle_deg(found.up_3, expected_up(17.0, 0.0)) < 0.5


def test_an_up_beyond_the_priors_tolerance_is_not_taken():
    # the poles lean 20 deg from the prior: outside its 10 deg search cone, so no up (and never
    # one more than 10 deg from the prior)
    found = up_from_vertical_lines(drawn_scene(30.0, 0.0), K_33, expected_up(10.0, 0.0))
    assert found.up_3 is None, found
    # 7 deg from the prior: found, but outside the 5 deg the up is kept within
    found = up_from_vertical_lines(drawn_scene(17.0, 0.0), K_33, expected_up(10.0, 0.0))
    assert found.code == "far_from_prior" and "(tolerance 5)" in found.reason, found
    loose = VerticalLinesConfig(up_tolerance_deg=8.0)
    found = up_from_vertical_lines(drawn_scene(17.0, 0.0), K_33, expected_up(10.0, 0.0), loose)
    assert found.code == "ok" and angle_deg(found.up_3, expected_up(17.0, 0.0)) < 0.3
    wide = VerticalLinesConfig(max_angle_deg=25.0, up_tolerance_deg=25.0)
    found = up_from_vertical_lines(drawn_scene(30.0, 0.0), K_33, expected_up(10.0, 0.0), wide)
    assert found.code == "ok" and angle_deg(found.up_3, expected_up(30.0, 0.0)) < 0.3


def drawn_planks(pitch_deg: float, roll_deg: float, dashes: bool, lateral: int) -> np.ndarray:
    """A floor 1 m down of planks running straight ahead (one horizontal family), no vertical
    edge; with `dashes` one lateral line 7 m ahead drawn as 14 dashes (pieces of one image
    line), and `lateral` real lateral boards (a second family)."""
    R_33 = optical_from_world(pitch_deg, roll_deg)
    img = np.full((H, W), 200, np.uint8)

    def line(a_3, b_3) -> None:
        c_23 = np.array([R_33 @ a_3, R_33 @ b_3])
        if (c_23[:, 2] > 0.1).all():
            pix_22 = (c_23 @ K_33.T)[:, :2] / c_23[:, 2:]
            a, b = (tuple(int(round(v * 16)) for v in q) for q in pix_22)
            cv2.line(img, a, b, 50, 3, cv2.LINE_AA, 4)

    for x in np.arange(-3.0, 3.01, 0.5):  # world x right, y up, z forward
        line(np.array([x, -1.0, 1.5]), np.array([x, -1.0, 7.0]))
    for x in np.arange(-4.0, 4.0, 0.6) if dashes else []:
        line(np.array([x, -1.0, 7.0]), np.array([x + 0.4, -1.0, 7.0]))
    for k in range(lateral):
        z = 2.0 + 1.2 * k
        line(np.array([-2.5, -1.0, z]), np.array([2.5, -1.0, z]))
    return img


@pytest.mark.parametrize("pitch, roll", [(10.0, 0.0), (10.0, 3.0), (15.0, -2.0)])
def test_pieces_of_one_image_line_fix_no_direction(pitch, roll):
    """Pieces of one image line share a plane, which leaves a direction free to turn in it: a
    dashed lateral line beside one real family is no second vanishing point (it gave an up
    2 deg off), and the split edges of one plank are no up (4 deg off): refused, or found from
    the real families to a fraction of a degree."""
    truth = expected_up(pitch, roll)
    alone = up_from_lines(drawn_planks(pitch, roll, True, 0), K_33, truth)
    assert alone.up_3 is None, (alone.code, angle_deg(alone.up_3, truth))
    for dashes in (True, False):
        found = up_from_lines(drawn_planks(pitch, roll, dashes, 3), K_33, truth)
        assert found.up_3 is None or angle_deg(found.up_3, truth) < 0.5, (found, dashes)


def test_without_the_spread_check_those_frames_gave_wrong_ups():
    """The two failures the check removes (min_spread 0, as before it)."""
    off = VerticalLinesConfig(min_spread=0.0)
    level, rolled = expected_up(10.0, 0.0), expected_up(10.0, 3.0)
    dashed = up_from_lines(drawn_planks(10.0, 0.0, True, 0), K_33, level, off)
    assert dashed.source == "horizon" and angle_deg(dashed.up_3, level) > 1.5
    plank = up_from_lines(drawn_planks(10.0, 3.0, False, 3), K_33, rolled, off)
    assert plank.source == "vertical" and angle_deg(plank.up_3, rolled) > 3.0
    fixed = up_from_lines(drawn_planks(10.0, 3.0, False, 3), K_33, rolled)
    assert fixed.source == "horizon" and angle_deg(fixed.up_3, rolled) < 0.5


def test_float_images_and_grey_images_give_the_same_segments():
    grey = drawn_scene(5.0, 1.0)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    assert np.allclose(line_segments(grey), line_segments(rgb))
    assert np.allclose(line_segments(grey), line_segments(rgb / 255.0), atol=1e-6)


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_angle_deg", 0.0),
        ("max_angle_deg", float("nan")),
        ("inlier_deg", 20.0),
        ("min_length", 1.5),
        ("min_lines", 1),
        ("hypotheses", 0),
        ("rival_ratio", 0.0),
        ("rival_ratio", float("nan")),
        ("rival_deg", 0.1),
        ("rival_deg", 25.0),
        ("horizon_vps", 1),
        ("horizon_vps", -1),
        ("horizon_min_lines", 1),
        ("horizon_sep_deg", 2.0),
        ("up_tolerance_deg", 0.0),
        ("up_tolerance_deg", 12.0),
        ("up_tolerance_deg", float("nan")),
        ("horizon_sep_deg", float("nan")),
        ("min_spread", -0.1),
        ("min_spread", float("nan")),
    ],
)
def test_bad_settings_are_refused_naming_the_value(field, value):
    with pytest.raises(ValueError, match=field):
        VerticalLinesConfig(**{field: value})


def test_a_bad_calibration_is_refused():
    with pytest.raises(ValueError, match="3x3 K or 3x4 P"):
        up_from_vertical_lines(drawn_scene(0.0, 0.0), [1.0, 2.0], expected_up())


def test_on_rendered_rooms_the_lines_beat_the_mount_prior():
    """A rendered cart path at a camera's resolution: the lines' up against the renderer's true
    up, and the mount prior's (which misses the path's bumps) as the bar to beat."""
    from depthart_core.evaluation.ground_plane import RigEval, rig_frames

    rig = RigEval.named("cart", sequences=1, frames=8, size=(H, W), seed=0)
    out = rig_frames(rig, 0)
    prior_3 = expected_up(rig.mount_pitch_deg)
    lines_err, prior_err = [], []
    for i in range(out["rgb"].shape[0]):
        true_3 = out["pose"][i, :3, :3].numpy().T @ np.array([0.0, 1.0, 0.0])
        found = up_from_vertical_lines(
            out["rgb"][i].permute(1, 2, 0).numpy(), out["K"][i].numpy(), prior_3
        )
        if found.up_3 is not None:
            lines_err.append(angle_deg(found.up_3, true_3))
            prior_err.append(angle_deg(prior_3, true_3))
    assert len(lines_err) >= 5, lines_err
    assert np.median(lines_err) < 0.5 < np.median(prior_err), (lines_err, prior_err)


def test_line_segments_are_the_same_when_two_threads_detect_at_once():
    """Two cameras' nodes in one process each detect on their own worker thread: OpenCV's line
    detector keeps per-call state and releases the GIL, so one shared detector mixed their
    segments up (wrong counts, no error)."""
    import threading

    images = [drawn_scene(10.0, 0.0), drawn_floor(20.0, 5.0)]
    expected = [line_segments(img) for img in images]
    assert expected[0].shape != expected[1].shape  # different answers, so a mix-up shows
    wrong: list[tuple[int, tuple[int, ...]]] = []

    def detect(i: int) -> None:
        for _ in range(30):
            got = line_segments(images[i])
            if got.shape != expected[i].shape or not np.array_equal(got, expected[i]):
                wrong.append((i, got.shape))

    threads = [threading.Thread(target=detect, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong, wrong[:5]
