"""`depthart bench`: per-stage figures, end to end, and the peer ratio."""

from __future__ import annotations

import json

import pytest

from depthart_core.cli import main
from depthart_core.runtime.bench import peer_input_size

# bench sets the process's thread counts (`set_torch_threads`): later tests get theirs back
pytestmark = pytest.mark.usefixtures("restore_thread_counts")


def test_bench_torch_stages_and_peer(tmp_path, capsys):
    out = tmp_path / "b.json"
    rc = main(
        [
            "bench",
            "--preset",
            "tiny",
            "--backend",
            "torch",
            "--size",
            "48x64",
            "--runs",
            "3",
            "--warmup",
            "1",
            "--peer-short-side",
            "56",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    res = json.loads(out.read_text())
    stages = res["stages"]
    assert {"preprocess", "encode", "ar_loop", "decode", "postprocess", "end_to_end"} <= set(stages)
    parts = sum(
        stages[k]["median_ms"] for k in ("preprocess", "encode", "ar_loop", "decode", "postprocess")
    )
    assert parts <= stages["end_to_end"]["p90_ms"] * 1.5
    assert res["peer"]["parameters"] == 24_785_089  # Depth Anything V2-Small
    assert res["speedup_vs_peer"] > 0
    assert "faster" in capsys.readouterr().out or res["speedup_vs_peer"] < 1


def test_bench_onnxruntime_has_a_model_stage(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("DEPTHART_CACHE", str(tmp_path))
    out = tmp_path / "o.json"
    assert (
        main(
            [
                "bench",
                "--preset",
                "tiny",
                "--backend",
                "onnxruntime",
                "--runs",
                "2",
                "--warmup",
                "1",
                "--no-peer",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    assert "model" in json.loads(out.read_text())["stages"]


def test_peer_input_size_follows_depth_anything_preprocessing():
    assert peer_input_size(480, 640) == (518, 686)
    assert peer_input_size(480, 640, short=252) == (252, 336)


def test_bench_rejects_bad_size(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--preset", "tiny", "--size", "640by480"])
    assert "HxW" in capsys.readouterr().err


def test_bench_preset_overrides_change_the_architecture(tmp_path, capsys):
    """--set reshapes a preset before timing it; the parameter counts show that it took."""

    def params(extra: list[str]) -> dict:
        out = tmp_path / f"p{len(extra)}.json"
        args = ["bench", "--preset", "tiny", "--backend", "torch", "--size", "48x64"]
        args += ["--runs", "1", "--warmup", "0", "--no-peer", "--json", str(out), *extra]
        assert main(args) == 0
        return json.loads(out.read_text())

    plain = params([])
    wide = params(["--set", "transformer.width=128", "--set", "transformer.depth=3"])
    assert wide["parameters"]["transformer"] > 2 * plain["parameters"]["transformer"]
    assert wide["parameters"]["tokenizer"] == plain["parameters"]["tokenizer"]
    assert wide["model"] == "tiny transformer.width=128 transformer.depth=3"
    bigger = params(["--set", "image_size=128", "--set", "tokenizer.patch_nums=[1,2,4,8,16]"])
    assert bigger["model_input"] == 128


def test_bench_preset_override_errors_name_the_value():
    with pytest.raises(SystemExit, match="image_size=100"):
        main(["bench", "--preset", "tiny", "--set", "image_size=100", "--no-peer"])
    with pytest.raises(SystemExit, match="needs --preset"):
        main(["bench", "--set", "transformer.depth=3", "--no-peer"])


def test_bench_times_the_decoding_the_backend_predicts_with(tiny_checkpoint, monkeypatch):
    """The torch stages run the backend's own sampling (soft here), not a default greedy one:
    bench must time what `predict` runs."""
    import numpy as np

    from depthart_core.model import DepthART
    from depthart_core.runtime import get_backend
    from depthart_core.runtime.bench import time_backend
    from depthart_core.sampling import sampling_setting

    seen = []
    original = DepthART.generate_from_prefix

    def noting(self, img, sampling, *a, **kw):
        seen.append(sampling)
        return original(self, img, sampling, *a, **kw)

    monkeypatch.setattr(DepthART, "generate_from_prefix", noting)
    for name in ("soft", "greedy"):
        backend = get_backend("torch", tiny_checkpoint, sampling=sampling_setting(name, 0))
        seen.clear()
        backend.predict(np.zeros((24, 32, 3), np.uint8))
        predicted = list(seen)
        seen.clear()
        time_backend(backend, np.zeros((24, 32, 3), np.uint8), runs=1, warmup=0)
        assert seen == predicted and len(seen) == 1, (name, seen, predicted)


def test_the_peer_runs_under_the_same_load_and_threads(tmp_path, monkeypatch):
    """The Depth Anything peer is timed with DepthART's thread count and inside the busy-core
    block, so `speedup_vs_peer` compares like with like; RSS after the runs is reported beside
    the process peak."""
    import contextlib

    import torch

    from depthart_core.runtime import bench, cpu_load

    busy = {"now": False}

    @contextlib.contextmanager
    def fake_busy(n):
        busy["now"] = True
        yield [0] if n else []
        busy["now"] = False

    seen = {}

    def fake_peer(rgb, device, runs, warmup, short=518):
        seen.update(threads=torch.get_num_threads(), busy=busy["now"])
        stage = {"median_ms": 10.0, "p90_ms": 11.0}
        return {"name": "peer", "input": [14, 14], "stages": {"end_to_end": stage}, "fps": 100.0}

    monkeypatch.setattr(cpu_load, "busy_cores", fake_busy)
    monkeypatch.setattr(bench, "time_peer", fake_peer)
    torch.set_num_threads(2)  # put back by `restore_thread_counts`, as what bench sets is
    out = tmp_path / "b.json"
    argv = ["bench", "--preset", "tiny", "--backend", "onnxruntime", "--threads", "1"]
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("DEPTHART_CACHE", str(tmp_path))
    argv += ["--busy-cores", "1", "--runs", "2", "--warmup", "1", "--json", str(out)]
    assert main(argv) == 0
    assert seen == {"threads": 1, "busy": True}
    res = json.loads(out.read_text())
    assert res["rss_mb"] > 0 and res["peak_rss_mb"] > 0  # two kernel counters: no order


def test_bench_preset_leaves_no_weights_behind_and_names_the_file_it_read(
    tmp_path, monkeypatch, tiny_checkpoint
):
    """--preset saved its random weights into a fresh /tmp folder on every run (1.7 GB for d16)
    and kept them; and the JSON said 'default checkpoint' for $DEPTHART_CHECKPOINT's file."""
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    args = ["bench", "--backend", "torch", "--size", "32x32", "--runs", "1", "--warmup", "0"]
    assert main([*args, "--preset", "tiny", "--no-peer"]) == 0
    assert list((tmp_path / "tmp").iterdir()) == []
    monkeypatch.setenv("DEPTHART_CHECKPOINT", tiny_checkpoint)
    out = tmp_path / "env.json"
    assert main([*args, "--no-peer", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["model"] == tiny_checkpoint


def test_bf16_on_onnxruntime_is_refused_not_timed_as_fp32(tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("DEPTHART_CACHE", str(tmp_path))
    args = ["bench", "--preset", "tiny", "--size", "32x32", "--runs", "1", "--warmup", "0"]
    assert main([*args, "--backend", "onnxruntime", "--precision", "bf16", "--no-peer"]) == 1
    assert "ONNX Runtime precision must be fp32 or fp16, got 'bf16'" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*bf16*"))  # no graph exported under that name
    out = tmp_path / "auto.json"  # auto skips to torch, which has bf16
    assert (
        main([*args, "--backend", "auto", "--precision", "bf16", "--no-peer", "--json", str(out)])
        == 0
    )
    assert json.loads(out.read_text())["backend"].startswith("torch (bf16")


def test_a_failed_json_write_keeps_the_earlier_file_and_names_it(tmp_path, monkeypatch, capsys):
    """--json FILE whose write fails (here: past the process's file size limit, as `ulimit -f`
    sets) leaves an earlier FILE whole and says which file; a bad path is refused before the
    benchmark runs."""
    import resource
    import signal

    from depthart_core.runtime import bench as runtime_bench

    out = tmp_path / "b.json"
    earlier = json.dumps({"earlier": "x" * 2000}).encode()
    out.write_bytes(earlier)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    peak = runtime_bench.peak_rss_mb

    def then_limit_files() -> float:  # the last call before the JSON is written
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, limits[1]))
        return peak()

    monkeypatch.setattr(runtime_bench, "peak_rss_mb", then_limit_files)
    xfsz = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of the signal
    args = ["bench", "--preset", "tiny", "--backend", "torch", "--size", "32x32", "--runs", "1"]
    try:
        assert main([*args, "--warmup", "0", "--no-peer", "--json", str(out)]) == 1
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, xfsz)
    err = capsys.readouterr().err
    assert f"cannot write {out}: file too large for the file system" in err, err
    assert out.read_bytes() == earlier
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json"]
    monkeypatch.undo()
    (tmp_path / "file").write_text("x")
    timed = []
    monkeypatch.setattr(runtime_bench, "time_backend", lambda *a, **k: timed.append(a))
    assert main([*args, "--no-peer", "--json", str(tmp_path / "file" / "b.json")]) == 1
    assert f"cannot write {tmp_path / 'file' / 'b.json'}" in capsys.readouterr().err
    assert timed == []  # refused before the benchmark
