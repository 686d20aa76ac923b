"""A checkpoint as a file, without torch: where it is (`resolve_checkpoint`), what it holds
(`read_checkpoint_info`: its config and metadata, from the safetensors header), its hash
(`file_sha256`) and the refusals that need no weights (a pickle, a stage-1 tokenizer, a VQ-VAE
given for a file that holds its own). `CheckpointFile` carries one resolved checkpoint through
`runtime.get_backend`.

A process that runs a cached graph on ONNX Runtime needs nothing more, so this module imports no
torch (about 160 MB resident and 0.75 s of start-up on the CPU wheel): the ROS node on
`onnxruntime` or `auto` without TensorRT starts without it. Building and loading the model is
`depthart_core.checkpoint`'s (torch), which re-exports the names it had before; its
`load_model` builds a `CheckpointFile`'s model, once (this module, below it, cannot import it).

The DepthART authors' released file (bulatko/DepthART) is recognised here by its keys alone
(`is_authors_layout`, `has_tokenizer`, `authors_config`; `depthart_core.authors_layout`, which
maps its tensors with torch, re-exports them).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import site
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from depthart_core.config import ModelConfig, get_preset, with_overrides
from depthart_core.fileutil import sha256_file
from depthart_core.rundir import open_safetensors

FORMAT = "depthart/1"
AUTHORS_LAYOUT = "bulatko/DepthART"  # the authors' released model.safetensors (authors_layout)
DEFAULT_CHECKPOINT_NAME = "depthart_tiny_cnn.safetensors"
ENV_CHECKPOINT = "DEPTHART_CHECKPOINT"
# safetensors' framework for reading a header and its keys: its default, "pt", imports torch
_HEADER_ONLY = "numpy"

# The authors' layout, by its keys (`depthart_core.authors_layout` has the facts and the mapping)
AUTHORS_PRESET = "d16_authors"
VAE_FILE_NAME = "vae_ch160v4096z32.pth"  # VAR's VQ-VAE release; their tokenizer is this, frozen
TOKENIZER_PREFIX = "vae_proxy."  # -> tokenizer.
QUANT_ALIAS_PREFIX = "vae_quant_proxy."  # the same tensors as vae_proxy.quantize.*
# Wrappers a saved state may carry as a prefix on every key: DDP (`module.`; accelerate's
# save_state does not unwrap), torch.compile (`_orig_mod.`), their eval adapter VARFull (`model.`).
WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.")
NORMALIZER = {"normalizer.alpha": 2.0, "normalizer.beta": -1.0}


def strip_wrapper(keys: Iterable[str]) -> tuple[str, list[str]]:
    """(prefix, keys without it) when every key carries one of WRAPPER_PREFIXES, else ('', keys)."""
    keys = list(keys)
    for prefix in WRAPPER_PREFIXES:
        if keys and all(k.startswith(prefix) for k in keys):
            return prefix, [k[len(prefix) :] for k in keys]
    return "", keys


def is_authors_layout(keys: Iterable[str]) -> bool:
    """Their transformer sits at top level under VAR's names (ours is under `transformer.`),
    with their depth normalizer beside it: VAR's own image generator (var_d16 saved as
    safetensors) has the same transformer names but no normalizer, and is no depth model."""
    _, keys = strip_wrapper(keys)
    names = set(keys)
    return {"word_embed.weight", "head.weight", "blocks.0.ada_lin.1.weight", *NORMALIZER} <= names


def has_tokenizer(keys: Iterable[str]) -> bool:
    _, keys = strip_wrapper(keys)
    return any(k.startswith((TOKENIZER_PREFIX, QUANT_ALIAS_PREFIX + "embedding")) for k in keys)


def authors_config(keys: Iterable[str], base: ModelConfig | None = None) -> ModelConfig:
    """`d16_authors` (or `base`), with cosine attention on if the file holds its learned scales."""
    cfg = base or get_preset(AUTHORS_PRESET)
    cos_attn = any(k.endswith("attn.scale_mul_1H11") for k in keys)
    return with_overrides(cfg, {"transformer": {"attn_l2_norm": cos_attn}})


def read_checkpoint_info(path: str | Path) -> dict[str, Any]:
    """Config and metadata stored inside a checkpoint, without loading weights."""
    path = _existing(path)
    _refuse_pickle(path)
    try:
        with open_safetensors(path, framework=_HEADER_ONLY) as f:
            meta = f.metadata() or {}
            keys = list(f.keys()) if meta.get("format") != FORMAT else []
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        if path.suffix.lower() == ".onnx":  # an exported graph is not a checkpoint
            raise ValueError(
                f"{path} is an ONNX graph, not a checkpoint: give the .safetensors it was "
                "exported from"
            ) from exc
        if path.suffix.lower() in _PICKLE_SUFFIXES:  # named so, but not pickled (_refuse_pickle)
            raise ValueError(
                f"{path} is not a safetensors checkpoint, nor a torch.save file ({exc})"
            ) from exc
        raise ValueError(f"{path} is not a readable safetensors file: {exc}") from exc
    if meta.get("format") != FORMAT:
        if is_authors_layout(keys):
            cfg = authors_config(keys)
            return {"config": cfg.to_dict(), "metadata": {}, "layout": AUTHORS_LAYOUT}
        raise ValueError(f"{path} is not a DepthART checkpoint (format={meta.get('format')!r})")
    parsed: dict[str, Any] = {}
    for key, default in (("config", None), ("metadata", "{}")):
        text = meta.get(key, default)
        try:
            parsed[key] = json.loads(text) if text is not None else None
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, without the file's name
            raise ValueError(f"{path}: its {key!r} metadata is not valid JSON ({exc})") from exc
        if not isinstance(parsed[key], dict):
            raise ValueError(f"{path}: its {key!r} metadata is not a JSON object")
    copied = copied_head(parsed["metadata"], parsed["config"])
    if copied is not None:  # the model is the one without the head (`load_checkpoint` drops it)
        headless = {"uncertainty_width": 0, "uncertainty_context": False}
        return {**parsed, "config": parsed["config"] | headless, "layout": FORMAT} | copied
    return {**parsed, "layout": FORMAT}


HEAD_PREFIX = "uncertainty_head."


def copied_head(metadata: dict[str, Any], config: dict[str, Any]) -> dict[str, str] | None:
    """{"uncertainty_dropped": why} for a checkpoint whose uncertainty head is not its own, else
    None: one trained from another checkpoint (`train_config.init_checkpoint`, as a fine-tune
    before 2026-12-06 11:44 UTC, commit eca7b8a) that kept that one's head. Training never
    changes the head, so it is the other model's, unchanged; a head trained for the model
    (training/uncertainty_head.py) records itself in the metadata's "uncertainty_head"."""
    train = metadata.get("train_config")
    width = config.get("uncertainty_width")  # a bad one: ModelConfig names it
    if not (isinstance(width, int) and width > 0) or "uncertainty_head" in metadata:
        return None
    if not isinstance(train, dict) or not train.get("init_checkpoint"):
        return None
    if train.get("init_tokenizer_only"):  # the head was not copied (a new one, never trained)
        return None
    return {
        "uncertainty_dropped": (
            f"its uncertainty head was copied unchanged from {train['init_checkpoint']} (as "
            "depthart's fine-tunes did before 2026-12-06 11:44 UTC, commit eca7b8a) and "
            "describes that model's errors, not this one's: train a head for it with "
            "training/uncertainty_head.py"
        )
    }


