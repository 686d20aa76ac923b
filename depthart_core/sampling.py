"""Named inference settings for choosing each scale's codes: `greedy`, `soft` and `paper`.

`greedy`: argmax at every token. `soft`: every token adds the probability-weighted mean of the
code embeddings (softmax over all codes, temperature 1): close to the expectation of `paper`'s
sampled mean without the draw, not equal to it, as `paper` draws after its top-k / top-p cut and
soft weighs every code. Both are deterministic and both fit an exported graph (ONNX, TensorRT).
`paper`: the DepthART authors' evaluation (bulatko/DepthART
`DepthART.autoregressive_infer_cfg`): temperature 1, top-k 900, top-p 0.9, five codes sampled per
token with replacement and their embeddings averaged. Each frame draws from its own generator
seeded with `seed` on every call, so the same image and seed give the same depth, whatever else is
in the batch.

`SamplingConfig` lives here, without torch (an exported graph's runtime needs it, not torch);
`depthart_core.model` re-exports it.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """Greedy when `greedy`; `soft`: each token's embedding is the mean of the code embeddings
    weighted by softmax(logits / temperature) within top-k / top-p (no draw); otherwise sample
    `n_samples` codes per token and average their embeddings.

    The released DepthART evaluation uses temperature 1, top-k 900, top-p 0.9 and 5 samples.
    """

    greedy: bool = True
    soft: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.0
    n_samples: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k < 0 or not 0.0 <= self.top_p <= 1.0 or self.n_samples < 1:
            raise ValueError(
                f"bad sampling settings top_k={self.top_k} top_p={self.top_p} "
                f"n_samples={self.n_samples}"
            )
        if self.greedy and self.soft:
            raise ValueError("greedy and soft decoding exclude each other; set greedy=False")

    @property
    def deterministic(self) -> bool:
        """No random draw: the same image always gives the same depth; an exported graph holds
        it (argmax, or softmax @ codebook)."""
        return self.greedy or self.soft


SAMPLING_SETTINGS: dict[str, SamplingConfig] = {
    "greedy": SamplingConfig(),
    "soft": SamplingConfig(greedy=False, soft=True),
    "paper": SamplingConfig(greedy=False, temperature=1.0, top_k=900, top_p=0.9, n_samples=5),
}


# what the CLI's --sampling and the node's `sampling` parameter offer
SAMPLING_NAMES: tuple[str, ...] = tuple(SAMPLING_SETTINGS)

# The decoding of every runtime backend given no `sampling` (get_backend, DepthEstimator,
# OnnxRuntimeBackend, TensorRTBackend), and the default of the CLI's --sampling and the node's
# `sampling`, and of exported graphs (`export_onnx`): the most accurate one measured
# (BENCHMARKS.md 2h). The model's own methods (`DepthART.infer`, `predict`) keep greedy for None.
DEFAULT_DECODING = "soft"


def runtime_sampling(s: SamplingConfig | None) -> SamplingConfig:
    """`s`, or the default decoding when None; a TypeError naming anything else (a setting's
    name is `sampling_setting(name)`)."""
    if s is None:
        return SAMPLING_SETTINGS[DEFAULT_DECODING]
    if not isinstance(s, SamplingConfig):
        hint = f"; for a named one use sampling_setting({s!r})" if isinstance(s, str) else ""
        raise TypeError(f"sampling must be a SamplingConfig or None, got {s!r}{hint}")
    return s


def sampling_setting(name: str, seed: int = 0) -> SamplingConfig:
    """The named setting with `seed` (ignored by the deterministic `greedy` and `soft`)."""
    if name not in SAMPLING_SETTINGS:
        raise ValueError(
            f"unknown sampling setting {name!r}; choose one of {list(SAMPLING_SETTINGS)}"
        )
    return dataclasses.replace(SAMPLING_SETTINGS[name], seed=int(seed))


def describe_sampling(s: SamplingConfig) -> str:
    """`greedy`, `soft`, `paper (seed N)` or the explicit numbers of a custom setting."""
    if s.greedy:
        return "greedy"
    for name, ref in SAMPLING_SETTINGS.items():
        if dataclasses.replace(ref, seed=s.seed) == s:
            return name if s.deterministic else f"{name} (seed {s.seed})"
    if s.soft:
        return f"soft (T={s.temperature:g}, top-k {s.top_k}, top-p {s.top_p:g})"
    return (
        f"sampled (T={s.temperature:g}, top-k {s.top_k}, top-p {s.top_p:g}, "
        f"{s.n_samples} samples, seed {s.seed})"
    )


def require_greedy(s: SamplingConfig | None, where: str) -> None:
    """Exported graphs compute argmax or the soft mean, never a random draw: refuse a sampled
    setting instead of ignoring it."""
    if s is not None and not s.deterministic:
        raise ValueError(
            f"{where} runs an exported (greedy or soft) graph and cannot sample; sampling "
            f"{describe_sampling(s)!r} needs the torch backend"
        )


def graph_decoding(s: SamplingConfig | None) -> str:
    """The decoding an exported graph holds, as stamped in its metadata and its cache name:
    `greedy`, `soft`, or `soft-T<t>-k<k>-p<p>` for another soft setting (None: the default
    decoding). Raises for sampling."""
    require_greedy(s, "an exported graph")
    s = runtime_sampling(s)
    if s.greedy:
        return "greedy"
    if dataclasses.replace(s, seed=0) == SAMPLING_SETTINGS["soft"]:  # soft ignores the seed
        return "soft"
    return f"soft-T{s.temperature:g}-k{s.top_k}-p{s.top_p:g}"
