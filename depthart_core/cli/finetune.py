"""`depthart finetune BAG [BAG ...] --image-topic T (--depth-topic T | --teacher CKPT) --out RUN`.

Fine-tunes a checkpoint on a robot's own RGB-D recording and reports before/after scores on a
held-out block of it; with `--teacher`, on a teacher's labels of its RGB frames, sensor depth
(if any) scoring only (logic in `depthart_core.finetune`). Runs under torchrun like `train`.
"""

from __future__ import annotations

import argparse

from depthart_core.cli.args import (
    OPTION_OF_FIELD,
    add_progress_arg,
    options_named,
    remember_defaults,
    without_effect,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune",
        help="fine-tune on RGB-D rosbags (image + sensor depth) and report before/after",
        description="Pairs image and depth by header stamp, splits each bag by time into "
        "training and held-out blocks, fine-tunes with the DepthART objective and writes "
        "RUN_DIR/checkpoint.safetensors (loads in predict, the node and export), report.md, "
        "report.json and figure.png.",
    )
    p.add_argument(
        "bags", nargs="+", metavar="BAG", help="ROS 2 bags (MCAP or sqlite3) or ROS 1 .bag files"
    )
    p.add_argument(
        "--image-topic",
        required=True,
        help="colour topic: sensor_msgs/Image, or image_transport's CompressedImage (JPEG/PNG)",
    )
    p.add_argument(
        "--depth-topic",
        default=None,
        help="depth topic (16UC1 mm or 32FC1 m, raw or image_transport's compressedDepth); "
        "with --teacher it only scores, never trains",
    )
    p.add_argument(
        "--teacher",
        default=None,
        metavar="CKPT",
        help="label the frames with this checkpoint (any input size or tokenizer) and train "
        "on its labels: no depth sensor needed; or a labels file from --labels-only",
    )
    p.add_argument(
        "--teacher-sampling",
        default="soft",
        choices=("greedy", "soft", "paper"),
        help="the teacher's decoding (soft); paper: top-k 900 / top-p 0.9 / mean of 5 codes",
    )
    p.add_argument(
        "--teacher-flip-average", action="store_true", help="teacher also runs mirrored, averaged"
    )
    p.add_argument(
        "--teacher-device", default="auto", choices=("auto", "cpu", "cuda"), help="(auto)"
    )
    p.add_argument(
        "--labels-only",
        action="store_true",
        help="stop once the teacher's labels are in RUN/teacher/labels.safetensors (label on a "
        "GPU workstation, then train with --teacher that file on the robot)",
    )
    p.add_argument("--camera-info-topic", default=None, help="the colour camera's CameraInfo")
    p.add_argument(
        "--depth-info-topic",
        default=None,
        help="the depth camera's CameraInfo (needs --camera-info-topic): maps depth of another "
        "size, crop or lens onto the image through both lens models (K and D of a raw image: "
        "plumb_bob, rational_polynomial, equidistant; P of a topic named *rect*, as image_rect); "
        "the depth must share the colour camera's optical centre: differing frame_ids are "
        "warned about, the extrinsics not applied; a frame without a usable calibration on "
        "either side is rejected",
    )
    p.add_argument("--checkpoint", default="", help="base model (default: the shipped one)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--max-dt", type=float, default=0.02, help="stamp tolerance [s] (0.02)")
    p.add_argument(
        "--heldout", type=float, default=0.2, help="held-out share of each recording (0.2)"
    )
    p.add_argument("--split-gap", type=float, default=1.0, help="gap before held-out [s] (1.0)")
    p.add_argument(
        "--split",
        default="recording",
        choices=("recording", "bag"),
        help="recording: bags whose stamps overlap or nearly touch are split as one drive "
        "(default); bag: each bag alone (simulator drives whose clocks all start at 0)",
    )
    p.add_argument("--min-valid", type=float, default=0.2, help="min. valid depth share (0.2)")
    p.add_argument(
        "--stride",
        default=1,
        metavar="N",
        help="keep every N-th image of each bag (1: all); the others are not decoded, and the "
        "split stays that of every image (a long 30 Hz recording: 10)",
    )
    p.add_argument("--steps", type=int, default=100, help="training steps (100)")
    p.add_argument("--batch-size", type=int, default=16, help="frames per step and process (16)")
    p.add_argument("--lr", type=float, default=1e-4, help="learning rate (1e-4, cosine decay)")
    p.add_argument(
        "--objective", default="depthart", choices=("depthart", "teacher_forcing"), help="stage 2"
    )
    p.add_argument(
        "--adapt-tokenizer",
        type=int,
        default=0,
        metavar="STEPS",
        help="first fine-tune the tokenizer for STEPS stage-1 steps (default 0: frozen)",
    )
    p.add_argument(
        "--eval-frames",
        type=int,
        default=100,
        help="held-out frames scored, spread over all bags (100)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's choice)")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR's run")
    p.add_argument("--overwrite", action="store_true", help="move RUN_DIR's run aside, restart")
    add_progress_arg(p)
    p.set_defaults(func=run)
    remember_defaults(p)


