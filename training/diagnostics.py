r"""The checks behind the ablation's findings (BENCHMARKS.md section 2).

    # can the pipeline learn at all? memorise 16 frames with a stage-2 objective
    python training/diagnostics.py overfit runs/ablation_tiny/tokenizer/checkpoint.safetensors \
        --mode teacher_forcing
    # greedy vs the paper's sampling (T=1, top-p 0.9, mean of 5 embeddings) on a held-out set
    python training/diagnostics.py sampling runs/ablation_tiny/eval_seed777 \
        runs/ablation_tiny/depthart/checkpoint.safetensors \
        runs/ablation_tiny/teacher_forcing/checkpoint.safetensors
    # does a trained transformer use the image? loss with each frame's own image prefix vs
    # another frame's prefix vs an all-zero prefix (equal losses: the image is ignored)
    python training/diagnostics.py image-usage checkpoints/depthart_tiny_cnn.safetensors
    # how much of the depth is predictable from the image at all? ridge regression from the
    # image prefix (what the transformer sees) and from 16x16 pixels, vs the mean depth map
    python training/diagnostics.py probe runs/small_tok/checkpoint.safetensors \
        ~/.cache/depthart/synth/s0_128px_4000.safetensors runs/ablation_small/eval_seed777
    # the tokenizer's ceiling: held-out depth through encode -> quantize -> decode
    python training/diagnostics.py ceiling runs/tiny_cnn/tokenizer/checkpoint.safetensors \
        runs/tiny_cnn/eval_seed777
    # does the next-scale refinement improve the start or add noise? AbsRel after each scale,
    # per decoding, with bootstrap intervals, and how agreement and correction depend on the
    # model's top-1 probability
    python training/diagnostics.py scales checkpoints/depthart_tiny_cnn.safetensors \
        runs/tiny_cnn/eval_seed777 --frames 200 --decoding greedy soft paper
    # the same pooled over several sets, per-frame curves saved; then two models paired
    python training/diagnostics.py scales CKPT_A SET_1 SET_2 --frames 200 --decoding soft \
        --save runs/a_{decoding}.npy          # and CKPT_B --save runs/b_{decoding}.npy
    python training/diagnostics.py scales-paired runs/a_soft.npy runs/b_soft.npy
    # is one model's lead over another more than frame-sampling noise? paired per-frame
    # differences of two `depthart eval` reports on the same frames, with a bootstrap interval
    python training/diagnostics.py paired RUN_A/eval_seed777/checkpoint/synthetic/report.json \
        RUN_B/eval_seed777/checkpoint/synthetic/report.json
    # a nonlinear reference on the same data: a small CNN regressor, 250 steps of 32 frames
    python training/diagnostics.py cnn ~/.cache/depthart/synth/s0_64px_30000.safetensors \
        runs/ablation_tiny/eval_seed777 --steps 250
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch


def overfit(tokenizer_ckpt: str, mode: str, steps: int, frames: int) -> None:
    from depthart_core.checkpoint import load_checkpoint
    from depthart_core.data.synthetic.config import SynthConfig
    from depthart_core.data.synthetic.render import render_batch
    from depthart_core.evaluation.protocols import evaluate
    from depthart_core.training.objectives import (
        depthart_loss,
        prepare_inputs,
        teacher_forcing_loss,
    )

    torch.manual_seed(0)
    m, _ = load_checkpoint(tokenizer_ckpt)
    S = m.cfg.image_size
    b = render_batch(5, list(range(frames)), SynthConfig(size=(S, S)))
    img, f_D = prepare_inputs(m, b["rgb"], b["depth"], b["valid"])
    m.tokenizer.requires_grad_(False)
    opt = torch.optim.AdamW(m.transformer.parameters(), 1e-3)
    loss_fn = teacher_forcing_loss if mode == "teacher_forcing" else depthart_loss
    depth, valid = b["depth"].numpy(), b["valid"].numpy()

    def abs_rel(pred: np.ndarray) -> float:
        rows = zip(pred, depth, valid, strict=True)
        return float(np.mean([evaluate(p, g, v)["abs_rel"] for p, g, v in rows]))

    for step in range(steps + 1):
        out = loss_fn(m, img, f_D)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        if step % 100 == 0:
            m.eval()
            with torch.no_grad():
                pred = m.predict_normalized(b["rgb"].float() / 127.5 - 1).numpy()
            m.train()
            print(
                f"step {step}: loss {out.loss.item():.3f} token acc {out.logs['acc']:.3f} "
                f"train-set AbsRel {abs_rel(pred):.4f}",
                flush=True,
            )
    with torch.no_grad():
        rec = m.depth_round_trip(b["depth"], b["valid"]).numpy()
    print(f"tokenizer ceiling (encode-quantize-decode) AbsRel {abs_rel(rec):.4f}")


def sampling(eval_root: str, ckpts: list[str], limit: int) -> None:
    from depthart_core.data.synthetic.set import SyntheticSet
    from depthart_core.evaluation.runner import evaluate_predictions
    from depthart_core.model import SamplingConfig
    from depthart_core.runtime.torch_backend import DepthEstimator

    ds = SyntheticSet(eval_root)
    modes = {
        "greedy": None,
        "paper: T=1, top-k 900, top-p 0.9, mean of 5": SamplingConfig(
            greedy=False, temperature=1.0, top_k=900, top_p=0.9, n_samples=5, seed=0
        ),
    }
    for ck in ckpts:
        for name, s in modes.items():
            est = DepthEstimator.from_checkpoint(ck, sampling=s)
            r = evaluate_predictions(ds, est.predict, "depthart", limit=limit, progress=False)
            a = r.aggregate
            print(f"{ck}: {name}: AbsRel {a['abs_rel']:.4f} delta1_bad {a['delta1_bad']:.4f}")


def image_usage(ckpt: str, frames: int, seed: int) -> None:
    from depthart_core.checkpoint import load_checkpoint
    from depthart_core.data.synthetic.config import SynthConfig
    from depthart_core.data.synthetic.render import render_batch
    from depthart_core.training.objectives import (
        depthart_loss,
        prepare_inputs,
        teacher_forcing_loss,
    )

    m, _ = load_checkpoint(ckpt)
    m.eval()
    S = m.cfg.image_size
    b = render_batch(seed, list(range(frames)), SynthConfig(size=(S, S)))
    with torch.no_grad():
        img, f_D = prepare_inputs(m, b["rgb"], b["depth"], b["valid"])
        other = torch.roll(torch.arange(frames), 1)  # each frame gets its neighbour's image
        for name, fn in (("teacher forcing", teacher_forcing_loss), ("depthart", depthart_loss)):
            own, swapped, zero = fn(m, img, f_D), fn(m, img[other], f_D), fn(m, img * 0, f_D)
            print(
                f"{name} loss: own image {own.loss.item():.4f} (token acc {own.logs['acc']:.3f}) "
                f"| another frame's image {swapped.loss.item():.4f} "
                f"| zero image {zero.loss.item():.4f}"
            )


def _readable_samples(root: str, limit: int | None = None) -> list:
    """The first `limit` (default: all) frames of a rendered set that can be read; one whose
    files are missing or damaged is skipped with a warning naming it, and the skips counted."""
    from itertools import islice

    from depthart_core.data.synthetic.set import SyntheticSet

    ds = SyntheticSet(root)
    samples = [s for _, s in islice(ds.readable(), limit)]
    if ds.unreadable_read:  # each named in a warning above
        print(f"{root}: {len(ds.unreadable_read)} unreadable frame(s) skipped")
        if not samples:
            raise SystemExit(f"{root}: none of its {len(ds)} frames could be read")
    return samples


def _pool_and_eval(pool_path: str, eval_root: str, size: int):
    """A cached training pool, its d/q98 targets, and a held-out set resized to `size`."""
    import cv2

    from depthart_core.rundir import load_safetensors
    from depthart_core.tokenizer.codec import decode_depth, encode_depth

    pool = load_safetensors(pool_path)
    rel = decode_depth(encode_depth(pool["depth"], pool["valid"])[0])  # d / q98(d) in [0, 1]
    size = size or pool["rgb"].shape[-1]
    samples = _readable_samples(eval_root)
    rgb = [cv2.resize(s.rgb, (size, size), interpolation=cv2.INTER_AREA) for s in samples]
    return pool, rel, samples, torch.from_numpy(np.stack(rgb)).permute(0, 3, 1, 2).contiguous()


def _score(preds_BHW: np.ndarray, samples) -> float:
    """Mean AbsRel with the paper's protocol, each prediction resized to its frame."""
    import cv2

    from depthart_core.evaluation.protocols import evaluate

    rows = []
    for p, s in zip(preds_BHW, samples, strict=True):
        h, w = s.depth.shape
        up = cv2.resize(np.clip(p, 1e-3, None).astype(np.float32), (w, h))
        rows.append(evaluate(up, s.depth, s.valid)["abs_rel"])
    return float(np.mean(rows))


