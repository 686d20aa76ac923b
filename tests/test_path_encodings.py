"""Paths whose bytes are not UTF-8 (a Latin-1 folder from an old USB stick or a Samba share:
Python holds 'data_\\xe9t\\xe9' as 'data_\\udce9t\\udce9'), and non-ASCII text under the ASCII
locale (`LC_ALL=C PYTHONUTF8=0`).

OpenCV's imread crashed the process (SIGSEGV) on such a path; torch.onnx.export refused it with
the whole graph in its message; the markdown reports failed to encode it after all the work; and
files read in the locale's encoding failed under the ASCII locale. The cases that crashed run in a
subprocess, so a crash is a failing return code, not a dead test run.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from depthart_core.cli import main

REPO = Path(__file__).resolve().parent.parent


def _odd(parent: Path, raw: bytes) -> Path:
    """`parent / raw` made as a folder, its name not UTF-8; skips where the file system refuses
    such a name (some macOS and Windows file systems)."""
    path = parent / os.fsdecode(raw)
    try:
        path.mkdir()
    except (OSError, UnicodeError) as exc:
        pytest.skip(f"the file system refuses a name that is not UTF-8: {exc}")
    return path


def _run(code: str, *args: str | Path, env: dict | None = None, cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        capture_output=True,
        text=True,
        errors="backslashreplace",
        timeout=120,
        env=env,
        cwd=cwd,
    )


def _ascii_env() -> dict[str, str]:
    return {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0"}


def _ascii_locale_or_skip() -> dict[str, str]:
    env = _ascii_env()
    said = _run("import locale; print(locale.getpreferredencoding(False))", env=env)
    if said.stdout.strip().lower() not in ("ansi_x3.4-1968", "ascii", "us-ascii"):
        pytest.skip(f"LC_ALL=C does not give the ASCII locale here ({said.stdout.strip()})")
    return env


# ------------------------------------------------------------------------------------------------
# OpenCV reads and writes by path: crashed on a name that is not UTF-8


def test_benchmark_readers_decode_files_under_a_latin1_folder(tmp_path):
    """`_io._imread` (every benchmark reader) handed the path to cv2.imread: SIGSEGV."""
    d = _odd(tmp_path, b"data_\xe9t\xe9")
    depth = np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000
    rgb = np.zeros((3, 4, 3), np.uint8)
    rgb[..., 0] = 200  # red
    (d / "depth.png").write_bytes(cv2.imencode(".png", depth)[1].tobytes())
    (d / "rgb.png").write_bytes(cv2.imencode(".png", rgb[:, :, ::-1])[1].tobytes())
    (d / "mask.png").write_bytes(cv2.imencode(".png", (depth > 20000).astype(np.uint8))[1])
    (d / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n but cut short")
    (d / "empty.png").write_bytes(b"")
    done = _run(
        """
        import sys
        from pathlib import Path
        import numpy as np
        from depthart_core.data.benchmarks._io import (
            BadFrameError, read_mask_png, read_png_u16, read_rgb,
        )
        d = Path(sys.argv[1])
        depth = read_png_u16(d / "depth.png")
        assert depth.dtype == np.uint16 and depth.max() == 55000, depth  # 16 bits kept
        rgb = read_rgb(d / "rgb.png")
        assert rgb.shape == (3, 4, 3) and (rgb[..., 0] == 200).all() and rgb[..., 2].max() == 0
        assert read_mask_png(d / "mask.png").sum() == 7
        for name in ("bad.png", "empty.png"):
            try:
                read_rgb(d / name)
            except BadFrameError as exc:
                assert "cannot decode image" in str(exc) and name in str(exc), exc
            else:
                raise AssertionError(name)
        try:
            read_rgb(d / "missing.png")
        except FileNotFoundError as exc:
            assert "image not found" in str(exc), exc
        print("ok")
        """,
        d,
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.strip() == "ok"


def test_eval_scores_a_set_under_a_latin1_folder_and_lists_its_bad_frame(tmp_path):
    """`depthart eval --root data_\\xe9t\\xe9` died with SIGSEGV (rc 139 from a shell); once it
    read the set, report.md (which names a frame that could not be read, with its path) could not
    be encoded: no report.md, exit 1 for the wrong reason."""
    from depthart_core.data.synthetic.set import write_synthetic_set

    root = _odd(tmp_path, b"data_\xe9t\xe9")
    write_synthetic_set(root, count=3, seed=0, size=(32, 48), progress=False)
    rgb = root / "rgb" / "000001.png"
    rgb.write_bytes(rgb.read_bytes()[:100])  # a PNG cut short: listed, not scored
    argv = ["eval", "--baselines-only", "--baseline", "ramp", "--baseline", "constant"]
    argv += ["--dataset", "synthetic", "--root", root.name, "--out", "ev", "--no-progress"]
    cli = "import sys; from depthart_core.cli import main; sys.exit(main(sys.argv[1:]))"
    done = _run(cli, *argv, cwd=tmp_path)
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])  # 1: a frame unread
    assert "1 frame(s) could not be read" in done.stderr
    for md in ("ev/report.md", "ev/baseline_ramp/synthetic/report.md"):
        text = (tmp_path / md).read_text(encoding="utf-8")
        assert "- frame 1: cannot decode image data_\\udce9t\\udce9/rgb/000001.png" in text, md
    report = json.loads(
        (tmp_path / "ev" / "baseline_ramp" / "synthetic" / "report.json").read_text()
    )
    assert report["n_images"] == 2


def test_real_photos_reads_and_writes_images_by_a_latin1_path(tmp_path):
    """training/real_photos.py read the bundled photographs with cv2.imread and wrote its figure
    with cv2.imwrite: both crash on such a path (a virtualenv or --out under one)."""
    d = _odd(tmp_path, b"fig_\xe9")
    done = _run(
        """
        import importlib.util, sys
        from pathlib import Path
        import numpy as np
        spec = importlib.util.spec_from_file_location("real_photos", sys.argv[1])
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        out = Path(sys.argv[2]) / "sub" / "fig.png"
        img = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
        mod.write_image(out, img)
        assert (mod.read_color(out) == img).all()
        try:
            mod.write_image(Path(sys.argv[2]) / "fig", img)
        except ValueError as exc:
            assert "no image format for the suffix ''" in str(exc), exc
        print("ok")
        """,
        REPO / "training" / "real_photos.py",
        d,
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.strip() == "ok"


# ------------------------------------------------------------------------------------------------
# ONNX export: torch's C++ wants a UTF-8 path


def test_export_to_a_latin1_name_writes_the_graph(tiny_checkpoint, tmp_path, capsys):
    """`depthart export --out m_\\xe9.onnx` failed with a 2.5 MB message (the whole graph)."""
    onnx = pytest.importorskip("onnx")
    out = _odd(tmp_path, b"m_\xe9") / "m.onnx"
    assert main(["export", "--checkpoint", tiny_checkpoint, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert len(err) < 2000, err[:500]
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["depthart_precision"] == "fp32" and meta["depthart_decoding"] == "soft"
    assert [p.name for p in out.parent.iterdir()] == ["m.onnx"]  # no temp folder left


def test_onnx_cache_under_a_latin1_folder_exports(tiny_checkpoint, tmp_path, monkeypatch):
    """The ONNX cache under such a DEPTHART_CACHE failed to export on every run."""
    pytest.importorskip("onnx")
    from depthart_core.checkpoint import CheckpointFile
    from depthart_core.export.onnx_export import read_onnx_header
    from depthart_core.runtime.onnx_cache import cached_onnx

    monkeypatch.setenv("DEPTHART_CACHE", str(_odd(tmp_path, b"cache_\xe9t\xe9")))
    path = cached_onnx(CheckpointFile(tiny_checkpoint), "fp32")
    meta, outputs = read_onnx_header(path)
    assert (
        path.is_file() and outputs == ("depth", "tokens") and meta["depthart_precision"] == "fp32"
    )


def test_a_backend_skipped_by_auto_is_logged_in_one_short_line(
    tiny_checkpoint, monkeypatch, caplog
):
    """auto logged a skipped backend's whole error: megabytes where a pybind11 error quoted a
    traced graph, twice (the skip and the final choice)."""
    from depthart_core.runtime import OnnxRuntimeBackend, get_backend

    def huge(*_a, **_k):
        raise TypeError("_export_onnx(): incompatible function arguments\n" + "graph(" * 200_000)

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setattr(OnnxRuntimeBackend, "from_checkpoint", huge)
    with caplog.at_level(logging.INFO, logger="depthart_core.runtime"):
        backend = get_backend("auto", checkpoint=tiny_checkpoint, threads=1)
    assert backend.name == "torch"
    said = [r.getMessage() for r in caplog.records if "onnxruntime" in r.getMessage()]
    assert said and all(len(m) < 1000 for m in said), [len(m) for m in said]
    assert "TypeError: _export_onnx(): incompatible function arguments [...]" in said[0]


# ------------------------------------------------------------------------------------------------
# Markdown reports naming such a path: "surrogates not allowed" after all the work


def test_replay_of_a_bag_under_a_latin1_name_writes_report_md(tiny_checkpoint, tmp_path, capsys):
    bag = _odd(tmp_path, b"bags_\xe9") / "bag"
    assert main(["synth-bag", "--out", str(bag), "--frames", "2", "--size", "24x32"]) == 0
    argv = ["replay", str(bag), "--image-topic", "/camera/image_raw", "--depth-topic"]
    argv += ["/camera/depth", "--checkpoint", tiny_checkpoint, "--backend", "torch"]
    assert main([*argv, "--no-plots", "--no-progress", "--out", str(tmp_path / "o")]) == 0
    md = (tmp_path / "o" / "report.md").read_text(encoding="utf-8")
    assert "- bag: `" in md and "bags_\\udce9/bag`" in md
    assert (tmp_path / "o" / "report.json").is_file()


def test_a_sqlite3_bag_under_a_latin1_folder_replays(tiny_checkpoint, tmp_path, capsys):
    """The sqlite3 reader (rosbags over apsw) takes the path as UTF-8: `depthart replay` of such
    a bag said "cannot read bag ... (truncated or corrupt?): ... surrogates not allowed"."""
    from depthart_core.rosio.bags import BagError, list_topics

    bag = _odd(tmp_path, b"bags_\xe9") / "bag"
    argv = ["synth-bag", "--out", str(bag), "--frames", "2", "--size", "24x32"]
    assert main([*argv, "--format", "sqlite3"]) == 0
    argv = ["replay", str(bag), "--image-topic", "/camera/image_raw", "--depth-topic"]
    argv += ["/camera/depth", "--checkpoint", tiny_checkpoint, "--backend", "torch"]
    rc = main([*argv, "--no-plots", "--no-progress", "--out", str(tmp_path / "o")])
    assert rc == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "o" / "report.json").read_text())["counts"]["frames"] == 2
    assert list_topics(bag / "bag.db3")["/camera/depth"].count == 2  # a file of it, alone
    odd_file = tmp_path / os.fsdecode(b"x_\xe9.db3")  # a name of its own: said, not "corrupt"
    odd_file.write_bytes((bag / "bag.db3").read_bytes())
    with pytest.raises(BagError, match="needs a UTF-8 path.*symlink with an ASCII name") as exc:
        list_topics(odd_file)
    assert "corrupt" not in str(exc.value) and "\n" not in str(exc.value)


def test_finetune_on_a_bag_under_a_latin1_name_writes_report_md(tiny_checkpoint, tmp_path):
    bag = _odd(tmp_path, b"fbag_\xe9") / "bag"
    assert main(["synth-bag", "--out", str(bag), "--frames", "40", "--size", "24x32"]) == 0
    argv = ["finetune", str(bag), "--image-topic", "/camera/image_raw", "--depth-topic"]
    argv += ["/camera/depth", "--checkpoint", tiny_checkpoint, "--steps", "2", "--batch-size", "2"]
    argv += ["--eval-frames", "2", "--threads", "1", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    md = (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    assert "fbag_\\udce9/bag" in md


def test_text_bytes_writes_a_surrogate_as_its_escape():
    from depthart_core.fileutil import text_bytes

    assert text_bytes("bag_\udce9 2 m × 3 m") == "bag_\\udce9 2 m × 3 m".encode()


# ------------------------------------------------------------------------------------------------
# Files read in the locale's encoding: failed under the ASCII locale


@pytest.mark.parametrize(
    ("name", "text", "code", "expected"),
    [
        (
            "train.yaml",
            "# the lab floor: 2 m × 3 m, été\nsteps: 7\n",
            "from depthart_core.training.config import load_train_config as f; "
            "print(f(sys.argv[1]).steps)",
            "7",
        ),
        (
            "calib.json",
            '{"note": "été", "n": 3}',
            "from depthart_core.fileutil import read_json; "
            "print(read_json(sys.argv[1], 'calibration')['n'])",
            "3",
        ),
    ],
    ids=["training_config", "read_json"],
)
def test_non_ascii_text_files_load_under_the_ascii_locale(tmp_path, name, text, code, expected):
    env = _ascii_locale_or_skip()
    doc = tmp_path / name
    doc.write_text(text, encoding="utf-8")
    done = _run(f"import sys; {code}", doc, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == expected


def test_training_config_not_utf8_is_one_line_naming_the_file(tmp_path):
    from depthart_core.training.config import load_train_config

    cfg = tmp_path / "train.yaml"
    cfg.write_bytes(b"# \xe9t\xe9 (Latin-1)\nsteps: 7\n")
    with pytest.raises(ValueError, match=r"training config .*train\.yaml: not UTF-8 text"):
        load_train_config(cfg)


def test_bag_metadata_with_non_ascii_text_under_the_ascii_locale(tmp_path):
    """The bag reader (rosbags) reads metadata.yaml in the locale's encoding, so under the ASCII
    locale a non-ASCII one cannot be read by it: the bag is read from its storage files, and the
    warning says why and what to do (it said "unreadable: 'ascii' codec can't decode")."""
    env = _ascii_locale_or_skip()
    bag = tmp_path / "bag"
    assert main(["synth-bag", "--out", str(bag), "--frames", "2", "--size", "24x32"]) == 0
    with open(bag / "metadata.yaml", "a", encoding="utf-8") as f:
        f.write("# recorded in the 2 m × 3 m lab\n")
    from depthart_core.rosio.bags import list_topics

    assert "/camera/depth" in list_topics(bag)  # the UTF-8 locale: the metadata is used
    done = _run(
        "import logging, sys; logging.basicConfig(level=logging.WARNING); "
        "from depthart_core.rosio.bags import list_topics; print(sorted(list_topics(sys.argv[1])))",
        bag,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "/camera/depth" in done.stdout
    assert "locale's encoding (ascii)" in done.stderr and "LC_ALL=C.UTF-8" in done.stderr


# ------------------------------------------------------------------------------------------------
# safetensors opens a path only as UTF-8 ("Path ... is not valid UTF-8"): checkpoints, run folders


def test_a_checkpoint_under_a_latin1_folder_loads(tiny_checkpoint, tiny_model, tmp_path):
    """`--checkpoint data_\\xe9t\\xe9/tiny.safetensors` was "not a readable safetensors file"."""
    import torch

    from depthart_core.checkpoint import CheckpointFile, load_checkpoint

    path = _odd(tmp_path, b"ckpt_\xe9") / "tiny.safetensors"
    path.write_bytes(Path(tiny_checkpoint).read_bytes())
    model, info = load_checkpoint(path)
    assert info["sha256"] == CheckpointFile(path).sha256
    own = tiny_model.state_dict()
    assert all(torch.equal(v, own[k]) for k, v in model.state_dict().items())


def test_train_into_a_latin1_folder_resumes(tmp_path):
    """`depthart train --out runs_\\xe9/run` trained and saved, but its `--resume` called the
    run's train_state.safetensors damaged and offered `--overwrite` (the run moved aside)."""
    from depthart_core.checkpoint import load_checkpoint
    from depthart_core.training.config import load_train_config
    from depthart_core.training.trainer import Trainer

    fast = ["batch_size=2", "data.val_count=2", "log_every=5", "val_every=1000"]
    fast += ["ckpt_every=1000", "data.render_size=0", "data.pool_size=0"]
    fast += ["random_tokenizer_ok=true"]
    config = REPO / "training" / "configs" / "tiny_depthart.yaml"
    run = _odd(tmp_path, b"runs_\xe9") / "run"
    Trainer(load_train_config(config, [*fast, "steps=2"]), run).fit(progress=False)
    resumed = Trainer(load_train_config(config, [*fast, "steps=3"]), run, resume=True)
    assert resumed.step == 2
    resumed.fit(progress=False)
    assert load_checkpoint(run / "checkpoint.safetensors")[1]["metadata"]["steps"] == 3