def _stride(value: int | str) -> int:
    """--stride as given: a positive integer (checked by `FrameConfig`), else one line."""
    try:
        return int(value)
    except ValueError:
        raise ValueError(
            f"--stride must be a positive integer (keep every N-th image), got {value!r}"
        ) from None


def _config(args: argparse.Namespace, teacher):
    """The run's settings from the options (a bad value raises naming the field)."""
    from depthart_core.finetune.frames import FrameConfig
    from depthart_core.finetune.run import FinetuneConfig

    return FinetuneConfig(
        frames=FrameConfig(
            image_topic=args.image_topic,
            depth_topic=args.depth_topic,
            camera_info_topic=args.camera_info_topic,
            depth_info_topic=args.depth_info_topic,
            max_dt_s=args.max_dt,
            min_valid=args.min_valid,
            heldout=args.heldout,
            gap_s=args.split_gap,
            split=args.split,
            sensor_scores_only=teacher is not None,
            stride=_stride(args.stride),
        ),
        checkpoint=args.checkpoint,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        mode=args.objective,
        adapt_tokenizer=args.adapt_tokenizer,
        eval_frames=args.eval_frames,
        seed=args.seed,
        device=args.device,
        teacher=teacher,
    )


def run(args: argparse.Namespace) -> int:
    from depthart_core.finetune.run import run_finetune
    from depthart_core.finetune.teacher import TeacherConfig

    if not args.depth_topic and not args.teacher:
        raise ValueError("give --depth-topic (sensor depth to train on) or --teacher CKPT")
    if args.labels_only and not args.teacher:
        raise ValueError("--labels-only needs --teacher")
    teacher_only = ["teacher_sampling", "teacher_flip_average", "teacher_device"]
    unused = None if args.teacher else without_effect(args, teacher_only, "--teacher")
    if unused:  # set, but doing nothing: said, not ignored
        raise ValueError(unused)
    if args.depth_info_topic and not args.camera_info_topic:
        raise ValueError(
            f"--depth-info-topic {args.depth_info_topic} needs --camera-info-topic: depth is "
            "mapped through both cameras' intrinsics"
        )
    teacher = None
    if args.teacher:
        teacher = TeacherConfig(
            args.teacher,
            args.teacher_sampling,
            args.seed,
            args.teacher_flip_average,
            args.teacher_device,
        )

    if args.threads:
        from depthart_core.runtime.threads import set_torch_threads

        set_torch_threads(args.threads)
    with options_named(OPTION_OF_FIELD | {"stride": "--stride"}):
        cfg = _config(args, teacher)
    report = run_finetune(
        args.bags,
        cfg,
        args.out,
        args.resume,
        args.overwrite,
        progress=not args.no_progress,
        labels_only=args.labels_only,
    )
    if report is None:  # a torchrun rank other than 0
        return 0
    s = report["split"]
    print(
        f"frames: {report['counts']['total']['paired']} paired, {s['train']} training, "
        f"{s['heldout']} held out ({s['scored']} scored)"
    )
    if args.labels_only:
        t = report["teacher"]
        print(f"teacher labels ({t['labels']}) in {args.out}/teacher/labels.safetensors")
        return 0
    if "vs_teacher" in report:
        b, a = report["vs_teacher"]["before"], report["vs_teacher"]["after"]
        print(f"held-out AbsRel against the teacher {b['abs_rel']:.4f} -> {a['abs_rel']:.4f}")
    if "before" in report:
        b, a = report["before"]["depthart"], report["after"]["depthart"]
        t = report.get("teacher_vs_sensor", {}).get("depthart")
        print(
            f"held-out AbsRel against sensor depth {b['abs_rel']:.4f} -> {a['abs_rel']:.4f} "
            f"({report['change']['depthart']['abs_rel']:+.1%}); delta1_bad "
            f"{b['delta1_bad']:.4f} -> {a['delta1_bad']:.4f}"
            + (f"; teacher {t['abs_rel']:.4f}" if t else "")
        )
    print(f"checkpoint {report['checkpoint']}; report {args.out}/report.md")
    return 0
