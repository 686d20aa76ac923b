"""Trainer: exact resume, data parallel replicas, configs, non-finite losses, CLI outputs."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from depthart_core.cli import build_parser
from depthart_core.model import DepthART
from depthart_core.training.config import load_train_config
from depthart_core.training.trainer import RESUME_MAY_CHANGE, Trainer, lr_at

ROOT = Path(__file__).resolve().parent.parent
FAST = [
    "batch_size=2",
    "data.val_count=2",
    "log_every=5",
    "val_every=1000",
    "ckpt_every=1000",
    "data.render_size=0",
    "data.pool_size=0",
    "random_tokenizer_ok=true",  # no stage-1 run: quick
]


def _cfg(*extra: str, stage: str = "transformer"):
    name = "tiny_tokenizer.yaml" if stage == "tokenizer" else "tiny_depthart.yaml"
    return load_train_config(ROOT / "training" / "configs" / name, FAST + list(extra))


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "train_state.safetensors"))


def test_resume_is_bitwise_identical(tmp_path):
    straight = Trainer(_cfg("steps=40"), tmp_path / "a")
    straight.fit(progress=False)
    first = Trainer(_cfg("steps=40"), tmp_path / "b")
    first.fit(steps=20, progress=False)
    first.save()
    resumed = Trainer(_cfg("steps=40"), tmp_path / "b", resume=True)
    assert resumed.step == 20
    resumed.fit(progress=False)
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys()
    for k in a:
        if k.startswith(("model.", "opt.")):
            assert torch.equal(a[k], b[k]), k


def test_a_vq_prefix_refuses_a_tokenizer_trained_on_depth_only(tmp_path, tiny_model):
    """The "vq" image prefix tokenizes the RGB image with the init checkpoint's tokenizer: one
    trained with tokenizer_inputs: depth never saw RGB, so stage 2 is refused, saying so; a
    tokenizer trained on both is taken."""
    from depthart_core.checkpoint import save_checkpoint

    assert tiny_model.cfg.transformer.image_prefix == "vq"
    for inputs, refused in (("depth", True), ("both", False)):
        init = save_checkpoint(
            tmp_path / f"{inputs}.safetensors",
            tiny_model,
            {"stage": "tokenizer", "train_config": {"tokenizer_inputs": inputs}},
        )
        cfg = _cfg("steps=1", f"init_checkpoint={init}")
        if refused:
            with pytest.raises(ValueError, match="trained on depth only .*image_prefix=cnn"):
                Trainer(cfg, tmp_path / inputs)
        else:
            Trainer(cfg, tmp_path / inputs)


def test_a_head_asked_for_from_an_init_checkpoint_without_one_is_refused_in_words(tmp_path):
    """model_overrides.uncertainty_width > 0 from an init_checkpoint with no head of its own (a
    fine-tune's from before 2026-12-06, whose copied head is dropped at load): torch's strict
    load listed two dozen missing keys; the refusal now says why and what to set."""
    from depthart_core.checkpoint import save_checkpoint
    from depthart_core.config import get_preset, with_overrides

    cfg = _cfg("steps=1")
    headed = DepthART(with_overrides(get_preset(cfg.preset), {"uncertainty_width": 4}))
    meta = {"train_config": {"init_checkpoint": "/runs/base.safetensors"}}
    init = save_checkpoint(tmp_path / "old_finetune.safetensors", headed, meta)
    sets = (f"init_checkpoint={init}", "init_tokenizer_only=false")
    with pytest.raises(ValueError, match=r"uncertainty_width=4 asks for an uncertainty head, and "
                       r"init_checkpoint .* gives none \(its uncertainty head was copied"
                       r".*set model_overrides.uncertainty_width=0"):  # fmt: skip
        Trainer(_cfg("steps=1", *sets, "model_overrides.uncertainty_width=4"), tmp_path / "a")
    Trainer(_cfg("steps=1", *sets), tmp_path / "b")  # without a head: its weights are taken


def test_resume_takes_every_weight_from_the_run_state(tmp_path, tiny_model):
    """Stage 2 from an init_checkpoint, stopped at step 3; the init file then holds another
    tokenizer (its stage-1 run went on) and later is gone: the resume equals the uninterrupted
    run, its pool latents coming from the run's own tokenizer, not the file's."""
    from depthart_core.checkpoint import save_checkpoint

    init = tmp_path / "init.safetensors"
    save_checkpoint(init, tiny_model)
    sets = ("steps=6", "data.pool_size=16", f"init_checkpoint={init}")
    Trainer(_cfg(*sets), tmp_path / "a").fit(progress=False)
    first = Trainer(_cfg(*sets), tmp_path / "b")
    first.fit(steps=3, progress=False)
    first.save()
    moved_on = DepthART(tiny_model.cfg)
    moved_on.load_state_dict(tiny_model.state_dict())
    with torch.no_grad():
        for t in moved_on.tokenizer.parameters():
            t.add_(0.05)
    save_checkpoint(init, moved_on)
    Trainer(_cfg(*sets), tmp_path / "b", resume=True).fit(progress=False)
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    for k in a:
        if k.startswith(("model.", "opt.")):
            assert torch.equal(a[k], b[k]), k
    init.unlink()
    assert Trainer(_cfg(*sets), tmp_path / "b", resume=True).step == 6  # needs no init file


def test_resume_refuses_other_settings_and_lets_the_length_change(tmp_path, caplog):
    first = Trainer(_cfg("steps=4"), tmp_path / "r")
    first.fit(steps=2, progress=False)
    first.save()
    before = sorted((p.name, p.stat().st_mtime_ns) for p in (tmp_path / "r").iterdir())
    for change, words in (
        ("optim.lr=0.5", "optim.lr 0.001 -> 0.5"),
        ("data.seed=5", "data.seed 0 -> 5"),
    ):
        with pytest.raises(ValueError, match=f"--resume with other settings .*{words}"):
            Trainer(_cfg("steps=4", change), tmp_path / "r", resume=True)
    after = sorted((p.name, p.stat().st_mtime_ns) for p in (tmp_path / "r").iterdir())
    assert after == before  # refused before anything was written
    # a run saved before a setting existed resumes: the setting counts as its default
    from safetensors.torch import save_file

    state = tmp_path / "r" / "train_state.safetensors"
    with safe_open(str(state), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    config = json.loads(meta["config"])
    del config["hflip"], config["data"]["synth"]
    save_file(tensors, str(state), metadata=meta | {"config": json.dumps(config)})
    with pytest.raises(ValueError, match="is at step 2, past the 1 steps this command asks"):
        Trainer(_cfg("steps=1"), tmp_path / "r", resume=True)
    longer = Trainer(_cfg("steps=8", "log_every=1"), tmp_path / "r", resume=True)
    assert "--resume: steps 4 -> 8" in caplog.text and longer.step == 2
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert (saved["steps"], saved["log_every"]) == (8, 1)  # the folder says what now runs


def test_resume_refuses_a_command_that_drops_the_runs_own_overrides(tmp_path):
    """An override the run was started with (model_overrides.*, data.synth.*) and the resuming
    command lacks is a change of settings, not silently the default."""
    for override, key in (
        ("model_overrides.tokenizer.depth_codec=log", "model_overrides.tokenizer.depth_codec"),
        ("data.synth.camera_height=[0.3, 0.4]", "data.synth.camera_height"),
    ):
        run = tmp_path / key
        first = Trainer(_cfg("steps=4", override), run)
        first.fit(steps=1, progress=False)
        first.save()
        with pytest.raises(ValueError, match=f"--resume with other settings .*{key}"):
            Trainer(_cfg("steps=4"), run, resume=True)
        assert Trainer(_cfg("steps=4", override), run, resume=True).step == 1


def test_resume_without_the_state_never_overwrites_a_saved_checkpoint(tmp_path):
    run = tmp_path / "r"
    Trainer(_cfg("steps=2"), run).fit(progress=False)
    (run / "train_state.safetensors").unlink()  # e.g. a copy made without the large state
    before = (run / "checkpoint.safetensors").read_bytes()
    with pytest.raises(ValueError, match="has a checkpoint.safetensors but no train_state"):
        Trainer(_cfg("steps=4"), run, resume=True)
    assert (run / "checkpoint.safetensors").read_bytes() == before


def test_an_epochs_run_decays_over_the_steps_it_runs_and_validates_held_out(tmp_path):
    """`epochs` sizes the run (grad_accum batches a step), and the cosine ends with it, not at
    `steps`; a synthetic_set validates on other frames than its own, and its drop-outs are
    replaced even where the batch stride cycles over the set."""
    from depthart_core.data.synthetic.set import write_synthetic_set
    from depthart_core.training.data import validation_batch

    root = tmp_path / "set"
    write_synthetic_set(root, 8, 1, (64, 64), progress=False)
    data = ["data.source=synthetic_set", f"data.root={root}", "optim.warmup=0", "log_every=1"]
    tr = Trainer(_cfg(*data, "epochs=2", "steps=2", "grad_accum=2"), tmp_path / "e")
    assert tr.planned_steps == 4  # 2 epochs x 4 batches of 2, two batches a step
    tr.fit(progress=False)
    lrs = [r["lr"] for r in tr.history if "lr" in r]
    assert len(lrs) == 4 and lrs[-1] > 0.0 and lrs == sorted(lrs, reverse=True), lrs
    val = validation_batch(tr.cfg.data, 64)
    train_rgb = {bytes(tr.batches.ds[i].rgb.tobytes()) for i in range(8)}
    assert not any(bytes(r.permute(1, 2, 0).numpy().tobytes()) in train_rgb for r in val["rgb"])
    # a whole-set batch: slot j's replacement walk would cycle back to the dropped frame itself
    full = Trainer(_cfg(*data, "steps=1", "batch_size=8"), tmp_path / "f")
    full.batches.dropped.add(int(__import__("numpy").random.default_rng(1).permutation(8)[0]))
    assert full.batches.batch_at(0)["rgb"].shape[0] == 8


def test_tokenizer_stage_trains_and_reports_code_usage(tmp_path):
    tr = Trainer(
        _cfg("steps=6", "val_every=6", "restart_dead_every=3", stage="tokenizer"), tmp_path / "tok"
    )
    metrics = tr.fit(progress=False)
    assert {"rgb_psnr", "abs_rel", "usage", "perplexity"} <= metrics.keys()
    assert len(metrics["usage"]) == len(tr.model.patch_nums)
    assert (tmp_path / "tok" / "progress.png").stat().st_size > 1000
    rows = [json.loads(x) for x in (tmp_path / "tok" / "metrics.jsonl").read_text().splitlines()]
    assert any("restarted_codes" in r for r in rows)
    assert not any(p.requires_grad for p in tr.model.transformer.parameters())


def test_lr_schedules():
    cfg = _cfg(
        "optim.schedule=step",
        "optim.step_size=5000",
        "optim.gamma=0.8",
        "optim.warmup=0",
        "optim.lr=1.0e-4",
    )
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(4999, cfg) == pytest.approx(1e-4)
    assert lr_at(5000, cfg) == pytest.approx(0.8e-4)
    assert lr_at(12000, cfg) == pytest.approx(0.64e-4)


def test_config_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown config key 'optim.lrr'"):
        _cfg("optim.lrr=1")
    with pytest.raises(TypeError, match="batch_size must be an integer"):
        _cfg("batch_size=two")
    with pytest.raises(ValueError, match="mode='magic'"):
        _cfg("mode=magic")
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_train_config(tmp_path / "nope.yaml")
    with pytest.raises(FileNotFoundError, match="train_state"):
        Trainer(_cfg("steps=2"), tmp_path / "empty", resume=True)
    assert not (tmp_path / "empty").exists()  # refused before the folder was made
    # found by probing the CLI (thirty-second session): each named, before any work
    for sets, words in (
        (["ema=1"], "ema must be 0 .off. or a decay in .0, 1., got 1.0"),
        (["ema=-0.5"], "ema must be 0"),
        (["optim.lr=0"], "optim.lr=0.0 is out of range"),
        (["optim.beta2=1"], "optim.beta2=1.0 is out of range"),
        (["steps=5", "steps.x=1"], "--set steps.x: steps was given a value, not keys"),
        (["optim.lr=0.1", "optim=3"], "--set optim: optim was given keys, not a value"),
    ):
        with pytest.raises(ValueError, match=words):
            _cfg(*sets)
    assert _cfg("optim.lr=3e-4").optim.lr == 3e-4  # the --help example (YAML 1.1 reads a str)
    with pytest.raises(ValueError, match="data.render_size=32: .* must be 0 or the model's image"):
        Trainer(_cfg("data.render_size=32", "data.pool_size=64"), tmp_path / "rs")
    assert not (tmp_path / "rs").exists()


def test_set_model_overrides_merge_with_the_config_files(tmp_path):
    """`--set model_overrides.tokenizer.X=...` adds to the file's model_overrides, as every other
    section merges; it used to replace them all (the file's transformer depth was lost)."""
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("preset: tiny\nmodel_overrides:\n  transformer:\n    depth: 3\n")
    cfg = load_train_config(cfg_file, ["model_overrides.tokenizer.depth_codec=log"])
    assert cfg.model_overrides == {"transformer": {"depth": 3}, "tokenizer": {"depth_codec": "log"}}


def test_non_finite_loss_stops_and_keeps_last_checkpoint(tmp_path):
    tr = Trainer(_cfg("steps=4"), tmp_path / "nan")
    tr.fit(steps=2, progress=False)
    tr.save()
    before = (tmp_path / "nan" / "checkpoint.safetensors").read_bytes()
    with torch.no_grad():
        tr.model.transformer.head.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="non-finite loss.*last good checkpoint"):
        tr.fit(progress=False)
    assert (tmp_path / "nan" / "checkpoint.safetensors").read_bytes() == before


def _free_port() -> int:
    """A TCP port nobody holds now: torchrun's rendezvous. A fixed 29500 + pid % 1000 met the
    ports of a ROS domain's participants (7400 + 250 x domain + ...: domains 89-92) that the
    node tests' processes held."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_replicas_stay_identical(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(
        "import sys, torch\n"
        "from depthart_core.training.config import load_train_config\n"
        "from depthart_core.training.trainer import Trainer\n"
        f"cfg = load_train_config({str(ROOT / 'training/configs/tiny_depthart.yaml')!r}, "
        f"{FAST + ['steps=3']!r})\n"
        "tr = Trainer(cfg, sys.argv[1])\n"
        "tr.fit(progress=False)\n"
        "flat = torch.cat([p.detach().flatten() for p in tr.params])\n"
        "torch.save(flat, f'{sys.argv[1]}/rank{tr.rank}.pt')\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port",
        str(_free_port()),
        str(script),
        str(tmp_path),
    ]
    subprocess.run(cmd, check=True, env=env, timeout=300, cwd=ROOT, capture_output=True)
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert torch.equal(r0, r1)
    # and training moved the weights away from the shared initialisation
    torch.manual_seed(0)
    from depthart_core.config import get_preset
    from depthart_core.model import DepthART

    init = torch.cat([p.flatten() for p in DepthART(get_preset("tiny")).transformer.parameters()])
    assert not torch.equal(init, r0)


def test_cli_train_writes_checkpoint_and_plot(tmp_path):
    out = tmp_path / "cli"
    cmd = [
        sys.executable,
        "-m",
        "depthart_core",
        "train",
        "--config",
        str(ROOT / "training/configs/tiny_teacher_forcing.yaml"),
        "--out",
        str(out),
        "--no-progress",
    ] + [a for s in FAST + ["steps=3", "val_every=3"] for a in ("--set", s)]
    subprocess.run(cmd, check=True, timeout=300, cwd=ROOT, capture_output=True)
    assert (out / "checkpoint.safetensors").exists() and (out / "progress.png").exists()
    from depthart_core.checkpoint import read_checkpoint_info

    meta = read_checkpoint_info(out / "checkpoint.safetensors")["metadata"]
    assert meta["mode"] == "teacher_forcing" and meta["steps"] == 3
    assert meta["val_step"] == 3 and "abs_rel" in meta["val_metrics"]  # measured at that step


def test_pool_render_is_the_same_with_worker_processes(tmp_path):
    from depthart_core.training.data import SyntheticPool

    one, two = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    SyntheticPool._render(one, seed=3, size=32, count=20, chunk=8, workers=1)
    SyntheticPool._render(two, seed=3, size=32, count=20, chunk=8, workers=2)
    a, b = load_file(str(one)), load_file(str(two))
    assert a["rgb"].shape == (20, 3, 32, 32)
    for k in ("rgb", "depth", "valid"):
        assert torch.equal(a[k], b[k]), k


def test_synth_overrides_change_the_frames_and_the_pool_name(tmp_path, monkeypatch):
    """data.synth reaches the renderer, is part of the pool's cache name, and a bad key raises."""
    from depthart_core.data.synthetic.render import render_batch
    from depthart_core.training.data import SyntheticBatches, synth_config, synth_tag

    low = {"camera_height": [0.3, 0.4]}
    assert synth_tag({}) == "" and synth_tag(low) != synth_tag({"camera_height": [0.3, 0.5]})
    frames = SyntheticBatches(4, 32, 3, synth=low).batch_at(0)
    expect = render_batch(4, [0, 1, 2], synth_config(32, low))
    assert torch.equal(frames["rgb"], expect["rgb"])
    default = SyntheticBatches(4, 32, 3).batch_at(0)
    assert not torch.equal(frames["depth"], default["depth"])
    with pytest.raises(ValueError, match="camera_hieght"):
        synth_config(32, {"camera_hieght": [0.3, 0.4]})
    monkeypatch.setenv("DEPTHART_CACHE", str(tmp_path))
    cfg = _cfg("steps=1", "data.pool_size=4", "data.synth.camera_height=[0.3, 0.4]")
    from depthart_core.training.data import make_batches

    pool = make_batches(cfg.data, 32, 2)
    assert synth_tag(low) in pool.path.name


def test_pool_latents_are_cached_on_disk_and_reused(tmp_path):
    cfg = _cfg(
        "steps=2",
        "data.pool_size=16",
        f"data.pool_cache={tmp_path / 'pool.safetensors'}",
    )
    first = Trainer(cfg, tmp_path / "a")
    caches = list(tmp_path.glob("pool.latents-*.safetensors"))
    assert len(caches) == 1
    second = Trainer(cfg, tmp_path / "b")
    for x, y in zip(first.latents, second.latents, strict=True):
        assert torch.equal(x, y)
    # a different tokenizer gets its own cache, never the stale one
    with torch.no_grad():
        next(second.model.tokenizer.parameters()).add_(1.0)
    assert torch.equal(second._cache_latents()[0], second.latents[0]) is False
    assert len(list(tmp_path.glob("pool.latents-*.safetensors"))) == 2


def test_two_process_tokenizer_replicas_and_resume_stay_exact(tmp_path):
    """Stage 1 on two ranks: each counted its own batch's code hits and re-seeded dead codes from
    its own latents and RNG, so the codebooks parted. And a two-rank resume gave every rank rank
    0's RNG state: a stage-2 run with Gumbel draws stopped at step 2 and resumed to 4 differed
    from the run that went to 4 at once."""
    tok_cfg = ROOT / "training/configs/tiny_tokenizer.yaml"
    dart_cfg = ROOT / "training/configs/tiny_depthart.yaml"
    pool = ["batch_size=2", "data.val_count=2", "data.pool_size=8", "log_every=1"]
    tok_set = [*pool, "steps=2", "restart_dead_every=1"]
    dart_set = [
        *pool,
        "random_tokenizer_ok=true",
        "last_scale_gumbel=true",
        "optim.schedule=none",
        "ckpt_every=2",
        "val_every=2",
    ]
    script = tmp_path / "ddp.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, torch
            from pathlib import Path
            from depthart_core.training.config import load_train_config
            from depthart_core.training.trainer import Trainer

            def main(out):
                tok = load_train_config({str(tok_cfg)!r}, {tok_set!r})
                tr = Trainer(tok, out / "tok", progress=False)
                tr.fit(progress=False)
                torch.save(tr.model.tokenizer.state_dict(), out / f"tok{{tr.rank}}.pt")
                for name, steps in (("once", [4]), ("resumed", [2, 4])):
                    for i, n in enumerate(steps):
                        cfg = load_train_config({str(dart_cfg)!r}, {dart_set!r} + [f"steps={{n}}"])
                        tr = Trainer(cfg, out / name, resume=i > 0, progress=False)
                        tr.fit(progress=False)
                        torch.distributed.barrier()  # rank 0 has written the state
                    flat = torch.cat([p.detach().flatten() for p in tr.params])
                    torch.save(flat, out / f"{{name}}{{tr.rank}}.pt")

            if __name__ == "__main__":  # the pool renders in spawned processes
                main(Path(sys.argv[1]))
            """
        )
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    port = str(_free_port())
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port",
           port, str(script), str(tmp_path)]  # fmt: skip
    done = subprocess.run(cmd, env=env, timeout=600, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    t0, t1 = torch.load(tmp_path / "tok0.pt"), torch.load(tmp_path / "tok1.pt")
    assert [k for k in t0 if not torch.equal(t0[k], t1[k])] == []
    for name in ("once", "resumed"):
        assert torch.equal(
            torch.load(tmp_path / f"{name}0.pt"), torch.load(tmp_path / f"{name}1.pt")
        )
    assert torch.equal(torch.load(tmp_path / "once0.pt"), torch.load(tmp_path / "resumed0.pt"))


def test_identical_generator_settings_share_one_pool_cache():
    from depthart_core.training.data import synth_tag

    assert synth_tag({"camera_height": [0.6, 1.9]}) == synth_tag(None) == ""  # the defaults
    assert synth_tag({"camera_height": [1, 2]}) == synth_tag({"camera_height": [1.0, 2.0]}) != ""


def test_the_loss_scaler_state_is_saved_and_restored(tmp_path):
    """fp16 on a GPU: a resume restarted the loss scale at 65536, so its first steps overflowed
    and were skipped where the uninterrupted run's were not (checked here with a CPU scaler)."""
    from depthart_core.training.state import restore_train_state, save_train_state

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    scaler.scale(torch.tensor(1.0))
    scaler.update(new_scale=128.0)
    config = {"stage": "transformer", "preset": "tiny", "seed": 0}
    save_train_state(tmp_path, model, opt, None, 3, config, None, scaler)
    fresh = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    cpu = torch.device("cpu")
    assert (
        restore_train_state(tmp_path, model, opt, None, "transformer", "tiny", cpu, scaler=fresh)
        == 3
    )
    assert fresh.get_scale() == 128.0


def test_resume_takes_a_path_setting_spelt_otherwise_as_the_same(tmp_path, monkeypatch, tiny_model):
    """init_checkpoint given relative at the start and absolute on --resume, or absolute at the
    start and relative from another directory, names the same file: the run resumes (the
    comparison was of strings); another file is still refused."""
    from depthart_core.checkpoint import save_checkpoint

    ck = tmp_path / "ck"
    ck.mkdir()
    for name in ("tok.safetensors", "other.safetensors"):
        save_checkpoint(ck / name, tiny_model, {"stage": "tokenizer"})
    monkeypatch.chdir(tmp_path)
    for run, started, resumed in (
        ("rel", "ck/tok.safetensors", str(ck / "tok.safetensors")),
        ("abs", str(ck / "tok.safetensors"), "../ck/./tok.safetensors"),
    ):
        monkeypatch.chdir(tmp_path)
        first = Trainer(_cfg("steps=4", f"init_checkpoint={started}"), tmp_path / run)
        first.fit(steps=1, progress=False)
        first.save()
        monkeypatch.chdir(ck if run == "abs" else tmp_path)
        again = Trainer(_cfg("steps=4", f"init_checkpoint={resumed}"), tmp_path / run, resume=True)
        assert again.step == 1
        with pytest.raises(ValueError, match="--resume with other settings .*init_checkpoint"):
            Trainer(
                _cfg("steps=4", f"init_checkpoint={ck / 'other.safetensors'}"),
                tmp_path / run,
                resume=True,
            )


def test_stage_two_without_tokenizer_weights_is_refused(tmp_path, capsys):
    """It trained on a random, frozen tokenizer (a useless model) and said nothing; the tests
    train so for speed, saying random_tokenizer_ok=true."""
    how = "--set init_checkpoint=<a stage-1 tokenizer checkpoint>"
    for extra in ([], ["var_pth=/weights/var_d16.pth"]):  # var_pth: the transformer's only
        with pytest.raises(ValueError, match="no init_checkpoint") as exc:
            Trainer(_cfg("random_tokenizer_ok=false", *extra), tmp_path / "lib")
        assert how in str(exc.value)
    assert not (tmp_path / "lib").exists()
    from depthart_core.cli import main

    out = tmp_path / "cli"
    argv = ["train", "--config", str(ROOT / "training/configs/tiny_depthart.yaml")]
    argv += ["--out", str(out), "--set", "init_checkpoint=", "--set", "data.pool_size=0"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("depthart train: error: stage transformer ") and how in err, err
    assert err.count("\n") == 1 and not out.exists()
    Trainer(_cfg("steps=1", "random_tokenizer_ok=false", stage="tokenizer"), tmp_path / "tok")


def test_an_out_holding_the_runs_inputs_is_refused(tmp_path):
    """--overwrite moved the user's own data set and init checkpoint aside with the old run."""
    from depthart_core.rundir import RunDirError

    run = tmp_path / "run"
    (run / "set").mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    (run / "tok.safetensors").write_bytes(b"weights")
    for setting in (
        ["data.source=synthetic_set", f"data.root={run / 'set'}"],
        ["data.source=synthetic_set", f"data.root={tmp_path}", f"data.val_root={run}"],
        [f"init_checkpoint={run / 'tok.safetensors'}"],
    ):
        for target in (run, tmp_path):  # the folder holding one, or one itself
            with pytest.raises(RunDirError, match=f"--out {target} (holds|is) the input"):
                Trainer(_cfg(*setting), target, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert sorted(p.name for p in run.iterdir()) == ["metrics.jsonl", "set", "tok.safetensors"]


def test_a_frame_file_that_is_not_safetensors_is_one_line(tmp_path, capsys):
    from depthart_core.cli import main

    frames = tmp_path / "frames.bin"
    frames.write_bytes(b"not a safetensors file")
    out = tmp_path / "run"
    argv = ["train", "--config", str(ROOT / "training/configs/tiny_depthart.yaml")]
    argv += ["--out", str(out), "--no-progress"]
    for s in (*FAST, "data.source=frames", f"data.root={frames}"):
        argv += ["--set", s]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"depthart train: error: frame file {frames} is not a readable "), err
    assert err.count("\n") == 1 and not out.exists()


def test_metrics_keep_a_small_learning_rate_and_loss_to_6_significant_digits(tmp_path):
    """A fixed 6 decimals logged a warm-up lr of 1.6e-7 as 0.0."""
    cfg = _cfg("steps=2", "log_every=1", "optim.lr=1.6e-6", "optim.warmup=10")
    Trainer(cfg, tmp_path / "run").fit(progress=False)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in rows if "lr" in r]
    assert lrs == [pytest.approx(1.6e-7, rel=1e-5), pytest.approx(3.2e-7, rel=1e-5)]
    assert all(r["loss"] == float(f"{r['loss']:.6g}") for r in rows if "loss" in r)
    assert all(isinstance(r["tokens"], int) for r in rows if "tokens" in r)  # a count stays one


def test_a_depth_only_tokenizer_reports_no_rgb_psnr(tmp_path):
    """A tokenizer trained with tokenizer_inputs: depth never reconstructs RGB: no rgb_psnr."""
    cfg = _cfg("steps=2", "val_every=2", "tokenizer_inputs=depth", stage="tokenizer")
    metrics = Trainer(cfg, tmp_path / "tok").fit(progress=False)
    assert "rgb_psnr" not in metrics and {"abs_rel", "usage", "perplexity"} <= metrics.keys()
    rows = [json.loads(x) for x in (tmp_path / "tok" / "metrics.jsonl").read_text().splitlines()]
    assert [r["val"].keys() == metrics.keys() for r in rows if "val" in r] == [True]


def test_resume_keeps_the_last_validation(tmp_path):
    """A checkpoint saved after --resume, before the next validation, carries the run's last
    one (as an uninterrupted run's does), and fit() on a finished run returns it."""
    run = tmp_path / "run"
    first = Trainer(_cfg("steps=4", "val_every=2"), run)
    measured = first.fit(steps=2, progress=False)
    assert first.last_val_step == 2 and "abs_rel" in measured
    resumed = Trainer(_cfg("steps=4", "val_every=2"), run, resume=True)
    assert (resumed.last_val, resumed.last_val_step) == (measured, 2)
    resumed.save()
    from depthart_core.checkpoint import read_checkpoint_info

    meta = read_checkpoint_info(run / "checkpoint.safetensors")["metadata"]
    assert meta["val_step"] == 2 and meta["val_metrics"] == measured
    assert resumed.fit(steps=2, progress=False) == measured  # nothing left to run


def test_no_progress_prints_a_plain_line_now_and_then(tmp_path, capsys, monkeypatch):
    """With the bar off a batch job's log still gets the step, loss, lr, speed and time left (at
    most every PROGRESS_LINE_S) and each validation but the last (`done:` reports that one)."""
    from depthart_core.training import trainer as trainer_mod

    cfg = _cfg("steps=4", "log_every=2", "val_every=2")
    Trainer(cfg, tmp_path / "quiet").fit(progress=False)  # a short run: under 30 s, no line
    assert "step 2/4" not in capsys.readouterr().err
    monkeypatch.setattr(trainer_mod, "PROGRESS_LINE_S", 0.0)
    Trainer(cfg, tmp_path / "a").fit(progress=False)
    err = capsys.readouterr().err.splitlines()
    steps = [line for line in err if line.startswith("step ")]
    assert [line.split(",")[0] for line in steps] == ["step 2/4 (50 %)", "step 4/4 (100 %)"]
    assert " loss " in steps[0] and ", lr " in steps[0] and "steps/s, ETA " in steps[0]
    vals = [line for line in err if line.startswith("validation at step")]
    assert len(vals) == 1 and vals[0].startswith("validation at step 2: abs_rel=")
    Trainer(cfg, tmp_path / "bar").fit(progress=True)  # the bar says it instead
    assert "validation at step" not in capsys.readouterr().err


def test_next_step_names_the_checkpoint(tmp_path):
    tok = Trainer(_cfg("steps=1", stage="tokenizer"), tmp_path / "tok")
    ckpt = tmp_path / "tok" / "checkpoint.safetensors"
    hint = tok.next_step()
    assert hint == f"next: stage 2 (stage: transformer) with --set init_checkpoint={ckpt}"
    var = Trainer(_cfg("steps=1"), tmp_path / "var")
    ckpt = tmp_path / "var" / "checkpoint.safetensors"
    assert var.next_step() == f"use it: depthart predict IMAGE --checkpoint {ckpt}"


def test_validation_leaves_the_frozen_tokenizer_in_eval_mode(tmp_path):
    """validate() restored the whole model's mode: the stage's frozen tokenizer came back in
    training mode, its dropout then noising every later target (and --resume was no longer
    exact)."""
    drop = "model_overrides.tokenizer.dropout=0.1"
    tok = Trainer(_cfg("steps=1", drop, stage="tokenizer"), tmp_path / "tok")
    tok.fit(progress=False)
    init = f"init_checkpoint={tmp_path / 'tok' / 'checkpoint.safetensors'}"
    run = Trainer(_cfg("steps=3", "val_every=2", drop, init), tmp_path / "run")
    assert not run.model.tokenizer.training and run.model.transformer.training
    run.fit(steps=2, progress=False)
    assert run.last_val_step == 2
    assert not any(m.training for m in run.model.tokenizer.modules())
    assert run.model.transformer.training  # the half that trains goes on training


def test_an_init_checkpoint_of_another_codec_is_named_without_false_sizes(
    tiny_checkpoint, tmp_path
):
    """Only the tokenizer's codec differs: the refusal said "a different tokenizer/image size"
    and printed two identical sizes; it names the tokenizer, and the hint names the codec."""
    from depthart_core.training.config import TrainConfig
    from depthart_core.training.trainer import Trainer

    other = {"tokenizer": {"depth_codec": "log"}}  # the tiny preset's is linear
    cfg = TrainConfig(preset="tiny", stage="transformer", device="cpu",
                      init_checkpoint=tiny_checkpoint, model_overrides=other)  # fmt: skip
    with pytest.raises(ValueError) as exc:
        Trainer(cfg, tmp_path / "run", progress=False)
    msg = str(exc.value)
    assert "has a different tokenizer than preset 'tiny'" in msg, msg
    assert "image_size" not in msg, msg  # the sizes are the same: not printed
    assert "--set model_overrides.tokenizer.depth_codec=linear" in msg, msg


def test_train_help_names_every_setting_a_resume_may_change():
    """`depthart train --help` said device but not precision could change on --resume, which
    the trainer allows: the help is checked against the trainer's own list."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    train = sub.choices["train"]
    help_text = " ".join(next(a for a in train._actions if a.dest == "set").help.split())
    listed = help_text.split("with --resume only ")[1].split(" may differ")[0]
    assert set(listed.replace(" and ", ", ").split(", ")) == set(RESUME_MAY_CHANGE)