def ceiling(tokenizer_ckpt: str, eval_root: str) -> None:
    """The tokenizer's ceiling: AbsRel of held-out depth through encode -> quantize -> decode at
    the model resolution, upsampled to each frame (no transformer can do better)."""
    import cv2

    from depthart_core.checkpoint import load_checkpoint

    m, _ = load_checkpoint(tokenizer_ckpt)
    m.eval()
    S = m.cfg.image_size
    samples = _readable_samples(eval_root)
    preds = []
    for s in samples:
        d = np.where(s.valid, s.depth, 0).astype(np.float32)
        d = cv2.resize(d, (S, S), interpolation=cv2.INTER_NEAREST)
        d_t = torch.from_numpy(d)[None]
        with torch.no_grad():
            preds.append(m.depth_round_trip(d_t, d_t > 0)[0].numpy())
    score = _score(np.stack(preds), samples)
    print(f"tokenizer ceiling on {len(samples)} frames: AbsRel {score:.4f}")


def _decoding(name: str):
    """A `--decoding` name: a named setting (greedy, soft, paper), soft-top<K> (soft decoding
    renormalised over the K most likely codes) or soft-T<t> (soft at temperature t)."""
    import dataclasses

    from depthart_core.sampling import SAMPLING_SETTINGS, sampling_setting

    if name.startswith("soft-top") and name[len("soft-top") :].isdigit():
        return dataclasses.replace(SAMPLING_SETTINGS["soft"], top_k=int(name[len("soft-top") :]))
    if name.startswith("soft-T"):
        t = float(name[len("soft-T") :])
        return dataclasses.replace(SAMPLING_SETTINGS["soft"], temperature=t)
    return sampling_setting(name)


