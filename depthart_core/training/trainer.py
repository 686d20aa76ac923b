"""One `Trainer` for both stages: the tokenizer (stage 1) and the transformer (stage 2).

- AdamW; the learning rate is a pure function of the step (warm-up, then none / StepLR / cosine),
  so resuming needs no scheduler object; the paper's StepLR is x0.8 every 5,000 iterations.
- Gradient accumulation, optional clipping, bf16 autocast (CUDA or CPU) or fp16 (CUDA only, with
  loss scaling), optional EMA.
- A non-finite loss or gradient norm stops the run at that step (1-based, as metrics.jsonl
  counts) before the update, and weights that are not finite are never saved; the message names
  the checkpoint left and whether its own weights gave the non-finite value.
- Data parallel under `torchrun` (gloo on CPU, NCCL on GPU): ranks start from rank 0's weights and
  average gradients with one all-reduce per step, which works for the DepthART rollout's many
  forward passes per step (DDP's forward hooks assume one).
- Everything needed to continue exactly (weights, optimizer moments, EMA, RNG state, step; the
  data position is the step) goes into one `train_state.safetensors` written atomically
  (`training.state`); the user-facing `checkpoint.safetensors` is written beside it. Resuming from
  step 20 reproduces the 40-step run bit for bit on CPU (tested).
- The run folder is claimed before anything else (`rundir`); a start that fails before training
  removes a folder it created. metrics.jsonl is a log, never load-bearing (`rundir.read_metrics`).
- Ctrl-C (SIGINT) or SIGTERM in a single-process run finishes the current step, saves the state
  and raises KeyboardInterrupt, so `--resume` goes on from that step; a second signal stops at
  once. `--resume` on a run that logged steps but never saved (killed before its first save)
  starts it again from step 0, saying so; a folder with no run at all is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from tqdm import tqdm

from depthart_core.checkpoint import (
    load_checkpoint,
    load_official_var,
    read_checkpoint_info,
    save_checkpoint,
)
from depthart_core.config import get_preset, with_overrides
from depthart_core.fileutil import (
    CACHE_TEMP_STALE_S,
    ENV_CACHE,
    WriteError,
    atomic_write,
    cache_unwritable,
    fd_name,
    untrusted_cache_file,
)
from depthart_core.model import DepthART
from depthart_core.precision import autocast
from depthart_core.rundir import (
    CKPT_NAME,
    METRICS_NAME,
    STATE_NAME,
    append_metrics,
    claim_run_dir,
    last_good,
    load_safetensors,
    read_metrics,
    read_train_state,
    rewrite_metrics,
)
from depthart_core.tokenizer.codec import encode_depth
from depthart_core.training import objectives as obj
from depthart_core.training.augment import flip_mask, photometric
from depthart_core.training.config import PATH_SETTINGS, TrainConfig
from depthart_core.training.data import (
    FRAMES_TRUST_SETTING,
    POOL_TRUST_SETTING,
    make_batches,
    validation_batch,
)
from depthart_core.training.distributed import (
    allreduce_grads,
    average_buffers,
    broadcast,
    gather_rng_states,
    init_distributed,
    pick_device,
)
from depthart_core.training.grow import grow_depth_state
from depthart_core.training.resize import resize_pyramid_state
from depthart_core.training.state import ema_weights, restore_train_state, save_train_state
from depthart_core.training.validation import save_progress_plot, validate

log = logging.getLogger(__name__)


def lr_at(step: int, cfg: TrainConfig, total: int | None = None) -> float:
    """The learning rate of `step`; the cosine ends at `total` steps (default `cfg.steps`; a
    run sized by `epochs` passes its own, `Trainer.planned_steps`)."""
    o = cfg.optim
    total = cfg.steps if total is None else total
    if o.warmup > 0 and step < o.warmup:
        return o.lr * (step + 1) / o.warmup
    if o.schedule == "step":
        return o.lr * (o.gamma ** (step // o.step_size))
    if o.schedule == "cosine":
        t = min(1.0, (step - o.warmup) / max(1, total - o.warmup))
        return o.lr * 0.5 * (1 + math.cos(math.pi * t))
    return o.lr


def refuse_random_tokenizer(cfg: TrainConfig) -> None:
    """Stage 2 trains the transformer on a frozen tokenizer: without weights for it (from
    `init_checkpoint` or `vae_pth`) the tokenizer is random and the run useless, so it is refused
    unless `random_tokenizer_ok`."""
    if cfg.stage != "transformer" or cfg.init_checkpoint or cfg.vae_pth:
        return
    if not cfg.random_tokenizer_ok:
        raise ValueError(
            "stage transformer trains on a frozen tokenizer, and no init_checkpoint (or "
            "vae_pth) gives its weights, so it would stay random: pass --set "
            "init_checkpoint=<a stage-1 tokenizer checkpoint> (or random_tokenizer_ok=true for "
            "a smoke test)"
        )


def input_paths(cfg: TrainConfig, skip: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """The files and folders `cfg` reads (its data, its initial weights), except the settings in
    `skip`: the run folder may not be one of them or hold one (`rundir.claim_run_dir`)."""
    names = sorted(PATH_SETTINGS - {"data.pool_cache"} - skip)  # the pool: a cache it writes
    return tuple(cfg._dotted(name) for name in names if cfg._dotted(name))


class Trainer:
    def __init__(
        self,
        cfg: TrainConfig,
        run_dir: str | Path,
        resume: bool = False,
        overwrite: bool = False,
        progress: bool = True,
        checked_elsewhere: frozenset[str] = frozenset(),
    ) -> None:
        """`checked_elsewhere`: flattened settings a --resume does not compare, and the run
        folder may hold, since the caller checks what they name (a fine-tune: its own frame
        files, by content, and its base)."""
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.checked_elsewhere = checked_elsewhere
        self.progress = progress  # bars while setting up (the pool, its latents); fit() has its own
        if not resume:  # a resumed run's weights come from its state
            refuse_random_tokenizer(cfg)
        self.rank, self.world = init_distributed(cfg.device)
        if self.is_main:  # refuse a finished run without --resume/--overwrite; held until exit
            self.run_lock = claim_run_dir(
                self.run_dir,
                resume=resume,
                overwrite=overwrite,
                inputs=input_paths(cfg, checked_elsewhere),
            )
        try:
            self._set_up(resume)
        except BaseException:
            if self.is_main:  # a refused start leaves no folder holding only a lock
                self.run_lock.abandon()
            raise

    def _set_up(self, resume: bool) -> None:
        cfg = self.cfg
        self.device = pick_device(cfg.device, self.rank)
        if cfg.precision == "fp16" and self.device.type != "cuda":  # what is recorded is what runs
            raise ValueError(
                f"precision=fp16 needs a CUDA device (its loss scaling), and this run is on the "
                f"{self.device.type}: use precision=bf16 (autocast) or fp32 (a run moved off its "
                "GPU too: --set precision=bf16 --resume)"
            )
        saved_cfg = self._resumable(resume)
        resume = saved_cfg is not None
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        # resuming, the weights come from the run's state alone (init_checkpoint may have moved
        # on, or be gone): read below, before the latents are cached from its tokenizer
        self.model = self._build_model(load_init=not resume).to(self.device)
        if cfg.stage == "transformer" and not self._cnn_prefix:  # before a pool is rendered
            for setting, on in (
                (f"hflip={cfg.hflip:g}", cfg.hflip > 0),
                ("augment=true", cfg.augment),
            ):
                if on:
                    raise ValueError(
                        f"{setting} needs transformer.image_prefix 'cnn' (the 'vq' prefix is "
                        "cached from the frozen tokenizer)"
                    )
        self.params = self._trainable()
        broadcast(self.params, self.world)
        self.opt = torch.optim.AdamW(
            self.params,
            lr=cfg.optim.lr,
            betas=(cfg.optim.beta1, cfg.optim.beta2),
            eps=cfg.optim.eps,
            weight_decay=cfg.optim.weight_decay,
        )
        self.ema = [p.detach().clone() for p in self.params] if cfg.ema > 0 else None
        use_scaler = cfg.precision == "fp16" and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        size = self.model.cfg.image_size
        if cfg.data.render_size not in (0, size):  # before a pool is rendered at the wrong size
            raise ValueError(
                f"data.render_size={cfg.data.render_size}: frames go to the model as rendered, "
                f"so it must be 0 or the model's image size {size}"
            )
        # under torchrun every rank renders a synthetic pool itself, with its share of the
        # machine's CPUs (`data.render_workers`): ranks waiting in a collective for one rank's
        # render would meet the process group's timeout (NCCL: 10 minutes) on a long one
        self.batches = make_batches(
            cfg.data,
            cfg.data.render_size or size,
            cfg.batch_size,
            self.rank,
            self.world,
            progress=self.progress and self.is_main,
        )
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.last_val: dict[str, Any] = {}  # the last validation, and the step it was measured at
        self.last_val_step: int | None = None
        if resume:  # weights, optimizer, EMA, step and the RNG of the step it stopped at
            self._load_state()
            if self.step > self.planned_steps:  # it would report done with a config it outran
                raise ValueError(
                    f"--resume: {self.run_dir} is at step {self.step}, past the "
                    f"{self.planned_steps} steps this command asks for: ask for {self.step} or "
                    "more (its checkpoint is already the model of step "
                    f"{self.step})"
                )
            self._say_cosine_change(saved_cfg)
        self.latents = self._cache_latents() if cfg.stage == "transformer" else None
        if not resume:
            torch.manual_seed(cfg.seed + 1000 * self.rank)
        if self.is_main:  # a resume may have changed what RESUME_MAY_CHANGE allows
            atomic_write(
                self.run_dir / "config.json", (json.dumps(cfg.to_dict(), indent=2) + "\n").encode()
            )

    def _resumable(self, resume: bool) -> dict[str, Any] | None:
        """The settings of the run state to continue, or None to start from step 0: a run killed
        before its first save starts again (a folder with no log at all is refused earlier), and
        the settings must be the run's own, apart from `RESUME_MAY_CHANGE`."""
        if not resume:
            return None
        logged = (self.run_dir / METRICS_NAME).is_file()  # the same answer on every rank
        no_state = not (self.run_dir / STATE_NAME).is_file()
        if no_state and (self.run_dir / CKPT_NAME).is_file():  # a save happened: never redo it
            raise ValueError(
                f"--resume: {self.run_dir} has a {CKPT_NAME} but no {STATE_NAME} (the step, "
                f"optimizer and RNG a resume continues from; a copy without it?); "
                f"{last_good(self.run_dir)}"
            )
        if logged and no_state:
            rows = read_metrics(self.run_dir, warn=False) if self.is_main else []
            lost = f" (its log reached step {rows[-1]['step']})" if rows else ""
            log.warning(
                "--resume: %s has no %s: the run stopped before its first save%s; starting it "
                "again from step 0",
                self.run_dir, STATE_NAME, lost,
            )  # fmt: skip
            if self.is_main:
                rewrite_metrics(self.run_dir, [])
            return None
        meta, _ = read_train_state(self.run_dir, tensors=False)
        saved_cfg = json.loads(meta["config"])
        changed = resumed_changes(saved_cfg, self.cfg, self.checked_elsewhere)
        for line in changed:
            log.warning("--resume: %s", line)
        return saved_cfg

    def _say_cosine_change(self, saved_cfg: dict[str, Any] | None) -> None:
        """A --resume that changes the run's length moves the cosine's end, so the learning
        rate of the steps to come changes (a longer run raises it again): one line says so."""
        cfg = self.cfg
        if saved_cfg is None or cfg.optim.schedule != "cosine" or not self.is_main:
            return
        before = self._planned(saved_cfg.get("steps", cfg.steps), saved_cfg.get("epochs", 0))
        now = self.planned_steps
        if before == now:
            return
        old, new = lr_at(self.step, cfg, before), lr_at(self.step, cfg, now)
        log.warning(
            "--resume: the cosine schedule now ends at step %d, not %d: the lr of step %d goes "
            "from %.3g to %.3g%s",
            now, before, self.step + 1, old, new,
            " (it rises again: a warm restart)" if new > old else "",
        )  # fmt: skip

    @property
    def planned_steps(self) -> int:
        """The run's length: `steps`, or with `epochs` > 0 on a finite dataset that many passes
        over it (each step takes `grad_accum` batches of `batch_size` per process)."""
        return self._planned(self.cfg.steps, self.cfg.epochs)

    def _planned(self, steps: int, epochs: int) -> int:
        per_epoch = getattr(self.batches, "steps_per_epoch", None)
        if epochs > 0 and per_epoch is not None:
            return max(1, math.ceil(epochs * per_epoch / self.cfg.grad_accum))
        return steps

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ------------------------------------------------------------------ set-up
    def _build_model(self, load_init: bool = True) -> DepthART:
        cfg = self.cfg
        model = DepthART(with_overrides(get_preset(cfg.preset), cfg.model_overrides))
        if not load_init:  # a resume: every weight comes from the run's state
            return model
        if cfg.init_checkpoint:
            src, src_info = load_checkpoint(cfg.init_checkpoint)
            src_pn, dst_pn = src.cfg.tokenizer.patch_nums, model.cfg.tokenizer.patch_nums
            same_but_pyramid = dataclasses.replace(src.cfg.tokenizer, patch_nums=dst_pn)
            resize = cfg.init_resize and src_pn != dst_pn
            if (same_but_pyramid if resize else src.cfg.tokenizer) != model.cfg.tokenizer or (
                src.cfg.image_size != model.cfg.image_size and not resize
            ):
                sized = src.cfg.image_size != model.cfg.image_size or src_pn != dst_pn
                raise ValueError(
                    f"init_checkpoint {cfg.init_checkpoint} "
                    + (  # the sizes only where they differ: else the hint names what does
                        f"(image_size {src.cfg.image_size}, patch_nums {src_pn}) has a different "
                        f"tokenizer/image size than preset {cfg.preset!r} (image_size "
                        f"{model.cfg.image_size}, patch_nums {dst_pn})"
                        if sized
                        else f"has a different tokenizer than preset {cfg.preset!r}"
                    )
                    + (
                        "; init_resize=true carries it to a new size"
                        if not cfg.init_resize
                        and (src_pn != dst_pn or src.cfg.image_size != model.cfg.image_size)
                        else ""
                    )
                    + _config_hint(src.cfg, model.cfg, ("tokenizer",), skip={"patch_nums"})
                )
            src_inputs = src_info["metadata"].get("train_config", {}).get("tokenizer_inputs")
            if model.cfg.transformer.image_prefix == "vq" and src_inputs == "depth":
                raise ValueError(  # the "vq" prefix is the RGB image through this tokenizer
                    f"init_checkpoint {cfg.init_checkpoint}'s tokenizer was trained on depth "
                    "only (tokenizer_inputs: depth), but the image prefix 'vq' tokenizes the RGB "
                    "image with it: train the tokenizer with tokenizer_inputs: both, or use "
                    "--set model_overrides.transformer.image_prefix=cnn"
                )
            if not cfg.init_tokenizer_only and not cfg.init_grow:
                if src.cfg.transformer != model.cfg.transformer:
                    raise ValueError(
                        f"init_checkpoint {cfg.init_checkpoint} has another transformer than "
                        f"preset {cfg.preset!r} with model_overrides"
                        + _config_hint(src.cfg, model.cfg, ("transformer",))
                        + (
                            "; or init_grow=true to add blocks to it"
                            if src.cfg.transformer.depth < model.cfg.transformer.depth
                            else ""
                        )
                    )
            state = src.state_dict()
            if resize:
                state = resize_pyramid_state(state, src_pn, dst_pn)
            if cfg.init_grow and not cfg.init_tokenizer_only:
                state = grow_depth_state(state, model.state_dict())
            if cfg.init_tokenizer_only:
                prefix = "tokenizer."
                state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            elif src.uncertainty_head is not None and model.uncertainty_head is None:
                # The head reads the depth this run changes, so it would be stale: leave it out
                # (the shipped checkpoint has one; a new one comes from uncertainty_head.py).
                log.warning(
                    "init_checkpoint %s has an uncertainty head (width %d); it is not carried "
                    "over, since it reads the depth this run changes: train a new one with "
                    "training/uncertainty_head.py on the result",
                    cfg.init_checkpoint,
                    src.cfg.uncertainty_width,
                )
                state = {k: v for k, v in state.items() if not k.startswith("uncertainty_head.")}
            elif src.uncertainty_head is None and model.uncertainty_head is not None:
                why = src_info.get("uncertainty_dropped", "it has none")  # a copied one: dropped
                raise ValueError(
                    f"model_overrides.uncertainty_width={model.cfg.uncertainty_width} asks for an "
                    f"uncertainty head, and init_checkpoint {cfg.init_checkpoint} gives none "
                    f"({why}); training does not train the head: set "
                    "model_overrides.uncertainty_width=0, then add one with "
                    "training/uncertainty_head.py"
                )
            target = model.tokenizer if cfg.init_tokenizer_only else model
            target.load_state_dict(state, strict=True)
        if cfg.init_transformer_from:
            self._load_transformer(model)
        elif cfg.init_grow and (cfg.init_tokenizer_only or not cfg.init_checkpoint):
            raise ValueError(
                "init_grow needs the transformer from a checkpoint: init_checkpoint with "
                "init_tokenizer_only=false, or init_transformer_from"
            )
        if cfg.var_pth or cfg.vae_pth:
            load_official_var(model, cfg.var_pth or None, cfg.vae_pth or None)
        return model

    def _load_transformer(self, model: DepthART) -> None:
        """The transformer (image encoder included) from `init_transformer_from`, onto a model
        whose tokenizer came from `init_checkpoint`: a warm start for a new tokenizer of the same
        shape (a new depth codec), whose codes the transformer must then learn anew."""
        cfg = self.cfg
        if not cfg.init_checkpoint or not cfg.init_tokenizer_only:
            raise ValueError(
                "init_transformer_from takes the transformer only: give the tokenizer with "
                "init_checkpoint and init_tokenizer_only=true"
            )
        src, _ = load_checkpoint(cfg.init_transformer_from)
        pre = "transformer."
        state = {k: v for k, v in src.state_dict().items() if k.startswith(pre)}
        if cfg.init_grow:
            fresh = {k: v for k, v in model.state_dict().items() if k.startswith(pre)}
            state = grow_depth_state(state, fresh)
        model.transformer.load_state_dict({k[len(pre) :]: v for k, v in state.items()}, strict=True)

    def _trainable(self) -> list[torch.nn.Parameter]:
        tok, var = self.model.tokenizer, self.model.transformer
        train, frozen = (tok, var) if self.cfg.stage == "tokenizer" else (var, tok)
        frozen.requires_grad_(False).eval()
        train.requires_grad_(True).train()
        return [p for p in train.parameters()]

    @torch.no_grad()
    def _cache_latents(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The tokenizer is frozen and a synthetic pool is fixed, so the image prefix and the
        depth latent of every pool frame are computed once instead of at every step. They are
        kept on disk next to the pool, keyed by the pool file's content and the tokenizer's config
        and weights.

        As the pool itself, the file is read only if no other user could have written it
        (`fileutil.untrusted_cache_file`, judged on the open file that is then read): latents
        planted in a shared cache would become the training inputs. One that is not trusted is
        recomputed with a warning naming the file, its owner and mode; the one written here is
        writable by its owner only. Where the pool's folder cannot be written
        (`fileutil.cache_unwritable`) the latents are kept in memory only."""
        pool = self.batches
        if not hasattr(pool, "rgb"):
            return None
        cnn = self._cnn_prefix
        key = (self.model.cfg.image_size, self.model.cfg.tokenizer, "f_D only" if cnn else "")
        h = hashlib.sha256(repr(key).encode() if cnn else repr(key[:2]).encode())
        h.update(pool.digest.encode())  # the pool's content: other frames get new latents
        for name, t in sorted(self.model.tokenizer.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        disk = pool.path.with_name(f"{pool.path.stem}.latents-{h.hexdigest()[:16]}.safetensors")
        if disk.is_file():
            # what moves the latents: beside a frames file (finetune's RUN/frames) its folder
            trust = (
                FRAMES_TRUST_SETTING
                if self.cfg.data.source == "frames"
                else POOL_TRUST_SETTING
                if self.cfg.data.pool_cache
                else ENV_CACHE
            )
            try:  # the file checked is the file read: one swapped in since is not
                with open(disk, "rb") as f:
                    problem = untrusted_cache_file(disk, f.fileno(), trust)
                    t = {} if problem else load_safetensors(fd_name(f.fileno(), disk))
                if problem:
                    log.warning("latent cache %s %s; recomputing", disk, problem)
                elif len(t["f_D"]) == len(pool.rgb):
                    return t.get("img"), t["f_D"]
            except Exception as e:  # a damaged cache is recomputed, never trusted
                log.warning("latent cache %s unreadable (%s); recomputing", disk, e)
        imgs, fds = [], []
        n = len(pool.rgb)
        for s in tqdm(
            range(0, n, 64),
            desc="tokenize pool (frozen tokenizer)",
            unit="chunk",
            disable=not (self.progress and self.is_main),
        ):
            b = {
                k: t[s : s + 64].to(self.device)
                for k, t in (("rgb", pool.rgb), ("depth", pool.depth), ("valid", pool.valid))
            }
            if cnn:  # the image prefix is trained: only the depth latent can be cached
                fds.append(obj.depth_latent(self.model, b["depth"], b["valid"]).cpu())
                continue
            img, f_D = obj.prepare_inputs(self.model, b["rgb"], b["depth"], b["valid"])
            imgs.append(img.cpu())
            fds.append(f_D.cpu())
        tensors = {"f_D": torch.cat(fds).contiguous()}
        if not cnn:
            tensors["img"] = torch.cat(imgs).contiguous()
        if self.is_main:
            try:
                atomic_write(
                    disk,
                    lambda tmp: save_file(tensors, tmp),
                    stale_after_s=CACHE_TEMP_STALE_S,  # also removes a killed write's temp folder
                    owner_only=True,  # trusted when read back, whatever the umask
                )
            except WriteError as exc:
                if not cache_unwritable(exc):  # a full disk: the one-line error
                    raise
                log.info("latent cache %s; the pool's latents are kept in memory only", exc)
        return tensors.get("img"), tensors["f_D"]

    # ------------------------------------------------------------------ one step
    @property
    def _codec(self) -> str:
        return self.model.cfg.tokenizer.depth_codec

    @property
    def _cnn_prefix(self) -> bool:
        return self.model.cfg.transformer.image_prefix == "cnn"

    def _loss(self, batch: dict[str, torch.Tensor], seed: int) -> obj.StepOutput:
        b = {k: v.to(self.device) for k, v in batch.items()}
        if self.cfg.stage == "tokenizer":
            depth_x3, _ = encode_depth(b["depth"], b["valid"], self._codec)
            if self.cfg.tokenizer_inputs == "depth":
                return obj.tokenizer_loss(self.model, depth_x3)
            rgb = b["rgb"].float() / 127.5 - 1.0
            return obj.tokenizer_loss(self.model, torch.cat([rgb, depth_x3], dim=0))
        img = None
        flip = None
        if self.cfg.hflip > 0:
            if not self._cnn_prefix:
                raise ValueError(
                    f"hflip={self.cfg.hflip} needs transformer.image_prefix 'cnn' (the 'vq' "
                    "prefix is cached from the frozen tokenizer)"
                )
            flip = flip_mask(len(b["rgb"]), seed, self.cfg.hflip).to(self.device)
            for k in ("rgb", "depth", "valid"):
                where = flip.view(-1, *[1] * (b[k].ndim - 1))
                b[k] = torch.where(where, b[k].flip(-1), b[k])
        if self.latents is not None and "index" in batch:
            idx = batch["index"]
            f_D = self.latents[1][idx].to(self.device)
            if self.latents[0] is not None:
                img = self.latents[0][idx].to(self.device)
            if flip is not None and flip.any():  # mirrored frames: encode their mirrored depth
                with torch.no_grad():
                    f_D = f_D.clone()
                    f_D[flip] = obj.depth_latent(self.model, b["depth"][flip], b["valid"][flip])
        elif self._cnn_prefix:
            f_D = obj.depth_latent(self.model, b["depth"], b["valid"])
        else:
            img, f_D = obj.prepare_inputs(self.model, b["rgb"], b["depth"], b["valid"])
        f_aux = None
        if self._cnn_prefix:
            rgb = b["rgb"].float() / 127.5 - 1.0
            if self.cfg.augment:
                rgb = photometric(rgb, seed, self.cfg.white_balance)
            img, f_aux = self.model.image_prefix_and_latent(rgb)
        elif self.cfg.augment:
            raise ValueError(
                "augment=true needs transformer.image_prefix 'cnn' (the 'vq' "
                "prefix is cached from the frozen tokenizer)"
            )
        refine = self.model.cfg.transformer.refine_from_image_latent
        out = self._transformer_loss(img, f_D, f_aux if refine else None)
        if f_aux is not None and self.cfg.aux_latent > 0:
            aux = obj.aux_latent_loss(f_aux, f_D)
            out.loss = out.loss + self.cfg.aux_latent * aux
            out.logs["aux"] = aux.item()
        return out

    def _transformer_loss(
        self, img: torch.Tensor, f_D: torch.Tensor, f_start: torch.Tensor | None = None
    ) -> obj.StepOutput:
        if self.cfg.mode == "teacher_forcing":
            return obj.teacher_forcing_loss(self.model, img, f_D, f_start)
        return obj.depthart_loss(
            self.model,
            img,
            f_D,
            self.cfg.last_scale_gumbel,
            f_start,
            soft_rollout=self.cfg.soft_rollout,
            soft_latent=self.cfg.soft_latent,
            detach_embedding=self.cfg.detach_embedding,
        )

    def train_step(self) -> dict[str, float]:
        cfg = self.cfg
        for g in self.opt.param_groups:
            g["lr"] = lr_at(self.step, cfg, self.planned_steps)
        self.opt.zero_grad(set_to_none=True)
        logs: dict[str, float] = {}
        tokens = 0
        for micro in range(cfg.grad_accum):
            position = self.step * cfg.grad_accum + micro
            batch = self.batches.batch_at(position)
            with autocast(self.device, cfg.precision):  # fp16 off CUDA: refused in _set_up
                out = self._loss(batch, cfg.seed * 1_000_003 + position * self.world + self.rank)
            if not torch.isfinite(out.loss):
                raise self._non_finite(f"non-finite loss ({out.loss.item()})")
            self.scaler.scale(out.loss / cfg.grad_accum).backward()
            tokens += out.tokens
            for k, v in out.logs.items():
                logs[k] = logs.get(k, 0.0) + v / cfg.grad_accum
            logs["loss"] = logs.get("loss", 0.0) + out.loss.item() / cfg.grad_accum
        allreduce_grads(self.params, self.world)
        norm = None
        if cfg.optim.grad_clip > 0:
            self.scaler.unscale_(self.opt)
            norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.optim.grad_clip)
            logs["grad_norm"] = float(norm)
        if not self.scaler.is_enabled():  # fp16's scaler skips a step that overflowed itself
            if norm is None:  # the norm only: an infinite max_norm scales by exactly 1
                norm = torch.nn.utils.clip_grad_norm_(self.params, math.inf)
            if not torch.isfinite(norm):  # the same on every rank: the gradients are averaged
                raise self._non_finite(f"non-finite gradient norm ({float(norm)})")
        self.scaler.step(self.opt)
        self.scaler.update()
        if cfg.stage == "tokenizer":  # each rank counted its own batch's code hits
            average_buffers([self.model.tokenizer.quantize.ema_vocab_hit_SV], self.world)
        if self.ema is not None:
            with torch.no_grad():
                for e, p in zip(self.ema, self.params, strict=False):
                    e.lerp_(p.detach(), 1.0 - cfg.ema)
        if (
            cfg.stage == "tokenizer"
            and cfg.restart_dead_every
            and (self.step + 1) % cfg.restart_dead_every == 0
        ):
            with torch.no_grad():
                if cfg.tokenizer_inputs == "depth":
                    x, _ = encode_depth(
                        batch["depth"].to(self.device), batch["valid"].to(self.device), self._codec
                    )
                else:
                    x = batch["rgb"].to(self.device).float() / 127.5 - 1.0
                quant = self.model.tokenizer.quantize
                if self.is_main:  # from rank 0's latents and RNG, then the same on every rank
                    logs["restarted_codes"] = obj.restart_dead_codes(
                        self.model, self.model.tokenizer.encode_latent(x)
                    )
                broadcast([quant.embedding.weight, quant.ema_vocab_hit_SV], self.world)
        self.step += 1
        logs["lr"] = lr_at(self.step - 1, cfg, self.planned_steps)
        logs["tokens"] = tokens * self.world
        return logs

    def _non_finite(self, what: str, after: bool = False) -> FloatingPointError:
        """The error that stops the step now running (1-based, as metrics.jsonl counts it),
        before its update (`after`: the weights the last step's update left, unsaved): `what` it
        met, and the checkpoint left. One saved at the last step holds the weights that gave
        `what` (unless those have since turned non-finite, which `save` never writes), so it is
        not called good."""
        ckpt = self.run_dir / CKPT_NAME
        saved = _checkpoint_step(ckpt) if ckpt.is_file() else None
        gave_it = saved == self.step and self._finite_weights()  # the saved weights gave it
        if not ckpt.is_file():
            kept = "No checkpoint was saved before it (lower optim.lr, or check the data)"
        elif gave_it and self.ema is not None:
            kept = f"The last checkpoint is kept: {ckpt} (step {saved}, the EMA of these weights)"
        elif gave_it:
            kept = (
                f"The last checkpoint, {ckpt} (step {saved}), holds the weights that gave it, so "
                "it is no good start either: train again with a lower optim.lr (or check the data)"
            )
        else:
            step = f" (step {saved})" if saved is not None else ""
            kept = f"The last good checkpoint is kept: {ckpt}{step}"
        at = f"after step {self.step}" if after else f"at step {self.step + 1}"
        return FloatingPointError(f"{what} {at}; stopping. {kept}")

    def _finite_weights(self) -> bool:
        """Whether every trainable weight (and its EMA) is finite; one sync."""
        tensors = [*self.params, *(self.ema or [])]
        return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())

    # ------------------------------------------------------------------ loop
    def fit(self, steps: int | None = None, progress: bool = True) -> dict[str, Any]:
        cfg = self.cfg
        total = steps if steps is not None else self.planned_steps
        val = validation_batch(cfg.data, self.model.cfg.image_size) if self.is_main else None
        bar = tqdm(
            total=total,
            initial=self.step,
            disable=not (progress and self.is_main),
            desc=f"train {cfg.stage}" + ("" if cfg.stage == "tokenizer" else f" ({cfg.mode})"),
            unit="step",
            dynamic_ncols=True,
        )
        lines = _ProgressLines(self.step, total) if not progress and self.is_main else None
        t0, tok0 = time.perf_counter(), 0
        with _stop_on_signal(enabled=self.world == 1) as stop:
            while self.step < total:
                logs = self.train_step()
                tok0 += logs["tokens"]
                if self.is_main and (self.step % cfg.log_every == 0 or self.step == total):
                    rate = tok0 / max(time.perf_counter() - t0, 1e-9)
                    row = {
                        "step": self.step,
                        **{k: _significant(v) for k, v in logs.items()},
                        "tok_s": round(rate),
                    }
                    self.history.append(row)
                    append_metrics(self.run_dir, row)
                    bar.set_postfix(loss=f"{logs['loss']:.4f}", tok_s=f"{rate:,.0f}")
                    t0, tok0 = time.perf_counter(), 0
                    if lines is not None:
                        lines.step(self.step, logs["loss"], logs["lr"])
                if self.is_main and (self.step % cfg.val_every == 0 or self.step == total):
                    self._validate(val)
                    if lines is not None and self.step < total:  # the last one: with `done:`
                        lines.validation(self.step, self.last_val)
                saved = self.step % cfg.ckpt_every == 0 or self.step == total
                if saved:
                    self.save()
                bar.update(1)
                if stop and self.step < total:  # a signal arrived during this step
                    bar.close()
                    if not saved:
                        self.save()
                    log.warning(
                        "%s: stopped at step %d of %d; its state is saved in %s: run the same "
                        "command with --resume to go on",
                        signal.Signals(stop[0]).name, self.step, total, self.run_dir,
                    )  # fmt: skip
                    raise KeyboardInterrupt
        bar.close()
        return self.last_val

    def _validate(self, val: dict[str, torch.Tensor]) -> dict[str, Any]:
        with ema_weights(self.params, self.ema):
            rgb = self.cfg.tokenizer_inputs != "depth"  # a depth-only tokenizer: no RGB PSNR
            metrics, grid = validate(self.model, val, self.cfg.stage, self.device, rgb=rgb)
        row = {"step": self.step, "val": metrics}
        self.history.append(row)
        append_metrics(self.run_dir, row)
        save_progress_plot(self.run_dir / "progress.png", self.history, grid)
        self.last_val, self.last_val_step = metrics, self.step
        return metrics

    def next_step(self) -> str:
        """One line saying what to do with the finished run's checkpoint."""
        ckpt = self.run_dir / CKPT_NAME
        if self.cfg.stage == "tokenizer":
            return f"next: stage 2 (stage: transformer) with --set init_checkpoint={ckpt}"
        return f"use it: depthart predict IMAGE --checkpoint {ckpt}"

    # ------------------------------------------------------------------ state
    def save(self) -> None:
        """Every rank calls it (the RNG states are gathered); rank 0 writes. Weights that are
        not finite are refused (on every rank: they are the same), the last save kept."""
        if not self._finite_weights():  # never over the last good checkpoint
            raise self._non_finite("non-finite weights", after=True)
        rng_states = gather_rng_states(self.world)
        cuda = self.device.type == "cuda"  # the same on every rank: all gather, or none
        cuda_states = gather_rng_states(self.world, self.device) if cuda else None
        if not self.is_main:
            return
        cfg = self.cfg.to_dict()
        save_train_state(
            self.run_dir,
            self.model,
            self.opt,
            self.ema,
            self.step,
            cfg,
            rng_states,
            self.scaler,
            device=self.device,
            cuda_rng_states=cuda_states,
        )
        with ema_weights(self.params, self.ema):
            save_checkpoint(self.run_dir / CKPT_NAME, self.model, self.provenance())

    def provenance(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "stage": cfg.stage,
            "mode": cfg.mode,
            "preset": cfg.preset,
            "steps": self.step,
            "batch_size": cfg.batch_size * cfg.grad_accum * self.world,
            "data": cfg.data.source,
            "data_seed": cfg.data.seed,
            "val_seed": cfg.data.val_seed,
            "val_metrics": self.last_val,
            "val_step": self.last_val_step,  # the step they were measured at
            "ema": cfg.ema,
            "train_config": cfg.to_dict(),
        }

    def _load_state(self) -> None:
        args = (self.model, self.opt, self.ema, self.cfg.stage, self.cfg.preset, self.device)
        self.step = restore_train_state(self.run_dir, *args, rank=self.rank, scaler=self.scaler)
        if self.is_main:  # the log continues from the state's step, rewritten atomically
            self.history = [r for r in read_metrics(self.run_dir) if r["step"] <= self.step]
            rewrite_metrics(self.run_dir, self.history)
            for row in reversed(self.history):  # what its checkpoints and fit() report until
                if isinstance(row.get("val"), dict):  # the next validation
                    self.last_val, self.last_val_step = row["val"], row["step"]
                    break


def _checkpoint_step(path: Path) -> int | None:
    """The step a checkpoint was saved at (its metadata's "steps"); None if unreadable."""
    try:
        return int(read_checkpoint_info(path)["metadata"]["steps"])
    except Exception:  # damaged, or saved without it: the message leaves the step out
        return None


def _significant(v: float) -> float:
    """A logged value kept to 6 significant digits (a fixed number of decimals would log a small
    learning rate or loss as 0); an int (a count) as it is."""
    return v if isinstance(v, int) else float(f"{v:.6g}")


# with the bar off (--no-progress), a line at most this often (seconds), at a logged step
PROGRESS_LINE_S = 30.0


class _ProgressLines:
    """Plain one-line progress on stderr for a log with no bar: the step, loss, learning rate,
    speed and time left, at a logged step at least `PROGRESS_LINE_S` after the last line."""

    def __init__(self, start: int, total: int) -> None:
        self.start, self.total = start, total
        self.t0 = self.last = time.monotonic()

    def step(self, step: int, loss: float, lr: float) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_LINE_S:
            return
        self.last = now
        rate = (step - self.start) / max(now - self.t0, 1e-9)
        eta = _duration((self.total - step) / rate) if rate > 0 else "?"
        pct = 100 * step / max(self.total, 1)
        _say(
            f"step {step}/{self.total} ({pct:.0f} %), loss {loss:.4f}, lr {lr:.1e}, "
            f"{rate:.3g} steps/s, ETA {eta}"
        )

    def validation(self, step: int, metrics: dict[str, Any]) -> None:
        said = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float))
        _say(f"validation at step {step}: {said}")


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# settings a --resume may change: how long it runs, how often it reports, where, and in what
# precision (fp16 needs CUDA: a run moved off its GPU goes on in bf16 or fp32)
RESUME_MAY_CHANGE = frozenset(
    {"steps", "epochs", "ckpt_every", "val_every", "log_every", "device", "precision"}
)


