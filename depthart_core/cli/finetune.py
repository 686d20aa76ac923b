"""`depthart finetune BAG [BAG ...] --image-topic T --depth-topic T --out RUN_DIR`.

Fine-tunes a checkpoint on a robot's own RGB-D recording and reports before/after scores on a
held-out block of it (logic in `depthart_core.finetune`). Runs under torchrun like `train`.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune",
        help="fine-tune on RGB-D rosbags (image + sensor depth) and report before/after",
        description="Pairs image and depth by header stamp, splits each bag by time into "
        "training and held-out blocks, fine-tunes with the DepthART objective and writes "
        "RUN_DIR/checkpoint.safetensors (loads in predict, the node and export), report.md, "
        "report.json and figure.png.",
    )
    p.add_argument("bags", nargs="+", metavar="BAG", help="ROS 2 bags (MCAP or sqlite3)")
    p.add_argument("--image-topic", required=True, help="sensor_msgs/Image colour topic")
    p.add_argument("--depth-topic", required=True, help="depth topic (16UC1 mm or 32FC1 m)")
    p.add_argument("--camera-info-topic", default=None, help="the colour camera's CameraInfo")
    p.add_argument(
        "--depth-info-topic",
        default=None,
        help="the depth camera's CameraInfo: with --camera-info-topic, maps depth of another "
        "size or crop onto the image",
    )
    p.add_argument("--checkpoint", default="", help="base model (default: the shipped one)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--max-dt", type=float, default=0.02, help="stamp tolerance [s] (0.02)")
    p.add_argument("--heldout", type=float, default=0.2, help="held-out share of each bag (0.2)")
    p.add_argument("--split-gap", type=float, default=1.0, help="gap before held-out [s] (1.0)")
    p.add_argument("--min-valid", type=float, default=0.2, help="min. valid depth share (0.2)")
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
    p.add_argument("--eval-frames", type=int, default=100, help="held-out frames scored (100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's choice)")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR's run")
    p.add_argument("--overwrite", action="store_true", help="move RUN_DIR's run aside, restart")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depthart_core.finetune.frames import FrameConfig
    from depthart_core.finetune.run import FinetuneConfig, run_finetune

    if args.threads:
        from depthart_core.runtime.threads import set_torch_threads

        set_torch_threads(args.threads)
    cfg = FinetuneConfig(
        frames=FrameConfig(
            image_topic=args.image_topic,
            depth_topic=args.depth_topic,
            camera_info_topic=args.camera_info_topic,
            depth_info_topic=args.depth_info_topic,
            max_dt_s=args.max_dt,
            min_valid=args.min_valid,
            heldout=args.heldout,
            gap_s=args.split_gap,
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
    )
    report = run_finetune(
        args.bags, cfg, args.out, args.resume, args.overwrite, progress=not args.no_progress
    )
    if report is None:  # a torchrun rank other than 0
        return 0
    s, b, a = report["split"], report["before"]["depthart"], report["after"]["depthart"]
    print(
        f"frames: {report['counts']['total']['paired']} paired, {s['train']} training, "
        f"{s['heldout']} held out ({s['scored']} scored)"
    )
    print(
        f"held-out AbsRel {b['abs_rel']:.4f} -> {a['abs_rel']:.4f} "
        f"({report['change']['depthart']['abs_rel']:+.1%}); delta1_bad {b['delta1_bad']:.4f} -> "
        f"{a['delta1_bad']:.4f}"
    )
    print(f"checkpoint {report['checkpoint']}; report {args.out}/report.md")
    return 0
