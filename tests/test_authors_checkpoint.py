"""The DepthART authors' checkpoint layout (bulatko/DepthART) loads strictly and predicts.

The d16 manifest (tests/data/authors_d16_manifest.json, written by make_authors_manifest.py and
checked against a file saved by the authors' own code) is compared with our `d16_authors` model
built on the meta device, so no 1.7 GB of weights is needed. A random file in the same layout at a
small size is written by the test, loaded strictly and run end to end.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from make_authors_manifest import authors_manifest
from make_var_manifest import vae_manifest, var_manifest
from safetensors.torch import save_file

from depthart_core import authors_layout, checkpoint_file
from depthart_core.checkpoint import load_authors_state, read_checkpoint_info
from depthart_core.config import ModelConfig, TokenizerConfig, TransformerConfig, get_preset
from depthart_core.model import DepthART
from depthart_core.runtime.torch_backend import DepthEstimator
from depthart_core.transformer.blocks import SelfAttention

MANIFEST = json.loads((Path(__file__).parent / "data" / "authors_d16_manifest.json").read_text())
PNS = (1, 2, 3, 4, 6, 8)
SMALL = ModelConfig(
    image_size=64,
    tokenizer=TokenizerConfig(
        ch=16,
        ch_mult=(1, 2, 2, 4),
        num_res_blocks=1,
        using_sa=True,
        z_channels=8,
        vocab_size=64,
        patch_nums=PNS,
    ),
    transformer=TransformerConfig(
        depth=2, width=128, num_heads=2, num_classes=10, attn_l2_norm=False, tau=4.0
    ),
)


def _constants(L_pns: tuple[int, ...]) -> dict[str, torch.Tensor]:
    lvl = torch.cat([torch.full((pn * pn,), i) for i, pn in enumerate(L_pns)]).view(1, -1)
    return {
        "lvl_1L": lvl,
        "normalizer.alpha": torch.tensor(2.0),
        "normalizer.beta": torch.tensor(-1.0),
    }


def small_authors_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights named and shaped as the authors' file, at the SMALL size."""
    names = {f"vae_proxy.{k}": s for k, s in vae_manifest(16, (1, 2, 2, 4), 1, 8, 64).items()}
    names["vae_proxy.quantize.ema_vocab_hit_SV"] = [len(PNS), 64]
    L = sum(pn * pn for pn in PNS)
    var, _ = var_manifest(depth=2, z=8, V=64, classes=10, L=L)
    var["lvl_embed.weight"] = [len(PNS), 128]
    for k, s in var.items():
        if not k.endswith("scale_mul_1H11") and k not in ("attn_bias_for_masking", "lvl_1L"):
            names[k] = s
    gen = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(s, generator=gen) * 0.05 for k, s in names.items()}
    return state | _constants(PNS)


def test_d16_manifest_maps_onto_d16_authors_exactly():
    assert MANIFEST["keys"] == authors_manifest()
    state = {k: torch.empty(s, device="meta") for k, s in MANIFEST["keys"].items()}
    state |= _constants(get_preset("d16").tokenizer.patch_nums)
    cfg = authors_layout.authors_config(state)
    assert cfg == get_preset("d16_authors") and not cfg.transformer.attn_l2_norm
    mapped = authors_layout.authors_to_ours(state, cfg)
    with torch.device("meta"):
        ours = DepthART(cfg).state_dict()
    assert {k: list(v.shape) for k, v in mapped.items()} == {
        k: list(v.shape) for k, v in ours.items()
    }
    # skipped keys: exactly the documented ones
    skipped = {k for k in MANIFEST["keys"] if k in authors_layout.SKIPPED}
    assert skipped == {"lvl_1L", "normalizer.alpha", "normalizer.beta"}


def test_small_authors_file_loads_strictly_and_predicts(tmp_path):
    state = small_authors_state()
    path = tmp_path / "model.safetensors"
    save_file(state, path, metadata={"format": "pt"})  # what accelerate writes
    info = read_checkpoint_info(path)
    assert info["layout"] == "bulatko/DepthART"
    assert info["config"]["transformer"]["attn_l2_norm"] is False
    model = DepthART(SMALL)
    load_authors_state(model, state, what=str(path))
    assert torch.equal(model.transformer.head.weight, state["head.weight"])
    assert torch.equal(model.transformer.blocks[1].attn.q_bias, state["blocks.1.attn.q_bias"])
    assert torch.equal(
        model.tokenizer.quantize.embedding.weight, state["vae_proxy.quantize.embedding.weight"]
    )
    rgb = np.random.default_rng(0).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    est = DepthEstimator(model)
    depth = est.predict(rgb)
    assert depth.shape == (48, 80) and np.isfinite(depth).all()
    assert 0.0 <= depth.min() and depth.max() <= 1.0 and depth.std() > 0
    np.testing.assert_array_equal(depth, est.predict(rgb))