def refuse_vae(
    vae: str | Path | None, info: dict[str, Any], path: str | Path, setting: str | None = None
) -> None:
    """A VQ-VAE given (`vae`) for a checkpoint that holds its own (`info`, its
    `read_checkpoint_info`): ours, or an authors' file saved with it. The file given would be
    ignored, so it is refused. Raises naming `setting`, what the user gave it with: the CLI's
    --vae, or the ROS node's `vae` parameter (as `check_device` takes its advice); None (no
    setting named): the `vae` argument, as a Python caller gave it."""
    if vae is None:
        return
    setting = setting or "vae"
    if info["layout"] != AUTHORS_LAYOUT:
        raise ValueError(f"{setting} {vae} is only for the authors' checkpoint; {path} is complete")
    with open_safetensors(path, framework=_HEADER_ONLY) as f:
        if has_tokenizer(f.keys()):  # the file's own VQ-VAE would be used
            raise ValueError(
                f"{setting} {vae}: {path} holds its own VQ-VAE, which is what loads; drop {setting}"
            )


def file_sha256(path: str | Path) -> str:
    """sha256 of a checkpoint file, hashed once per process while the file stays the same one
    (same inode, size and mtime: `save_checkpoint` replaces files, so a rewrite is a new key)."""
    p = Path(path).resolve()
    st = p.stat()
    return _sha256_of(str(p), st.st_ino, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256_of(path: str, inode: int, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def refuse_tokenizer_only(info: dict[str, Any], path: str | Path) -> None:
    """A stage-1 (tokenizer) checkpoint holds a transformer that never trained: as a depth
    model it would give depth from random weights. Raises naming the file."""
    if info.get("metadata", {}).get("stage") == "tokenizer":
        raise ValueError(
            f"{path} is a stage-1 (tokenizer) checkpoint: its transformer never trained, so it "
            "gives no depth; give a stage-2 checkpoint (train's transformer stage, or finetune's)"
        )


class CheckpointFile:
    """One depth model's checkpoint (a stage-1 tokenizer checkpoint is refused): resolved and
    hashed when made, its model loaded (on the CPU, by `checkpoint.load_model`) at most once.

    Every backend `runtime.get_backend` tries gets the same one, so the `auto` fallback from
    TensorRT to ONNX Runtime to PyTorch never reads, hashes or loads the file twice.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        vae: str | Path | None = None,
        vae_setting: str | None = None,
    ) -> None:
        self.default = path is None  # none named: the shipped one (or $DEPTHART_CHECKPOINT)
        self.path = resolve_checkpoint(path)
        self.vae = vae  # VAR's VQ-VAE, only for an authors' checkpoint saved without it
        self.vae_setting = vae_setting  # what errors call `vae` (`load_checkpoint`)
        _refuse_pickle(self.path)  # before any backend tries it, so `auto` fails once, clearly
        self._info: dict[str, Any] | None = None
        refuse_tokenizer_only(self.info(), self.path)  # every user of it wants depth from it
        # here, not at `checkpoint.load_model`: a cached graph skips it
        refuse_vae(vae, self.info(), self.path, vae_setting)
        # hashed only once the header says it is a checkpoint: a big file that is not one is
        # refused at once, not after reading all of it
        self.sha256 = file_sha256(self.path)
        # (DepthART model, info) once `checkpoint.load_model` built it: one model for every
        # backend the `auto` chain tries
        self.loaded: tuple[Any, dict[str, Any]] | None = None

    @functools.cached_property
    def model_sha256(self) -> str:
        """The identity of the model this file loads as: `sha256`, or, for an authors' file
        without the VQ-VAE, the hash of its sha256 and the VAE file's that
        `checkpoint.load_model` reads with it (another VAE is another model). What exported
        graphs and engines are keyed and stamped with."""
        vae = self._vae_file()
        if vae is None:
            return self.sha256
        return hashlib.sha256(f"{self.sha256}+vae:{file_sha256(vae)}".encode()).hexdigest()

    def _vae_file(self) -> Path | None:
        """The separate VQ-VAE file `checkpoint.load_model` reads (as `load_checkpoint` picks
        it), else None."""
        if self.info()["layout"] != AUTHORS_LAYOUT:
            return None
        with open_safetensors(self.path, framework=_HEADER_ONLY) as f:
            if has_tokenizer(f.keys()):
                return None
        vae = _expand(self.vae) if self.vae else self.path.parent / VAE_FILE_NAME
        return vae if vae.is_file() else None  # missing: loading names it

    def info(self) -> dict[str, Any]:
        """Config and metadata (`read_checkpoint_info`), without loading weights."""
        if self._info is None:
            self._info = read_checkpoint_info(self.path)
        return self._info


def _shipped_candidates() -> list[Path]:
    """Where the shipped checkpoint can be, in order: the repository (a source checkout or an
    editable install), then the `share/depthart_ros/checkpoints` that setup.py's data_files
    install under the environment's prefix (a pip install into a venv or `--prefix`; the
    package's own prefix, `sys.prefix`, the user base of `pip install --user`, and the folder of
    `pip install --target`)."""
    package_dir = Path(__file__).resolve().parent
    repo = package_dir.parent / "checkpoints" / DEFAULT_CHECKPOINT_NAME
    # <prefix>/lib/pythonX.Y/site-packages/depthart_core -> <prefix>; `pip install --target DIR`
    # puts the package and share/ side by side in DIR
    prefixes = [
        *package_dir.parents[3:4],
        Path(sys.prefix),
        Path(site.getuserbase()),
        package_dir.parent,
    ]
    shares = [
        p / "share" / "depthart_ros" / "checkpoints" / DEFAULT_CHECKPOINT_NAME for p in prefixes
    ]
    return [repo, *dict.fromkeys(shares)]


def default_checkpoint_path() -> Path:
    """$DEPTHART_CHECKPOINT, else the shipped checkpoint: in the repository, under the install
    prefix (`_shipped_candidates`), or in a colcon install's ament share directory. Where none
    exists, the repository's path (the error names it)."""
    env = os.environ.get(ENV_CHECKPOINT)
    if env:
        return _expand(env)
    candidates = _shipped_candidates()
    for path in candidates:
        if path.is_file():
            return path
    try:  # optional dependency: ament_index_python exists only in a colcon-installed ROS 2
        from ament_index_python.packages import get_package_share_directory

        share = Path(get_package_share_directory("depthart_ros"))
        return share / "checkpoints" / DEFAULT_CHECKPOINT_NAME
    except Exception:
        return candidates[0]


def resolve_checkpoint(path: str | Path | None) -> Path:
    if path is None:
        default = default_checkpoint_path()
        if not default.is_file() and not os.environ.get(ENV_CHECKPOINT):
            looked = ", ".join(str(p) for p in _shipped_candidates())
            raise FileNotFoundError(
                f"checkpoint not found: the shipped {DEFAULT_CHECKPOINT_NAME} is in none of "
                f"{looked}: pass a checkpoint or set {ENV_CHECKPOINT}"
            )
        return _existing(default)
    return _existing(path)


def _expand(path: str | Path) -> Path:
    """`path` with a leading `~` expanded (`$DEPTHART_CHECKPOINT`, the node's `checkpoint`
    parameter and YAML values get no shell to do it); as given where no home is known."""
    try:
        return Path(path).expanduser()
    except RuntimeError:  # HOME unset and no passwd entry: the "not found" names it as given
        return Path(path)


def _existing(path: str | Path) -> Path:
    p = _expand(path)
    if p.is_dir():
        inside = p / "checkpoint.safetensors"  # a run folder (train, finetune) names it so
        hint = f": the run's model is {inside}" if inside.is_file() else ""
        raise ValueError(f"checkpoint {p} is a directory, not a file{hint}")
    if not p.is_file():
        if p.exists():  # a FIFO, a device (a link to /dev/zero), a socket
            raise ValueError(
                f"checkpoint {p} is not a regular file (a device, FIFO or socket): give a file"
            )
        raise FileNotFoundError(f"checkpoint not found: {p}")
    return p


_PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".pkl")


def _refuse_pickle(path: Path) -> None:
    """A pickled PyTorch file gets a message saying why it is not loaded and how to convert it,
    instead of a safetensors header error. Recognised by its first bytes: a zip archive
    (torch.save since 1.6) or a pickle PROTO opcode (0x80, protocol 2-5), whatever its suffix; a
    file that starts otherwise (text, a damaged file) is never called pickled, even named .pth,
    and gets the safetensors reader's own reason. A safetensors file (an 8-byte little-endian
    header length, then the JSON header's "{") is never refused, even when its length's first
    byte happens to be 0x80."""
    with open(path, "rb") as f:
        head = f.read(9)
    if head[8:9] == b"{":
        return
    pickle_proto = head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
    if head[:4] == b"PK\x03\x04" or pickle_proto:
        raise ValueError(
            f"{path} is a pickled PyTorch checkpoint: DepthART loads only .safetensors, because "
            "unpickling can run arbitrary code. Convert it once: VAR's var_d16.pth / vae_*.pth "
            "with `depthart train --set var_pth=... --set vae_pth=...`; a DepthART state dict as "
            "in README 'Converting a .pth checkpoint'"
        )
