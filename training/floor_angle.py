"""How far the model's floor is from the true up, camera only (issue #26; BENCHMARKS 10).

On the rendered rig paths of `training/ground_plane_eval.py` (the same rooms for the same
seeds), every frame's relative depth is fitted with the node's ground-plane fit as a camera-only
robot runs it (`normal: fit`, the mount's pitch as the prior, no IMU), and the fitted floor normal
is compared with the renderer's true up. The same fit on the true depth shows what the fit alone
costs. Per rig it prints the angle error (median, 90th percentile), its pitch part (mean and sd
over frames, and the mean per room), and how the pitch error goes with the scale's error
(correlation with log(fitted scale / per-frame median scale)).

    OMP_NUM_THREADS=1 python training/floor_angle.py --seeds 0 1       # about 2 min
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np


def pitch_roll_deg(up_3: np.ndarray) -> tuple[float, float]:
    """The up's tilt toward the optical axis (pitch) and toward x (roll), in degrees."""
    u = up_3 / np.linalg.norm(up_3)
    return math.degrees(math.atan2(u[2], abs(u[1]))), math.degrees(math.atan2(u[0], abs(u[1])))


def angle_deg(a_3: np.ndarray, b_3: np.ndarray) -> float:
    cos = float(a_3 @ b_3 / (np.linalg.norm(a_3) * np.linalg.norm(b_3)))
    return math.degrees(math.acos(min(1.0, abs(cos))))


def main(argv: list[str] | None = None) -> int:
    from depthart_core.evaluation.alignment import median_scale
    from depthart_core.evaluation.ground_plane import RIGS, RigEval, rig_frames
    from depthart_core.ground_plane import GroundPlaneConfig, fit_ground_plane
    from depthart_core.runtime import get_backend
    from depthart_core.sampling import sampling_setting

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--sequences", type=int, default=4, help="rooms per rig and seed (4)")
    ap.add_argument("--checkpoint", default=None, help="default: the shipped model")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if args.sequences < 1:
        ap.error(f"--sequences must be >= 1, got {args.sequences}")
    backend = get_backend(
        "torch", args.checkpoint, threads=args.threads, sampling=sampling_setting("soft")
    )
    print(f"model: {backend.describe()}")
    for rig_name in RIGS:
        model_err, gt_err, pitch_err, true_pitch, log_scale_err, rooms = [], [], [], [], [], {}
        for seed in args.seeds:
            rig = RigEval.named(rig_name, sequences=args.sequences, seed=seed)
            cfg = GroundPlaneConfig(
                camera_height_m=rig.height_m, pitch_deg=rig.mount_pitch_deg, normal="fit"
            )
            for seq in range(rig.sequences):
                out = rig_frames(rig, seq)
                for i in range(out["rgb"].shape[0]):
                    gt_HW = out["depth"][i].numpy().astype(np.float64)
                    valid_HW = out["valid"][i].numpy()
                    K_33 = out["K"][i].numpy().astype(np.float64)
                    P = [*K_33[0], 0.0, *K_33[1], 0.0, *K_33[2], 0.0]
                    up_3 = out["pose"][i, :3, :3].numpy().T @ np.array([0.0, 1.0, 0.0])
                    rgb_HW3 = out["rgb"][i].permute(1, 2, 0).numpy()
                    rel_HW = np.asarray(backend.predict(rgb_HW3), dtype=np.float64)
                    gt_fit = fit_ground_plane(np.where(valid_HW, gt_HW, np.nan), P, cfg)
                    if gt_fit.code == "ok":
                        gt_err.append(angle_deg(np.array(gt_fit.normal_3), up_3))
                    fit = fit_ground_plane(rel_HW, P, cfg)
                    if fit.code != "ok":
                        continue
                    n_3 = np.array(fit.normal_3)
                    n_3 = n_3 if n_3 @ up_3 >= 0 else -n_3
                    model_err.append(angle_deg(n_3, up_3))
                    err = pitch_roll_deg(n_3)[0] - pitch_roll_deg(up_3)[0]
                    pitch_err.append(err)
                    true_pitch.append(pitch_roll_deg(up_3)[0])
                    rooms.setdefault((seed, seq), []).append(err)
                    s_med = median_scale(rel_HW, gt_HW, valid_HW & np.isfinite(rel_HW))
                    log_scale_err.append(math.log(fit.scale / s_med))
        if not model_err:
            print(f"{rig_name}: no frame fitted")
            continue
        pe = np.array(pitch_err)
        per_room = " ".join(f"{np.mean(v):+.1f}" for v in rooms.values())
        print(
            f"{rig_name} ({RIGS[rig_name][0]:g} m): {len(model_err)} frames fitted; angle to the "
            f"true up: model median {np.median(model_err):.2f} deg, p90 "
            f"{np.percentile(model_err, 90):.1f}; true depth median {np.median(gt_err):.2f}, p90 "
            f"{np.percentile(gt_err, 90):.2f}; pitch error mean {pe.mean():+.2f} "
            f"sd {pe.std():.2f}; "
            f"corr with log scale error {np.corrcoef(pe, log_scale_err)[0, 1]:.2f}; fitted vs "
            f"true pitch corr {np.corrcoef(pe + true_pitch, true_pitch)[0, 1]:.2f}; "
            f"per-room mean pitch error {per_room}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
