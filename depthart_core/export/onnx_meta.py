"""What an exported graph's readers need, without torch: its metadata stamps (`META_*`), the
name of the uncertainty output, reading a graph's header (`read_onnx_header`) and pruning its
outputs (`keep_outputs`). The ONNX cache and the ONNX Runtime backend run a cached graph with
these alone; the export itself (`onnx_export`, which re-exports every name here) needs torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from depthart_core.checkpoint_file import CheckpointFile, read_checkpoint_info, resolve_checkpoint

if TYPE_CHECKING:
    import onnx

META_SHA = "depthart_checkpoint_sha256"
META_PRECISION = "depthart_precision"
META_IMAGE_SIZE = "depthart_image_size"
META_DECODING = "depthart_decoding"
META_UNCERTAINTY = "depthart_uncertainty"
UNCERTAINTY_HEAD = "head"  # META_UNCERTAINTY of a graph with the "uncertainty" output
META_EXPORTER = "depthart_exporter"
# what a program feeding the graph itself needs (README "Using the graph in your own code")
META_INPUT = "depthart_input"
META_OUTPUTS = "depthart_outputs"
# Raise by one whenever a change in onnx_export.py (or in the modules it traces) alters what an
# exported graph computes: graphs cached by an older exporter are then exported again (onnx_cache).
# 3: a head copied from another checkpoint is left out (copied_head); 4: opset 20 (one Gelu
# node), the constant AdaLN modulation folded into the weights (fold_constant_modulation)
EXPORTER_VERSION = "4"
UNCERTAINTY_OUTPUT = "uncertainty"


def checkpoint_has_head(checkpoint: CheckpointFile | str | Path | None) -> bool:
    """Whether a checkpoint (None: the shipped one) holds the uncertainty head, so that its graph
    gets the "uncertainty" output; read from its config, no weights loaded."""
    if isinstance(checkpoint, CheckpointFile):
        info = checkpoint.info()
    else:
        info = read_checkpoint_info(resolve_checkpoint(checkpoint))
    return int(info["config"].get("uncertainty_width", 0)) > 0


def read_onnx_header(path: str | Path) -> tuple[dict[str, str], tuple[str, ...]]:
    """(metadata, output names) of an ONNX file, read once."""
    import onnx  # optional dependency: the `onnx` extra

    try:
        graph = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and its kin: not an ONNX model
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{path} is not a readable ONNX model ({reason})") from exc
    return {p.key: p.value for p in graph.metadata_props}, tuple(o.name for o in graph.graph.output)


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    return read_onnx_header(path)[0]


def keep_outputs(model: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """A copy of `model` with only the outputs `names` and the nodes and initializers they depend
    on: ONNX Runtime computes every node of a graph whatever outputs a call asks for, so a
    depth-only session runs this pruned graph (the head's nodes removed)."""
    import onnx  # optional dependency: the `onnx` extra

    known = [o.name for o in model.graph.output]
    missing = [n for n in names if n not in known]
    if missing:
        raise ValueError(f"ONNX graph has no output(s) {missing}; its outputs are {known}")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    kept_outputs = [o for o in g.output if o.name in names]
    needed, kept_nodes = set(names), []
    for node in reversed(g.node):  # nodes are topologically sorted: walk back from the outputs
        if any(o in needed for o in node.output):
            kept_nodes.append(node)
            needed.update(i for i in node.input if i)
            for attr in node.attribute:  # names a subgraph reads from the enclosing scope
                for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                    needed.update(i for n in sub.node for i in n.input if i)
    kept_inits = [t for t in g.initializer if t.name in needed]
    del g.output[:], g.node[:], g.initializer[:]
    g.output.extend(kept_outputs)
    g.node.extend(reversed(kept_nodes))
    g.initializer.extend(kept_inits)
    return out