def _bootstrap(x_N: np.ndarray, resamples: int = 10_000) -> tuple[float, float]:
    """95 % percentile interval of the mean of per-frame values, resampling frames."""
    picks = np.random.default_rng(0).integers(0, len(x_N), (resamples, len(x_N)))
    lo, hi = np.percentile(x_N[picks].mean(axis=1), [2.5, 97.5])
    return float(lo), float(hi)


CONF_EDGES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0001)


def scales(
    ckpt: str,
    eval_roots: list[str],
    frames: int,
    decodings: list[str],
    save: str | None = None,
    batch: int = 20,
) -> None:
    """AbsRel of the decoded f_hat after each scale of the loop (k = 0: the start, zero or the
    encoder's estimate) for each decoding, with 95 % bootstrap intervals over frames; each
    scale's argmax agreement with the rollout's DepthART target (Q_k(f_D - f_hat_<k), built on
    the decoding's own f_hat); and, binned by the top-1 probability, the tokens' share, agreement
    and the change of the residual energy ||down_k(f_D - f_hat)||^2 that the scale's update makes
    (negative: the scale corrects). Does the next-scale refinement improve the start?"""
    from depthart_core.checkpoint import load_checkpoint
    from depthart_core.evaluation.scales import model_inputs, score_latent
    from depthart_core.sampling import describe_sampling
    from depthart_core.tokenizer.codec import encode_depth

    m, _ = load_checkpoint(ckpt)
    m.eval()
    S, q = m.cfg.image_size, m.tokenizer.quantize
    # the first `frames` of each root that can be read, pooled
    samples = [s for root in eval_roots for s in _readable_samples(root, frames)]
    N, K, nb = len(samples), q.num_scales, len(CONF_EDGES) - 1
    x_N3SS, d_NSS = model_inputs(samples, S)
    print(f"{ckpt} on {N} frames of {', '.join(eval_roots)}")
    for name in decodings:
        setting = _decoding(name)
        res = np.zeros((N, K + 1))
        agree = np.zeros((N, K))
        # per scale and confidence bin: tokens, agreeing tokens, residual energy before / after
        bins = np.zeros((K, nb, 4))
        for b0 in range(0, N, batch):
            x, d = x_N3SS[b0 : b0 + batch], d_NSS[b0 : b0 + batch]
            with torch.no_grad():
                img, f0 = m.prefix_and_start(x)
                f_D = m.tokenizer.encode_latent(
                    encode_depth(d, d > 0, m.cfg.tokenizer.depth_codec)[0]
                )
                f_prev = torch.zeros_like(f_D) if f0 is None else f0.clone()
                cums = [f_prev]
                for si, (idx, logits, f_hat) in enumerate(m.refine_steps(img, setting, f0)):
                    target = q.residual_target(f_D, f_prev, si)
                    ok_Bhw = (target == idx).float()
                    agree[b0 : b0 + len(x), si] = ok_Bhw.flatten(1).mean(1).numpy()
                    conf_Bhw = logits.float().softmax(-1).amax(-1).view_as(idx)
                    before = q.downsample_residual(f_D - f_prev, si).square().sum(1)
                    after = q.downsample_residual(f_D - f_hat, si).square().sum(1)
                    which = np.digitize(conf_Bhw.numpy().ravel(), CONF_EDGES) - 1
                    for j, col in enumerate((np.ones_like(which), ok_Bhw, before, after)):
                        col = np.asarray(col, dtype=np.float64).ravel()
                        bins[si, :, j] += np.bincount(which, col, minlength=nb)[:nb]
                    f_prev = f_hat
                    cums.append(f_hat)
                for k, f in enumerate(cums):
                    res[b0 : b0 + len(x), k] = score_latent(m, f, samples[b0 : b0 + len(x)])
        _print_scales(f"{name} ({describe_sampling(setting)})", res, agree, bins)
        if save:
            out = Path(save.replace("{decoding}", name))
            out.parent.mkdir(parents=True, exist_ok=True)
            np.save(out, res)
            print(f"per-frame AbsRel after each scale (N, K + 1): {out}")


