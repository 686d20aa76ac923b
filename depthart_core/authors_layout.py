"""The DepthART authors' checkpoint layout (bulatko/DepthART, MIT): detection and key mapping.

Facts read from their code (commit b2bc093): their `DepthART` module
(`mde/models/train_models/var_utils/depthart.py`, subclass of `DepthVAR` in `depth_var.py`) holds
VAR's VQ-VAE as `vae_proxy`, the same quantizer a second time as `vae_quant_proxy`, the transformer
at top level under VAR's names, a `lvl_1L` buffer and their depth normalizer's affine constants
(`NormalizerUTSQuant(affine=True, alpha=2, beta=-1)`). Their trainer saves the state dict with
accelerate 0.30 (`save_state` -> `model.safetensors`), which drops aliased tensors and keeps the
first name, so `vae_quant_proxy.*` is normally absent. Their evaluation config
(`config/launch/eval/depthART.yaml`) sets `cos_attn: False`, `tau: 4`, `shared_aln: False`:
our preset `d16_authors` (`attn_l2_norm=False`, `tau=4`). `shared_aln: False` is our blocks'
only mode and the only one their `DepthVAR` can build (its shared branch calls
`SharedAdaLin(self.D, ...)`, an attribute it never sets), so it needs no config field. Everything
else their inference does matches VAR's d16 and ours: [image prefix | SOS] prefill without a mask,
KV-cached scales, null class 1000, bicubic-resized cumulative f_hat as the image tokens.

Every key of their file maps to one of ours, or is skipped for the reason given in `SKIPPED` (and
checked to hold the value we rebuild it with). Loading stays strict: the mapped state goes through
`checkpoint.load_state_dict_strict`.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from depthart_core.config import ModelConfig, get_preset, with_overrides

AUTHORS_PRESET = "d16_authors"
VAE_FILE_NAME = "vae_ch160v4096z32.pth"  # VAR's VQ-VAE release; their tokenizer is this, frozen
TOKENIZER_PREFIX = "vae_proxy."  # -> tokenizer.
QUANT_ALIAS_PREFIX = "vae_quant_proxy."  # the same tensors as vae_proxy.quantize.*
# Wrappers a saved state may carry as a prefix on every key: DDP (`module.`; accelerate's
# save_state does not unwrap), torch.compile (`_orig_mod.`), their eval adapter VARFull (`model.`).
WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.")
NORMALIZER = {"normalizer.alpha": 2.0, "normalizer.beta": -1.0}
SKIPPED = {
    "lvl_1L": "scale index of each of the L tokens: a constant our transformer rebuilds",
    "attn_bias_for_masking": "DepthVAR's teacher-forcing mask (their DepthART deletes it); "
    "we rebuild our own for the 2L sequence",
    "normalizer.alpha": "depth normalizer d/q98 * alpha + beta; our codec fixes alpha = 2",
    "normalizer.beta": "depth normalizer d/q98 * alpha + beta; our codec fixes beta = -1",
}


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


def authors_to_ours(
    state: dict[str, torch.Tensor],
    cfg: ModelConfig,
    vae_state: dict[str, torch.Tensor] | None = None,
    what: str = "checkpoint",
) -> dict[str, torch.Tensor]:
    """Their state dict (+ VAR's VQ-VAE state when theirs lacks it) -> our `DepthART` keys."""
    prefix, keys = strip_wrapper(state)
    state = {k: state[prefix + k] for k in keys}
    out: dict[str, torch.Tensor] = {}
    alias: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if k in SKIPPED:
            continue
        if k.startswith(TOKENIZER_PREFIX):
            out["tokenizer." + k[len(TOKENIZER_PREFIX) :]] = v
        elif k.startswith(QUANT_ALIAS_PREFIX):
            alias["tokenizer.quantize." + k[len(QUANT_ALIAS_PREFIX) :]] = v
        else:
            out["transformer." + k] = v
    for k, v in alias.items():
        if k in out and not torch.equal(out[k], v):
            raise ValueError(f"{what}: {k} differs from its alias {QUANT_ALIAS_PREFIX}...")
        out.setdefault(k, v)
    if vae_state is not None:
        if any(k.startswith("tokenizer.") for k in out):
            raise ValueError(f"{what} already holds the VQ-VAE weights; do not pass a VAE file")
        out.update({"tokenizer." + k: v for k, v in vae_state.items()})
    _check_skipped(state, cfg, what)
    return out


def _check_skipped(state: dict[str, torch.Tensor], cfg: ModelConfig, what: str) -> None:
    """A skipped key must hold what we rebuild, or the file is not the model we think it is."""
    for k, want in NORMALIZER.items():
        if k in state and abs(float(state[k]) - want) > 1e-6:
            raise ValueError(f"{what}: {k} = {float(state[k])}, the codec needs {want}")
    if "lvl_1L" in state:
        pns = cfg.tokenizer.patch_nums
        lvl = torch.cat([torch.full((pn * pn,), i) for i, pn in enumerate(pns)]).view(1, -1)
        got = state["lvl_1L"]
        if tuple(got.shape) != tuple(lvl.shape) or not torch.equal(got.long(), lvl):
            raise ValueError(
                f"{what}: lvl_1L {tuple(got.shape)} does not match patch_nums {tuple(pns)}"
            )
