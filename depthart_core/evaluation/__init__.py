"""Evaluation: masked metrics, alignment, named protocols and the `depthart eval` runner.

    from depthart_core.evaluation import evaluate
    evaluate(pred, gt, valid, protocol="depthart")  # {"abs_rel", "delta1_bad", "mae"}

The runner (`depthart_core.evaluation.runner`) is imported on demand: it builds backends
(`depthart_core.runtime`) and pulls in the model, tqdm and the benchmark readers.
"""

from depthart_core.evaluation.protocols import (
    PROTOCOLS,
    ImageResult,
    Protocol,
    aggregate,
    evaluate,
    evaluate_image,
    get_protocol,
)

__all__ = [
    "PROTOCOLS",
    "ImageResult",
    "Protocol",
    "aggregate",
    "evaluate",
    "evaluate_image",
    "get_protocol",
]
