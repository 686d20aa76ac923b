"""Named inference settings for choosing each scale's codes: `greedy` and the paper's `paper`.

`greedy`: argmax at every token; deterministic and the only setting an exported graph (ONNX,
TensorRT) runs. `paper`: the DepthART authors' evaluation (bulatko/DepthART
`DepthART.autoregressive_infer_cfg`): temperature 1, top-k 900, top-p 0.9, five codes sampled per
token with replacement and their embeddings averaged. Sampling draws from a generator seeded with
`seed` on every call, so the same image and seed give the same depth.
"""

from __future__ import annotations

import dataclasses

from depthart_core.model import SamplingConfig

SAMPLING_SETTINGS: dict[str, SamplingConfig] = {
    "greedy": SamplingConfig(),
    "paper": SamplingConfig(greedy=False, temperature=1.0, top_k=900, top_p=0.9, n_samples=5),
}


def sampling_setting(name: str, seed: int = 0) -> SamplingConfig:
    """The named setting with `seed` (ignored by `greedy`)."""
    if name not in SAMPLING_SETTINGS:
        raise ValueError(
            f"unknown sampling setting {name!r}; choose one of {list(SAMPLING_SETTINGS)}"
        )
    return dataclasses.replace(SAMPLING_SETTINGS[name], seed=int(seed))


def describe_sampling(s: SamplingConfig) -> str:
    """`greedy`, `paper (seed N)` or the explicit numbers of a custom setting."""
    if s.greedy:
        return "greedy"
    for name, ref in SAMPLING_SETTINGS.items():
        if dataclasses.replace(ref, seed=s.seed) == s:
            return f"{name} (seed {s.seed})"
    return (
        f"sampled (T={s.temperature:g}, top-k {s.top_k}, top-p {s.top_p:g}, "
        f"{s.n_samples} samples, seed {s.seed})"
    )


def require_greedy(s: SamplingConfig | None, where: str) -> None:
    """Exported graphs compute argmax only: refuse a sampling setting instead of ignoring it."""
    if s is not None and not s.greedy:
        raise ValueError(
            f"{where} runs the exported greedy (argmax) graph and cannot sample; sampling "
            f"{describe_sampling(s)!r} needs the torch backend"
        )
