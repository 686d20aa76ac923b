"""Write tests/data/authors_d16_manifest.json: names and shapes of the DepthART authors' d16 file.

Facts from bulatko/DepthART (commit b2bc093): their `DepthART` module keeps VAR's VQ-VAE as
`vae_proxy`, VAR's d16 transformer at top level with plain dot-product attention
(`cos_attn: False`, so no `attn.scale_mul_1H11`), VAR's `lvl_1L` buffer, their depth normalizer's
`alpha` / `beta` buffers, and no `attn_bias_for_masking` (deleted in `DepthART.__init__`). Their
trainer saves with accelerate 0.30, which drops the aliased `vae_quant_proxy.*` copies of
`vae_proxy.quantize.*`. Independent of depthart_core on purpose.

    python tests/make_authors_manifest.py                  # write the manifest
    python tests/make_authors_manifest.py --check FILE     # compare with a real file's header
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from make_var_manifest import vae_manifest, var_manifest


def authors_manifest() -> dict:
    d = {f"vae_proxy.{k}": s for k, s in vae_manifest().items()}
    d["vae_proxy.quantize.ema_vocab_hit_SV"] = [10, 4096]
    var, _ = var_manifest()
    for k, s in var.items():
        if k.endswith("attn.scale_mul_1H11") or k == "attn_bias_for_masking":
            continue
        d[k] = s
    d["normalizer.alpha"] = []
    d["normalizer.beta"] = []
    return d


if __name__ == "__main__":
    keys = authors_manifest()
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        from safetensors import safe_open

        with safe_open(sys.argv[2], framework="pt") as f:
            got = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
        missing, extra = sorted(set(keys) - set(got)), sorted(set(got) - set(keys))
        shapes = [k for k in set(keys) & set(got) if keys[k] != got[k]]
        print(
            f"{len(got)} keys in file, {len(keys)} in manifest; missing {missing}, "
            f"extra {extra}, shape mismatches {shapes}"
        )
        sys.exit(1 if missing or extra or shapes else 0)
    out = {
        "source": "bulatko/DepthART b2bc093 DepthART d16 state dict as saved by accelerate 0.30",
        "keys": keys,
        "buffers": [
            "lvl_1L",
            "normalizer.alpha",
            "normalizer.beta",
            "vae_proxy.quantize.ema_vocab_hit_SV",
        ]
        + [k for k in keys if k.endswith("attn.zero_k_bias")],
    }
    path = Path(__file__).parent / "data" / "authors_d16_manifest.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}: {len(keys)} entries")