def resumed_changes(
    saved_cfg: dict[str, Any], cfg: TrainConfig, checked_elsewhere: frozenset[str] = frozenset()
) -> list[str]:
    """'key old -> new' for each setting that resuming a run saved with `saved_cfg` under `cfg`
    changes, each one in `RESUME_MAY_CHANGE`; raises ValueError naming the others.
    `checked_elsewhere`: keys left out (`Trainer`)."""
    saved = _flat(saved_cfg)
    now = _flat(json.loads(json.dumps(cfg.to_dict())))  # tuples read back as lists
    # a setting newer than the run's state counts as its default (an older run resumes); a
    # saved one the code no longer has is ignored. Both sides' keys are compared: an override
    # the run had (model_overrides.*, data.synth.*) and this command lacks is a change too.
    default = _flat(json.loads(json.dumps(TrainConfig().to_dict())))
    keys = (set(now) | {k for k in saved if _known(k, default)}) - checked_elsewhere
    saved = {k: saved.get(k, default.get(k)) for k in keys}
    now = {k: now.get(k, default.get(k)) for k in keys}
    changed = {
        k
        for k in keys
        if saved[k] != now[k] and not (k in PATH_SETTINGS and _same_path(saved[k], now[k]))
    }
    refused = sorted(k for k in changed if k.split(".")[0] not in RESUME_MAY_CHANGE)
    if refused:
        said = ", ".join(f"{k} {saved.get(k)!r} -> {now.get(k)!r}" for k in refused[:4])
        more = f" and {len(refused) - 4} more" if len(refused) > 4 else ""
        raise ValueError(
            f"--resume with other settings than the run's own ({said}{more}): resume with "
            f"the command that started it (only {', '.join(sorted(RESUME_MAY_CHANGE))} may "
            "change), or start a new run in another --out"
        )
    return [f"{k} {saved.get(k)!r} -> {now.get(k)!r}" for k in sorted(changed)]


