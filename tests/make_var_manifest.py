"""Write tests/data/var_d16_manifest.json: the state-dict names and shapes of VAR's released files.

Enumerated from VAR's published architecture (FoundationVision/VAR `build_vae_var` defaults:
VQVAE ch=160, ch_mult=(1,1,2,2,4), 2 res blocks, attention in the last stage and mid block,
z=32, 4096 codes, 4 shared phi; VAR depth 16, width 1024, 16 heads, MLP x4, cosine attention,
1000 classes + 1, 680 tokens). Independent of depthart_core on purpose: the test compares our
model against this list. Run: python tests/make_var_manifest.py
"""

from __future__ import annotations

import json
from pathlib import Path


def _gn(p: str, c: int) -> dict:
    return {f"{p}.weight": [c], f"{p}.bias": [c]}


def _conv(p: str, cout: int, cin: int, k: int) -> dict:
    return {f"{p}.weight": [cout, cin, k, k], f"{p}.bias": [cout]}


def _resblock(p: str, cin: int, cout: int) -> dict:
    d = {**_gn(f"{p}.norm1", cin), **_conv(f"{p}.conv1", cout, cin, 3)}
    d |= {**_gn(f"{p}.norm2", cout), **_conv(f"{p}.conv2", cout, cout, 3)}
    if cin != cout:
        d |= _conv(f"{p}.nin_shortcut", cout, cin, 1)
    return d


def _attn(p: str, c: int) -> dict:
    return {
        **_gn(f"{p}.norm", c),
        **_conv(f"{p}.qkv", 3 * c, c, 1),
        **_conv(f"{p}.proj_out", c, c, 1),
    }


def vae_manifest(ch=160, mult=(1, 1, 2, 2, 4), nrb=2, z=32, V=4096, scales=10, phis=4) -> dict:
    d: dict = {}
    n = len(mult)
    # encoder
    d |= _conv("encoder.conv_in", ch, 3, 3)
    cin = ch
    for i in range(n):
        cout = ch * mult[i]
        for j in range(nrb):
            d |= _resblock(f"encoder.down.{i}.block.{j}", cin, cout)
            cin = cout
            if i == n - 1:
                d |= _attn(f"encoder.down.{i}.attn.{j}", cin)
        if i != n - 1:
            d |= _conv(f"encoder.down.{i}.downsample.conv", cin, cin, 3)
    d |= _resblock("encoder.mid.block_1", cin, cin) | _attn("encoder.mid.attn_1", cin)
    d |= _resblock("encoder.mid.block_2", cin, cin)
    d |= _gn("encoder.norm_out", cin) | _conv("encoder.conv_out", z, cin, 3)
    # decoder
    cin = ch * mult[-1]
    d |= _conv("decoder.conv_in", cin, z, 3)
    d |= _resblock("decoder.mid.block_1", cin, cin) | _attn("decoder.mid.attn_1", cin)
    d |= _resblock("decoder.mid.block_2", cin, cin)
    for i in reversed(range(n)):
        cout = ch * mult[i]
        for j in range(nrb + 1):
            d |= _resblock(f"decoder.up.{i}.block.{j}", cin, cout)
            cin = cout
            if i == n - 1:
                d |= _attn(f"decoder.up.{i}.attn.{j}", cin)
        if i != 0:
            d |= _conv(f"decoder.up.{i}.upsample.conv", cin, cin, 3)
    d |= _gn("decoder.norm_out", cin) | _conv("decoder.conv_out", 3, cin, 3)
    # quantizer and the convs around it
    d |= _conv("quant_conv", z, z, 3) | _conv("post_quant_conv", z, z, 3)
    d["quantize.embedding.weight"] = [V, z]
    for k in range(phis):
        d |= _conv(f"quantize.quant_resi.qresi_ls.{k}", z, z, 3)
    return d


def var_manifest(depth=16, z=32, V=4096, classes=1000, L=680) -> tuple[dict, list[str]]:
    C, H = 64 * depth, depth
    d: dict = {
        "word_embed.weight": [C, z],
        "word_embed.bias": [C],
        "class_emb.weight": [classes + 1, C],
        "pos_start": [1, 1, C],
        "pos_1LC": [1, L, C],
        "lvl_embed.weight": [10, C],
    }
    buffers = ["lvl_1L", "attn_bias_for_masking"]
    d["lvl_1L"] = [1, L]
    d["attn_bias_for_masking"] = [1, 1, L, L]
    for b in range(depth):
        p = f"blocks.{b}"
        d |= {
            f"{p}.attn.scale_mul_1H11": [1, H, 1, 1],
            f"{p}.attn.q_bias": [C],
            f"{p}.attn.v_bias": [C],
            f"{p}.attn.zero_k_bias": [C],
            f"{p}.attn.mat_qkv.weight": [3 * C, C],
            f"{p}.attn.proj.weight": [C, C],
            f"{p}.attn.proj.bias": [C],
            f"{p}.ffn.fc1.weight": [4 * C, C],
            f"{p}.ffn.fc1.bias": [4 * C],
            f"{p}.ffn.fc2.weight": [C, 4 * C],
            f"{p}.ffn.fc2.bias": [C],
            f"{p}.ada_lin.1.weight": [6 * C, C],
            f"{p}.ada_lin.1.bias": [6 * C],
        }
        buffers.append(f"{p}.attn.zero_k_bias")
    d |= {
        "head_nm.ada_lin.1.weight": [2 * C, C],
        "head_nm.ada_lin.1.bias": [2 * C],
        "head.weight": [V, C],
        "head.bias": [V],
    }
    return d, buffers


if __name__ == "__main__":
    vae = vae_manifest()
    vae["quantize.ema_vocab_hit_SV"] = [10, 4096]
    var, var_buffers = var_manifest()
    out = {
        "source": "VAR build_vae_var defaults (vae_ch160v4096z32.pth, var_d16.pth)",
        "vae": vae,
        "vae_buffers": ["quantize.ema_vocab_hit_SV"],
        "var": var,
        "var_buffers": var_buffers,
    }
    path = Path(__file__).parent / "data" / "var_d16_manifest.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}: {len(vae)} VAE entries, {len(var)} VAR entries")
