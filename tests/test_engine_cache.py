"""Engine cache with fake build/deserialize callables: hits, misses, keys, corruption, locking."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import time
from pathlib import Path

import pytest

from depthart_core.runtime.engine_cache import EngineCache, EngineKey, default_cache_dir

KEY = EngineKey("ab" * 32, "fp32", (1, 3, 224, 224), "10.3.0.30", "sm_87")
PLAN = b"PLAN:" + bytes(range(256))


class FakeTRT:
    """Counts builds; 'deserializes' only plans it built itself (like a version tag check)."""

    def __init__(self) -> None:
        self.builds = 0

    def build(self) -> bytes:
        self.builds += 1
        return PLAN

    @staticmethod
    def deserialize(blob: bytes):
        return {"engine": blob} if blob.startswith(b"PLAN:") else None


def test_miss_builds_then_hit_loads(tmp_path) -> None:
    cache, trt = EngineCache(tmp_path), FakeTRT()
    first = cache.get_or_build(KEY, trt.build, trt.deserialize)
    assert first.built and first.engine == {"engine": PLAN} and trt.builds == 1
    assert first.path == tmp_path / "abababababababab_fp32_1x3x224x224_trt10.3.0.30_sm_87.engine"
    assert first.path.read_bytes() == PLAN
    meta = json.loads(cache.sidecar_path(KEY).read_text())
    assert meta["key"] == KEY.to_dict() and meta["key"]["input_shape"] == [1, 3, 224, 224]
    second = EngineCache(tmp_path).get_or_build(KEY, trt.build, trt.deserialize)
    assert not second.built and second.engine == {"engine": PLAN} and trt.builds == 1
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == sorted(
        [first.path.name, cache.sidecar_path(KEY).name]
    )  # no temp files left behind


@pytest.mark.parametrize(
    "field,value",
    [
        ("model_sha256", "cd" * 32),
        ("precision", "fp16"),
        ("input_shape", (1, 3, 256, 256)),
        ("trt_version", "10.15.1.29"),
        ("compute_capability", "sm_90"),
    ],
)
def test_each_key_field_changes_the_engine(tmp_path, field, value) -> None:
    cache, trt = EngineCache(tmp_path), FakeTRT()
    cache.get_or_build(KEY, trt.build, trt.deserialize)
    other = dataclasses.replace(KEY, **{field: value})
    assert cache.engine_path(other) != cache.engine_path(KEY)
    assert cache.get_or_build(other, trt.build, trt.deserialize).built
    assert trt.builds == 2


def test_stale_sidecar_key_triggers_rebuild(tmp_path) -> None:
    cache, trt = EngineCache(tmp_path), FakeTRT()
    cache.get_or_build(KEY, trt.build, trt.deserialize)
    sidecar = cache.sidecar_path(KEY)
    meta = json.loads(sidecar.read_text())
    meta["key"]["trt_version"] = "8.6.1"  # an engine copied in from another install
    sidecar.write_text(json.dumps(meta))
    assert cache.get_or_build(KEY, trt.build, trt.deserialize).built and trt.builds == 2
    assert json.loads(sidecar.read_text())["key"] == KEY.to_dict()


@pytest.mark.parametrize("damage", ["truncate", "garbage_sidecar", "list_sidecar", "no_sidecar"])
def test_damaged_files_trigger_rebuild(tmp_path, damage) -> None:
    cache, trt = EngineCache(tmp_path), FakeTRT()
    path = cache.get_or_build(KEY, trt.build, trt.deserialize).path
    if damage == "truncate":
        path.write_bytes(PLAN[:10])
    elif damage == "garbage_sidecar":
        cache.sidecar_path(KEY).write_text("{not json")
    elif damage == "list_sidecar":  # valid JSON, not an object: it raised AttributeError
        cache.sidecar_path(KEY).write_text("[]")
    else:
        cache.sidecar_path(KEY).unlink()
    result = cache.get_or_build(KEY, trt.build, trt.deserialize)
    assert result.built and result.engine == {"engine": PLAN} and trt.builds == 2
    assert path.read_bytes() == PLAN


@pytest.mark.parametrize("failure", ["returns_none", "raises"])
def test_engine_that_does_not_deserialize_is_rebuilt(tmp_path, failure) -> None:
    """Intact bytes the runtime refuses, e.g. a plan from another TensorRT build."""
    cache, trt = EngineCache(tmp_path), FakeTRT()
    cache.get_or_build(KEY, lambda: b"OLD-PLAN", lambda blob: "accepted by the old runtime")

    def strict(blob: bytes):
        if blob.startswith(b"OLD") and failure == "raises":
            raise RuntimeError("Version tag does not match")
        return FakeTRT.deserialize(blob)

    result = cache.get_or_build(KEY, trt.build, strict)
    assert result.built and result.engine == {"engine": PLAN} and trt.builds == 1
    assert cache.engine_path(KEY).read_bytes() == PLAN


def test_build_that_does_not_deserialize_raises(tmp_path) -> None:
    cache = EngineCache(tmp_path)
    with pytest.raises(RuntimeError, match="freshly built engine"):
        cache.get_or_build(KEY, lambda: b"junk", FakeTRT.deserialize)
    assert not cache.engine_path(KEY).exists()


def _build_in_process(cache_dir: str, log_path: str, out_path: str, barrier) -> None:
    def slow_build() -> bytes:
        with open(log_path, "a") as f:
            f.write("build\n")
        time.sleep(0.5)
        return PLAN

    barrier.wait(timeout=20)  # both look up the cache before either finishes building
    result = EngineCache(cache_dir).get_or_build(KEY, slow_build, FakeTRT.deserialize)
    Path(out_path).write_text(f"{result.built}\n")


def test_two_processes_build_once(tmp_path) -> None:
    ctx = multiprocessing.get_context("fork")
    log_path = tmp_path / "builds.log"
    outs = [tmp_path / f"out{i}" for i in range(2)]
    barrier = ctx.Barrier(2)
    args = [(str(tmp_path / "c"), str(log_path), str(o), barrier) for o in outs]
    procs = [ctx.Process(target=_build_in_process, args=a) for a in args]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert log_path.read_text() == "build\n"
    assert sorted(o.read_text() for o in outs) == ["False\n", "True\n"]


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("model_sha256", "XYZ", "model_sha256"),
        ("precision", "int8", "'int8'"),
        ("input_shape", (1, 3, 0, 224), r"\(1, 3, 0, 224\)"),
        ("trt_version", "10.3 beta", "'10.3 beta'"),
        ("compute_capability", "87", "'87'"),
    ],
)
def test_bad_key_fields_raise_naming_the_value(field, value, match) -> None:
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(KEY, **{field: value})


def test_default_cache_dir_follows_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("DEPTHART_CACHE", raising=False)
    monkeypatch.setenv("DEPTHART_ENGINE_CACHE", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    monkeypatch.delenv("DEPTHART_ENGINE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "depthart" / "engines"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "depthart" / "engines"
    monkeypatch.setenv("DEPTHART_CACHE", str(tmp_path / "root"))  # the one cache root moves too
    assert default_cache_dir() == tmp_path / "root" / "engines"