def scales_paired(curves_a: str, curves_b: str, resamples: int = 10_000) -> None:
    """Two models' per-frame scale curves (`scales --save`) on the same frames: each one's
    output / start ratio, the ratio difference A - B and the refinement gain difference (output -
    start, A - B), with 95 % bootstrap intervals that resample frames jointly (paired)."""
    a_Nk, b_Nk = np.load(curves_a), np.load(curves_b)
    if a_Nk.shape != b_Nk.shape:
        raise SystemExit(f"{curves_a} {a_Nk.shape} and {curves_b} {b_Nk.shape} differ in shape")
    picks = np.random.default_rng(0).integers(0, len(a_Nk), (resamples, len(a_Nk)))

    def ratio(x_Nk: np.ndarray) -> np.ndarray:
        return x_Nk[picks, -1].mean(1) / x_Nk[picks, 0].mean(1)

    def ci(x: np.ndarray, sign: str = "+") -> str:
        lo, hi = np.percentile(x, [2.5, 97.5])
        return f"[{lo:{sign}.4f}, {hi:{sign}.4f}]"

    ra, rb = ratio(a_Nk), ratio(b_Nk)
    for tag, x_Nk, r in (("A", a_Nk, ra), ("B", b_Nk, rb)):
        curve = " ".join(f"{v:.4f}" for v in x_Nk.mean(0))
        print(
            f"{tag}: AbsRel after k = 0..K: {curve}; output / start "
            f"{x_Nk[:, -1].mean() / x_Nk[:, 0].mean():.3f} {ci(r, '')}"
        )
    print(f"output / start, A - B: {np.mean(ra - rb):+.4f} {ci(ra - rb)} over {len(a_Nk)} frames")
    for name, k in (("start", 0), ("output", -1)):
        d = a_Nk[:, k] - b_Nk[:, k]
        print(f"{name} AbsRel, A - B: {d.mean():+.4f} {ci(d[picks].mean(1))}")
    gain = (a_Nk[:, -1] - a_Nk[:, 0]) - (b_Nk[:, -1] - b_Nk[:, 0])
    print(f"refinement (output - start), A - B: {gain.mean():+.4f} {ci(gain[picks].mean(1))}")


