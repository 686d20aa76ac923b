"""training/average.py: the weighted mean of checkpoints from one start, refusing others."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from depthart_core.checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint
from depthart_core.config import get_preset
from depthart_core.model import DepthART


def _pair(tmp_path: Path) -> tuple[Path, Path, DepthART, DepthART]:
    torch.manual_seed(0)
    a = DepthART(get_preset("tiny"))
    b = DepthART(get_preset("tiny"))
    b.tokenizer.load_state_dict(a.tokenizer.state_dict())  # one frozen tokenizer
    return (
        save_checkpoint(tmp_path / "a.safetensors", a),
        save_checkpoint(tmp_path / "b.safetensors", b),
        a,
        b,
    )


def test_average_is_the_weighted_mean_of_the_transformers(tmp_path, training_script):
    mod = training_script("average")
    pa, pb, a, b = _pair(tmp_path)
    out = tmp_path / "soup.safetensors"
    assert mod.main([str(pa), str(pb), "--out", str(out), "--weights", "3", "1"]) == 0
    soup, info = load_checkpoint(out)
    sa, sb, ss = a.state_dict(), b.state_dict(), soup.state_dict()
    key = next(k for k in ss if k.startswith("transformer.") and ss[k].is_floating_point())
    assert not torch.equal(sa[key], sb[key])
    assert torch.allclose(ss[key], 0.75 * sa[key] + 0.25 * sb[key], atol=1e-6)
    for k in ss:
        if k.startswith("tokenizer."):
            assert torch.equal(ss[k], sa[k]), k
    sources = read_checkpoint_info(out)["metadata"]["averaged_from"]
    assert [s["weight"] for s in sources] == [0.75, 0.25]


def test_average_refuses_other_tokenizers_configs_and_bad_weights(tmp_path, training_script):
    mod = training_script("average")
    pa, pb, a, b = _pair(tmp_path)
    with torch.no_grad():
        b.tokenizer.quantize.embedding.weight.add_(1.0)
    other = save_checkpoint(tmp_path / "other_tok.safetensors", b)
    with pytest.raises(ValueError, match="tokenizer.quantize.embedding.weight differs"):
        mod.average([str(pa), str(other)])
    small = save_checkpoint(tmp_path / "small.safetensors", DepthART(get_preset("tiny_cnn")))
    with pytest.raises(ValueError, match="model config differs"):
        mod.average([str(pa), str(small)])
    with pytest.raises(ValueError, match="one finite, non-negative weight per checkpoint"):
        mod.average([str(pa), str(pb)], [1.0])
    for bad in (float("nan"), float("inf")):  # NaN passed the old checks: an all-NaN model
        with pytest.raises(ValueError, match="one finite, non-negative weight per checkpoint"):
            mod.average([str(pa), str(pb)], [0.5, bad])
    tok = save_checkpoint(tmp_path / "stage1.safetensors", a, {"stage": "tokenizer"})
    with pytest.raises(ValueError, match="stage-1 \\(tokenizer\\) checkpoint"):
        mod.average([str(pa), str(tok)])  # its transformer never trained
    out = tmp_path / "never.safetensors"
    with pytest.raises(SystemExit):  # the command line: one line, nothing written
        mod.main([str(pa), str(pb), "--out", str(out), "--weights", "1", "nan"])
    assert not out.exists()
    with pytest.raises(ValueError, match="at least two"):
        mod.average([str(pa)])