def test_finetune_into_a_latin1_folder(tiny_checkpoint, tmp_path):
    """`depthart finetune --out runs_\\xe9/run` stopped at its own frame file: "not a readable
    safetensors file"."""
    from depthart_core.checkpoint import load_checkpoint

    bag = tmp_path / "bag"
    assert main(["synth-bag", "--out", str(bag), "--frames", "40", "--size", "24x32"]) == 0
    run = _odd(tmp_path, b"runs_\xe9") / "run"
    argv = ["finetune", str(bag), "--image-topic", "/camera/image_raw", "--depth-topic"]
    argv += ["/camera/depth", "--checkpoint", tiny_checkpoint, "--steps", "2", "--batch-size", "2"]
    argv += ["--eval-frames", "2", "--threads", "1", "--no-progress", "--out", str(run)]
    assert main(argv) == 0
    assert load_checkpoint(run / "checkpoint.safetensors")[0].cfg.image_size > 0


# ------------------------------------------------------------------------------------------------
# ONNX Runtime and TensorRT's parser take a graph's path as UTF-8


def test_onnx_graphs_under_a_latin1_folder_open_in_onnx_runtime(
    tiny_checkpoint, headed_checkpoint, tmp_path, monkeypatch
):
    """A graph in such a DEPTHART_CACHE or given by such a path (--onnx) was exported, then
    refused by ONNX Runtime's InferenceSession (`auto` went on to torch)."""
    import pickle

    pytest.importorskip("onnxruntime")
    from depthart_core.runtime import OnnxRuntimeBackend, get_backend

    monkeypatch.setenv("DEPTHART_CACHE", str(_odd(tmp_path, b"cache_\xe9t\xe9")))
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    plain = get_backend("auto", checkpoint=tiny_checkpoint, threads=1)
    assert plain.name == "onnxruntime"
    x = np.zeros((1, 3, plain.image_size, plain.image_size), np.float32)
    given = OnnxRuntimeBackend(plain.onnx_path, threads=1)  # a graph given by its path
    np.testing.assert_array_equal(given.run(x), plain.run(x))
    headed = OnnxRuntimeBackend.from_checkpoint(headed_checkpoint, threads=1)  # pruned + whole
    x = np.zeros((1, 3, headed.image_size, headed.image_size), np.float32)
    depth, unc = headed.run_uncertainty(x)
    assert depth.shape == unc.shape == (1, headed.image_size, headed.image_size)
    clone = pickle.loads(pickle.dumps(headed))  # reopened on the graph file
    np.testing.assert_array_equal(clone.run_uncertainty(x)[1], unc)