def _print_scales(title: str, res: np.ndarray, agree: np.ndarray, bins: np.ndarray) -> None:
    K = agree.shape[1]
    print(f"\n== {title}")
    print("k | AbsRel [95 % bootstrap] | change from k-1 [95 %] | token agreement at scale k")
    for k in range(K + 1):
        lo, hi = _bootstrap(res[:, k])
        line = f"{k} | {res[:, k].mean():.4f} [{lo:.4f}, {hi:.4f}]"
        if k > 0:
            d = res[:, k] - res[:, k - 1]
            dlo, dhi = _bootstrap(d)
            line += f" | {d.mean():+.4f} [{dlo:+.4f}, {dhi:+.4f}] | {agree[:, k - 1].mean():.3f}"
        print(line)
    ratio = res[:, K].mean() / res[:, 0].mean()
    picks = np.random.default_rng(0).integers(0, len(res), (10_000, len(res)))
    rs = res[picks, K].mean(1) / res[picks, 0].mean(1)
    rlo, rhi = np.percentile(rs, [2.5, 97.5])
    print(f"output / start AbsRel: {ratio:.3f} [{rlo:.3f}, {rhi:.3f}]")
    heads = [
        f"p1 {a:.1f}-{min(b, 1):.1f}" for a, b in zip(CONF_EDGES, CONF_EDGES[1:], strict=False)
    ]
    print("by top-1 probability p1: share of tokens / agreement / residual-energy change")
    print("scale | " + " | ".join(heads))
    for si in range(K):
        cells = []
        for n, ok, before, after in bins[si]:
            if n == 0:
                cells.append("-")
                continue
            share = n / bins[si, :, 0].sum()
            cells.append(f"{share:.2f} / {ok / n:.2f} / {after / max(before, 1e-12) - 1:+.2f}")
        print(f"{si + 1} | " + " | ".join(cells))