def test_tokenizer_from_a_separate_vae_state_and_aliases():
    state = small_authors_state()
    vae = {k[len("vae_proxy.") :]: v for k, v in state.items() if k.startswith("vae_proxy.")}
    bare = {k: v for k, v in state.items() if not k.startswith("vae_proxy.")}
    a, b = DepthART(SMALL), DepthART(SMALL)
    load_authors_state(a, state)
    load_authors_state(b, bare, vae_state=vae)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    with pytest.raises(ValueError, match="already holds the VQ-VAE"):
        load_authors_state(a, state, vae_state=vae)
    # an un-deduplicated file carries vae_quant_proxy.* too: used if equal, refused if not
    alias = dict(
        state, **{"vae_quant_proxy.embedding.weight": state["vae_proxy.quantize.embedding.weight"]}
    )
    load_authors_state(a, alias)
    alias["vae_quant_proxy.embedding.weight"] = alias["vae_quant_proxy.embedding.weight"] + 1
    with pytest.raises(ValueError, match="alias"):
        load_authors_state(a, alias)
    # DDP-wrapped keys
    load_authors_state(a, {f"module.{k}": v for k, v in state.items()})


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda s: s.pop("blocks.0.ffn.fc2.bias"), "transformer.blocks.0.ffn.fc2.bias"),
        (
            lambda s: s.update({"blocks.0.attn.scale_mul_1H11": torch.zeros(1, 2, 1, 1)}),
            "scale_mul",
        ),
        (lambda s: s.update({"normalizer.alpha": torch.tensor(1.0)}), "normalizer.alpha"),
        (lambda s: s.update({"lvl_1L": torch.zeros(1, 130)}), "lvl_1L"),
        (lambda s: s.update({"head.bias": torch.zeros(65)}), "head.bias"),
    ],
)
def test_strict_loading_names_the_bad_key(edit, match):
    state = small_authors_state()
    edit(state)
    with pytest.raises(ValueError, match=match):
        load_authors_state(DepthART(SMALL), state)


def test_tau_sets_the_dot_product_temperature():
    torch.manual_seed(0)
    a4, a1 = SelfAttention(64, 2, False, tau=4.0), SelfAttention(64, 2, False, tau=1.0)
    a1.load_state_dict(a4.state_dict())
    assert a4.scale == pytest.approx(1 / math.sqrt(32) / 4)
    x = torch.randn(1, 5, 64) * 3
    q, k, v = (
        (a4.mat_qkv(x) + torch.cat((a4.q_bias, a4.zero_k_bias, a4.v_bias)))
        .view(1, 5, 3, 2, 32)
        .permute(2, 0, 3, 1, 4)
    )
    ref = ((q @ k.transpose(-1, -2)) / math.sqrt(32) / 4).softmax(-1) @ v
    ref = a4.proj(ref.transpose(1, 2).reshape(1, 5, 64))
    torch.testing.assert_close(a4(x, None, None)[0], ref)
    assert not torch.allclose(a1(x, None, None)[0], ref, atol=1e-4)


def test_a_vae_given_for_an_authors_file_that_holds_one_is_refused(tmp_path, monkeypatch, capsys):
    """`convert FILE --vae X` on an authors' file saved with its VQ-VAE exited 0 with the
    file's own VAE (X ignored, even a missing one); refused in one line, on every path."""
    from depthart_core.checkpoint import CheckpointFile, load_checkpoint
    from depthart_core.cli import main

    monkeypatch.setattr(checkpoint_file, "authors_config", lambda keys, base=None: SMALL)
    full = tmp_path / "full.safetensors"
    save_file(small_authors_state(seed=3), full)
    load_checkpoint(full)  # loads with its own
    for vae in (tmp_path / "nowhere.pth", full):
        with pytest.raises(ValueError, match=f"vae {vae}: {full} holds its own VQ-VAE"):
            load_checkpoint(full, vae=vae)
        with pytest.raises(ValueError, match="holds its own VQ-VAE"):
            CheckpointFile(full, vae=vae)
    out = tmp_path / "o.safetensors"
    assert main(["convert", str(full), "--vae", str(tmp_path / "x.pth"), "--out", str(out)]) == 1
    assert "holds its own VQ-VAE" in capsys.readouterr().err and not out.exists()