def test_tensorrt_parses_the_graph_from_its_bytes(tmp_path, monkeypatch):
    """`parse_from_file(str(path))`: TensorRT's binding (pybind11) takes the path as UTF-8 and
    refuses one that is not. A stand-in for TensorRT (not installed here) records what the
    parser is given; its parse fails, so the build stops there."""
    import types

    from depthart_core.runtime import tensorrt_backend

    def as_cpp_string(text: str) -> str:  # pybind11's std::string: UTF-8, or no match
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise TypeError("incompatible function arguments") from None
        return text

    seen = []

    class Parser:
        num_errors = 0

        def __init__(self, network, logger) -> None:
            pass

        def parse_from_file(self, model: str) -> bool:
            seen.append(("file", as_cpp_string(model)))
            return False

        def parse(self, model: bytes, path: str | None = None) -> bool:
            seen.append((bytes(model), None if path is None else as_cpp_string(path)))
            return False

    class Builder:
        def __init__(self, logger) -> None:
            pass

        def create_network(self, flags: int) -> object:
            return object()

    fake = types.SimpleNamespace(
        __version__="10.3.0",
        Builder=Builder,
        OnnxParser=Parser,
        NetworkDefinitionCreationFlag=types.SimpleNamespace(STRONGLY_TYPED=0),
    )
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(tensorrt_backend, "trt_logger", lambda: None)  # its cache: not the fake's
    for folder in (_odd(tmp_path, b"trt_\xe9"), tmp_path):
        graph = folder / "m.onnx"
        graph.write_bytes(b"the graph's bytes")
        with pytest.raises(RuntimeError, match="TensorRT could not parse .*m.onnx"):
            tensorrt_backend.build_serialized_engine(graph, (1, 3, 16, 16), show_progress=False)
    # the path, where it is UTF-8, finds a graph's external weights
    assert seen == [(b"the graph's bytes", None), (b"the graph's bytes", str(tmp_path / "m.onnx"))]