def probe(tokenizer_ckpt: str, pool_path: str, eval_root: str, grid: int) -> None:
    import torch.nn.functional as F

    from depthart_core.checkpoint import load_checkpoint

    m, _ = load_checkpoint(tokenizer_ckpt)
    m.eval()
    pool, rel, samples, rgb_ev = _pool_and_eval(pool_path, eval_root, m.cfg.image_size)

    def prefix(rgb_u8: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            chunks = [rgb_u8[i : i + 64].float() / 127.5 - 1 for i in range(0, len(rgb_u8), 64)]
            return torch.cat([m.image_prefix(c).flatten(1) for c in chunks])

    def pixels(rgb_u8: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(rgb_u8.float() / 255, 16).flatten(1)

    y_NG = F.adaptive_avg_pool2d(rel[:, None], grid).flatten(1).double()
    y_mean = y_NG.mean(0)

    def ridge(x: torch.Tensor, x_ev: torch.Tensor, lam: float) -> np.ndarray:
        x, x_ev = x.double(), x_ev.double()
        mu, sd = x.mean(0), x.std(0) + 1e-6
        xn = (x - mu) / sd
        gram = xn.T @ xn + lam * torch.eye(x.shape[1], dtype=torch.float64)
        w = torch.linalg.solve(gram, xn.T @ (y_NG - y_mean))
        return (((x_ev - mu) / sd) @ w + y_mean).view(-1, grid, grid).numpy()

    trivial = y_mean.view(1, grid, grid).expand(len(samples), -1, -1).numpy()
    print(f"{len(y_NG)} training frames, {len(samples)} held-out frames, {grid}x{grid} targets")
    print(f"trivial (training mean depth map): AbsRel {_score(trivial, samples):.4f}")
    for name, fn in (("image prefix", prefix), ("16x16 pixels", pixels)):
        x, x_ev = fn(pool["rgb"]), fn(rgb_ev)
        for lam in (1e2, 1e3, 1e4):
            score = _score(ridge(x, x_ev, lam), samples)
            print(f"ridge on {name} (lambda {lam:g}): AbsRel {score:.4f}", flush=True)


class _UNet(torch.nn.Module):
    """Three-level U-Net regressing d / q98(d) in [0, 1]; a reference, not a product model."""

    def __init__(self, c: int = 32) -> None:
        super().__init__()
        from torch import nn

        def block(i: int, o: int) -> nn.Module:
            return nn.Sequential(
                nn.Conv2d(i, o, 3, padding=1), nn.GroupNorm(8, o), nn.GELU(),
                nn.Conv2d(o, o, 3, padding=1), nn.GroupNorm(8, o), nn.GELU(),
            )  # fmt: skip

        self.e1, self.e2, self.e3, self.e4 = (
            block(3, c),
            block(c, 2 * c),
            block(2 * c, 4 * c),
            block(4 * c, 4 * c),
        )
        self.d3, self.d2, self.d1 = block(8 * c, 2 * c), block(4 * c, c), block(2 * c, c)
        self.out = nn.Conv2d(c, 1, 1)

    def forward(self, x_B3HW: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        def up(t: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t, scale_factor=2)

        a = self.e1(x_B3HW)
        b = self.e2(F.avg_pool2d(a, 2))
        c = self.e3(F.avg_pool2d(b, 2))
        d = self.e4(F.avg_pool2d(c, 2))
        u = self.d3(torch.cat([up(d), c], 1))
        u = self.d2(torch.cat([up(u), b], 1))
        u = self.d1(torch.cat([up(u), a], 1))
        return torch.sigmoid(self.out(u))[:, 0]


def cnn(pool_path: str, eval_root: str, steps: int, batch: int) -> None:
    import time

    torch.manual_seed(0)
    pool, rel, samples, rgb_ev = _pool_and_eval(pool_path, eval_root, 0)
    net = _UNet()
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    n, t0 = len(rel), time.time()
    for step in range(1, steps + 1):
        idx = torch.randint(0, n, (batch,))
        x = pool["rgb"][idx].float() / 127.5 - 1
        v = pool["valid"][idx]
        loss = ((net(x) - rel[idx]).abs() * v).sum() / v.sum().clamp(min=1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            print(f"step {step}: L1 {loss.item():.4f}", flush=True)
    net.eval()
    with torch.no_grad():
        preds = torch.cat(
            [net(rgb_ev[i : i + 32].float() / 127.5 - 1) for i in range(0, len(rgb_ev), 32)]
        )
    print(
        f"CNN reference ({sum(p.numel() for p in net.parameters()):,} parameters, {step} steps of "
        f"{batch}, {(time.time() - t0) / 60:.1f} min): AbsRel {_score(preds.numpy(), samples):.4f}"
    )


def paired(report_a: str, report_b: str, resamples: int = 10_000) -> None:
    """Per-frame A - B for AbsRel and delta1_bad: mean, 95 % bootstrap interval over frames, and
    on how many frames A is better / worse. Both reports must cover the same frames in order."""
    import json

    rows = [json.loads(Path(r).read_text())["per_image"] for r in (report_a, report_b)]
    names = [[x["name"] for x in r] for r in rows]
    if names[0] != names[1]:
        raise SystemExit(f"{report_a} and {report_b} do not cover the same frames")
    rng = np.random.default_rng(0)
    n = len(rows[0])
    picks = rng.integers(0, n, (resamples, n))
    for key in ("abs_rel", "delta1_bad"):
        d = np.array([x[key] for x in rows[0]]) - np.array([x[key] for x in rows[1]])
        lo, hi = np.percentile(d[picks].mean(axis=1), [2.5, 97.5])
        print(
            f"{key}: A - B = {d.mean():+.4f} (95 % bootstrap over {n} frames: [{lo:+.4f}, "
            f"{hi:+.4f}]); A better on {int((d < 0).sum())}, worse on {int((d > 0).sum())}"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("overfit")
    o.add_argument("tokenizer_checkpoint")
    o.add_argument("--mode", choices=("teacher_forcing", "depthart"), default="teacher_forcing")
    o.add_argument("--steps", type=int, default=300)
    o.add_argument("--frames", type=int, default=16)
    s = sub.add_parser("sampling")
    s.add_argument("eval_root")
    s.add_argument("checkpoints", nargs="+")
    s.add_argument("--limit", type=int, default=100)
    u = sub.add_parser("image-usage")
    u.add_argument("checkpoint")
    u.add_argument("--frames", type=int, default=64)
    u.add_argument("--seed", type=int, default=10_000)
    r = sub.add_parser("probe")
    r.add_argument("tokenizer_checkpoint")
    r.add_argument("pool", help="a cached training pool (~/.cache/depthart/synth/*.safetensors)")
    r.add_argument("eval_root")
    r.add_argument("--grid", type=int, default=16)
    t = sub.add_parser("ceiling")
    t.add_argument("tokenizer_checkpoint")
    t.add_argument("eval_root")
    k = sub.add_parser("scales")
    k.add_argument("checkpoint")
    k.add_argument("eval_roots", nargs="+", help="synthetic sets, pooled")
    k.add_argument("--frames", type=int, default=30, help="the first FRAMES of each set")
    k.add_argument("--save", help="per-frame curves to this .npy ({decoding} is replaced)")
    k.add_argument(
        "--decoding",
        nargs="+",
        default=["greedy"],
        help="greedy, soft, paper, soft-top<K> (soft over the K most likely codes) or soft-T<t>",
    )
    kp = sub.add_parser("scales-paired")
    kp.add_argument("curves_a")
    kp.add_argument("curves_b")
    q = sub.add_parser("paired")
    q.add_argument("report_a")
    q.add_argument("report_b")
    c = sub.add_parser("cnn")
    c.add_argument("pool")
    c.add_argument("eval_root")
    c.add_argument("--steps", type=int, default=250)
    c.add_argument("--batch", type=int, default=32)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.cmd == "overfit":
        overfit(args.tokenizer_checkpoint, args.mode, args.steps, args.frames)
    elif args.cmd == "sampling":
        sampling(args.eval_root, args.checkpoints, args.limit)
    elif args.cmd == "image-usage":
        image_usage(args.checkpoint, args.frames, args.seed)
    elif args.cmd == "scales":
        scales(args.checkpoint, args.eval_roots, args.frames, args.decoding, args.save)
    elif args.cmd == "scales-paired":
        scales_paired(args.curves_a, args.curves_b)
    elif args.cmd == "ceiling":
        ceiling(args.tokenizer_checkpoint, args.eval_root)
    elif args.cmd == "paired":
        paired(args.report_a, args.report_b)
    elif args.cmd == "probe":
        probe(args.tokenizer_checkpoint, args.pool, args.eval_root, args.grid)
    else:
        cnn(args.pool, args.eval_root, args.steps, args.batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