def _same_path(a: Any, b: Any) -> bool:
    """Whether two path settings name the same file or folder ("" names none)."""
    if not (isinstance(a, str) and isinstance(b, str) and a and b):
        return False
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _known(key: str, default: dict[str, Any]) -> bool:
    """Whether a flattened setting exists in this code: itself, or below a free-form dict
    setting (`model_overrides`, `data.synth`, whose default flattens to one empty key)."""
    parts = key.split(".")
    return any(".".join(parts[:i]) in default for i in range(1, len(parts) + 1))


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out |= _flat(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v}
    return out


def _config_hint(src: Any, dst: Any, parts: tuple[str, ...], skip: set[str] = frozenset()) -> str:
    """'; ' + each field of `parts` where the checkpoint's model config `src` differs from the
    run's `dst`, with the --set that makes the run's model match the checkpoint; '' if none."""
    sets = []
    for part in parts:
        a, b = getattr(src, part), getattr(dst, part)
        for f in dataclasses.fields(a):
            va, vb = getattr(a, f.name), getattr(b, f.name)
            if f.name not in skip and va != vb:
                value = va if isinstance(va, str) else json.dumps(va, separators=(",", ":"))
                sets.append(
                    f"{part}.{f.name} {vb!r} -> {va!r}: --set "
                    f"model_overrides.{part}.{f.name}={value}"
                )
    return ("; to match the checkpoint: " + "; ".join(sets)) if sets else ""


@contextmanager
def _stop_on_signal(enabled: bool = True) -> Iterator[list[int]]:
    """While open, SIGINT, SIGTERM and SIGHUP (a closed terminal) are noted (the yielded list
    gets the signal's number) rather than raised, so the loop can finish its step and save; a
    second signal raises KeyboardInterrupt at once. Off (nothing caught) outside the main
    thread, or when not `enabled` (several ranks, which must stop at the same step)."""
    caught: list[int] = []
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def note(signum: int, frame: Any) -> None:
        if caught:
            raise KeyboardInterrupt
        caught.append(signum)
        log.warning(
            "%s: finishing this step and saving (send it again to stop at once)",
            signal.Signals(signum).name,
        )

    previous = {  # a signal the process was told to ignore (nohup, `cmd &`) stays ignored
        sig: signal.signal(sig, note)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        if signal.getsignal(sig) is not signal.SIG_IGN
    }
    try:
        yield caught
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
