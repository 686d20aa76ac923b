"""`depthart predict IMAGE... [--checkpoint CKPT] --out DIR`: depth maps for image files."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="predict relative depth for image files",
        description="Writes <stem>.npy (float32 HxW relative depth) and <stem>_depth.png "
        "(colorized) for every image.",
    )
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    p.add_argument("--checkpoint", default=None, help="checkpoint (default: the shipped model)")
    p.add_argument("--backend", default="torch", help="auto|tensorrt|onnxruntime|torch")
    p.add_argument("--device", default="cpu")
    p.add_argument("--letterbox", action="store_true", help="aspect-preserving resize + padding")
    p.add_argument("--colormap", default="turbo")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import cv2
    import numpy as np
    from tqdm import tqdm

    from depthart_core.colormap import colorize
    from depthart_core.runtime import get_backend

    backend = get_backend(
        args.backend, checkpoint=args.checkpoint, device=args.device, letterbox=args.letterbox
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name in tqdm(args.images, desc="predict", unit="img", disable=len(args.images) < 2):
        bgr = cv2.imread(name, cv2.IMREAD_COLOR)
        if bgr is None:
            print(f"skipped {name}: not a readable image")
            failed += 1
            continue
        depth = backend.predict(np.ascontiguousarray(bgr[:, :, ::-1]))
        stem = Path(name).stem
        np.save(out / f"{stem}.npy", depth.astype(np.float32))
        cv2.imwrite(str(out / f"{stem}_depth.png"), colorize(depth, cmap=args.colormap)[:, :, ::-1])
    print(f"wrote {len(args.images) - failed} depth maps to {out} (backend {backend.describe()})")
    return 1 if failed else 0
