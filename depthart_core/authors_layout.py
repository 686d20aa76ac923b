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

import torch

# recognising the layout by its keys needs no torch (`checkpoint_file`, which reads a file's
# config without it); re-exported here, with the layout's other facts
from depthart_core.checkpoint_file import AUTHORS_PRESET as AUTHORS_PRESET
from depthart_core.checkpoint_file import NORMALIZER as NORMALIZER
from depthart_core.checkpoint_file import QUANT_ALIAS_PREFIX as QUANT_ALIAS_PREFIX
from depthart_core.checkpoint_file import TOKENIZER_PREFIX as TOKENIZER_PREFIX
from depthart_core.checkpoint_file import VAE_FILE_NAME as VAE_FILE_NAME
from depthart_core.checkpoint_file import WRAPPER_PREFIXES as WRAPPER_PREFIXES
from depthart_core.checkpoint_file import authors_config as authors_config
from depthart_core.checkpoint_file import has_tokenizer as has_tokenizer
from depthart_core.checkpoint_file import is_authors_layout as is_authors_layout
from depthart_core.checkpoint_file import strip_wrapper as strip_wrapper
from depthart_core.config import ModelConfig

SKIPPED = {
    "lvl_1L": "scale index of each of the L tokens: a constant our transformer rebuilds",
    "attn_bias_for_masking": "DepthVAR's teacher-forcing mask (their DepthART deletes it); "
    "we rebuild our own for the 2L sequence",
    "normalizer.alpha": "depth normalizer d/q98 * alpha + beta; our codec fixes alpha = 2",
    "normalizer.beta": "depth normalizer d/q98 * alpha + beta; our codec fixes beta = -1",
}


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