def test_cli_paths_with_a_small_authors_file(tmp_path, monkeypatch, capsys):
    """predict / convert / info through `load_checkpoint`, with the VQ-VAE given separately.

    Detection picks the `d16_authors` config for an authors' file; here it is pointed at SMALL so
    the whole path runs on a small random file.
    """
    from depthart_core.checkpoint import load_checkpoint
    from depthart_core.cli import main

    monkeypatch.setattr(checkpoint_file, "authors_config", lambda keys, base=None: SMALL)
    state = small_authors_state(seed=3)
    vae = {k[len("vae_proxy.") :]: v for k, v in state.items() if k.startswith("vae_proxy.")}
    bare = tmp_path / "model.safetensors"
    save_file({k: v for k, v in state.items() if not k.startswith("vae_proxy.")}, bare)
    with pytest.raises(FileNotFoundError, match="vae_ch160v4096z32.pth"):
        load_checkpoint(bare)
    vae_pth = tmp_path / "elsewhere.pth"
    torch.save(vae, vae_pth)
    model, info = load_checkpoint(bare, vae=vae_pth)
    assert info["metadata"]["vae"] == str(vae_pth)
    assert torch.equal(model.tokenizer.decoder.conv_out.weight, vae["decoder.conv_out.weight"])
    torch.save(vae, tmp_path / "vae_ch160v4096z32.pth")  # beside the checkpoint: found
    load_checkpoint(bare)

    # the model's identity (what exported graphs and engines are keyed by) covers the VAE read
    from depthart_core.checkpoint import CheckpointFile, file_sha256

    other = {k: v * 1.5 if k.startswith("decoder.") else v for k, v in vae.items()}
    torch.save(other, tmp_path / "other.pth")
    given, changed = (
        CheckpointFile(bare, vae=vae_pth),
        CheckpointFile(bare, vae=tmp_path / "other.pth"),
    )
    beside = CheckpointFile(bare)  # vae_ch160v4096z32.pth, found beside it
    assert given.sha256 == changed.sha256 == beside.sha256 == file_sha256(bare)  # the file itself
    assert len({given.model_sha256, changed.model_sha256, given.sha256}) == 3
    named = CheckpointFile(bare, vae=tmp_path / "vae_ch160v4096z32.pth")
    assert beside.model_sha256 == named.model_sha256

    import cv2

    cv2.imwrite(str(tmp_path / "f.png"), np.zeros((30, 40, 3), np.uint8))
    args = ["predict", str(tmp_path / "f.png"), "--checkpoint", str(bare), "--vae", str(vae_pth)]
    assert main([*args, "--out", str(tmp_path / "p")]) == 0
    ours = tmp_path / "ours.safetensors"
    assert main(["convert", str(bare), "--vae", str(vae_pth), "--out", str(ours)]) == 0
    converted, cinfo = load_checkpoint(ours)  # our format: no mapping, no VAE needed
    assert CheckpointFile(ours).model_sha256 == file_sha256(ours)
    assert cinfo["metadata"]["converted_from"] == str(bare)
    assert cinfo["metadata"]["vae_sha256"] == file_sha256(vae_pth)
    sa, sb = model.state_dict(), converted.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert main(["convert", str(ours), "--out", str(tmp_path / "again.safetensors")]) == 1
    assert "already a DepthART-ROS checkpoint" in capsys.readouterr().err
    # convert never writes over an input, and over an earlier output only when told to
    before = ours.read_bytes()
    convert = ["convert", str(bare), "--vae", str(vae_pth)]
    assert main([*convert, "--out", str(ours)]) == 1
    assert "exists: pass --overwrite" in capsys.readouterr().err and ours.read_bytes() == before
    assert main([*convert, "--out", str(ours), "--overwrite"]) == 0
    assert main([*convert, "--out", str(bare), "--overwrite"]) == 1
    assert "would write over an input" in capsys.readouterr().err
    # info reads the file with its separate VAE, and counts every part
    assert main(["info", str(bare), "--vae", str(vae_pth)]) == 0
    out = capsys.readouterr().out
    assert "layout bulatko/DepthART" in out and "uncertainty_head" in out
    # a refused or broken pickle for the VAE: one line naming the file
    (tmp_path / "evil.pth").write_bytes(b"\x80\x04\x95not a pickle at all")
    evil = ["convert", str(bare), "--vae", str(tmp_path / "evil.pth")]
    assert main([*evil, "--out", str(tmp_path / "o.safetensors")]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'evil.pth'} is not a loadable state dict" in err
    assert err.count("\n") == 1, err  # one line, no traceback


def test_vars_image_generator_is_not_taken_for_the_depth_model(tmp_path):
    """VAR's var_d16 as safetensors has the same transformer names but no depth normalizer."""
    from depthart_core.checkpoint import read_checkpoint_info

    state = small_authors_state()
    for k in ("normalizer.alpha", "normalizer.beta"):
        del state[k]
    var = tmp_path / "var.safetensors"
    save_file(state, var)
    with pytest.raises(ValueError, match="is not a DepthART checkpoint"):
        read_checkpoint_info(var)