# ------------------------------------------------------------------------------------------------
# export_onnx called directly in a program whose default dtype is float64


def test_export_onnx_under_a_float64_default_dtype_makes_a_graph_onnx_runtime_runs(
    tiny_model, tmp_path
):
    """float64 Resize constants, which ONNX Runtime refuses ("Type 'tensor(double)' of input
    parameter ... of operator (Resize) ... is invalid")."""
    import torch

    ort = pytest.importorskip("onnxruntime")
    from depthart_core.export.onnx_export import export_onnx

    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        path = export_onnx(tiny_model, _odd(tmp_path, b"m_\xe9") / "m.onnx")
        assert torch.get_default_dtype() == torch.float64  # the caller's, left as it was
    finally:
        torch.set_default_dtype(before)
    session = ort.InferenceSession(path.read_bytes(), providers=["CPUExecutionProvider"])
    S = tiny_model.cfg.image_size
    depth = session.run(["depth"], {"image": np.zeros((1, 3, S, S), np.float32)})[0]
    assert depth.shape == (1, S, S) and depth.dtype == np.float32


# ------------------------------------------------------------------------------------------------
# more files read in the locale's encoding


def test_a_dataset_list_and_generator_code_with_non_ascii_text_under_the_ascii_locale(tmp_path):
    """Hypersim's split CSV (a scene's note) and the synthetic generator's code digest (a comment
    in its source) were read in the locale's encoding: under the ASCII locale they failed."""
    from depthart_core.data.synthetic.render import source_digest

    env = _ascii_locale_or_skip()
    split = tmp_path / "split.csv"
    split.write_text(
        "scene_name,camera_name,frame_id,split_partition_name,note\n"
        "ai_001_001,cam_00,3,test,la salle d'\u00e9t\u00e9\n",
        encoding="utf-8",
    )
    code = tmp_path / "code"
    code.mkdir()
    (code / "mod.py").write_text(
        "# a 2 m \u00d7 3 m room\ndef f(x):\n    return 2 * x\n", encoding="utf-8"
    )
    done = _run(
        """
        import sys
        from pathlib import Path
        from depthart_core.data.hypersim import read_split_csv
        from depthart_core.data.synthetic.render import source_digest
        print(read_split_csv(Path(sys.argv[1]), "test"))
        print(source_digest(Path(sys.argv[2])))
        """,
        split,
        code,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["[('ai_001_001', 'cam_00', 3)]", source_digest(code)]
