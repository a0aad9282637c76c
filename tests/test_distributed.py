"""Data parallelism under torchrun (2 CPU processes, gloo): ssgan.distributed, the data-parallel
victim trainer and the sharded evaluation. Each torchrun launch costs a few seconds."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import ssgan
from conftest import train_tiny_victim
from dist_worker import TINY_DDP, EvalClips, evaluate_targeted_clips, train_data
from ssgan import distributed
from ssgan.attacks import make_attack
from ssgan.errors import CheckpointError
from ssgan.evaluation import evaluate_attack, read_records
from ssgan.io import load_checkpoint
from ssgan.models.registry import build_model
from ssgan.training import parallel
from ssgan.training.victim import epoch_batches, lr_at, make_batch, train_victim

# every test here launches processes (torchrun or spawned ranks): the slow tier
pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("dist_worker.py")
SRC = str(Path(ssgan.__file__).resolve().parents[1])


def torchrun(*args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    """``torchrun --nproc-per-node 2 dist_worker.py ARGS`` on free local ports."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([SRC, str(WORKER.parent), env.get("PYTHONPATH", "")])
    env[distributed.TIMEOUT_ENV] = "30"
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += ["--max-restarts", "0", str(WORKER), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)


def torchrun_ssgan(*args: str, timeout_s: float = 300.0) -> subprocess.CompletedProcess[str]:
    """``torchrun --nproc-per-node 2 -m ssgan ARGS``: the command line itself, 2 processes."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([SRC, env.get("PYTHONPATH", "")])
    env[distributed.TIMEOUT_ENV] = "60"
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "--max-restarts", "0", "-m", "ssgan", *args]  # fmt: skip
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)


def _ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]


def _writes(out: Path, rank: int) -> list[str]:
    path = out.parent / f"{out.name}.writes.rank{rank}.json"
    return [w for line in path.read_text().splitlines() for w in json.loads(line)]


def test_helpers_in_a_single_process() -> None:
    assert not distributed.is_active()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert distributed.shard(list(range(5))) == [0, 1, 2, 3, 4]
    assert distributed.shard(list(range(5)), 1, 2) == [1, 3]
    assert distributed.all_gather(7) == [7] and distributed.broadcast(8) == 8
    assert distributed.on_main(lambda: 5) == 5
    with pytest.raises(ValueError, match="rank=2"):
        distributed.shard([1], 2, 2)
    idx = torch.arange(7)
    assert torch.equal(parallel.rank_slice(idx, 1, 2), torch.tensor([1, 3, 5]))  # type: ignore[arg-type]
    assert parallel.rank_slice(idx[:3], 0, 2) is None  # 1 clip a rank: BatchNorm cannot train
    with pytest.raises(distributed.DistributedError, match="not divisible"):
        parallel.check_batch(10, 4)
    assert distributed.rank_seed(0, 0) != distributed.rank_seed(0, 1)


def _reference_weights(epochs: int) -> dict[str, torch.Tensor]:
    """A single process trained on the 2-process run's global batches: each rank's crops from
    its generator, each half forwarded with that rank's dropout stream, the mean of the two
    half-batch losses (DDP's gradient average) and BatchNorm statistics of rank 0's halves."""
    cfg = TINY_DDP
    train, _ = train_data()
    clips, labels = train.waveforms(), train.y
    torch.manual_seed(cfg.seed)
    net = build_model(cfg.model, 4, window=cfg.resolved_window, fc_width=cfg.fc_width)
    net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay, nesterov=cfg.nesterov, fused=True)  # fmt: skip
    order = torch.Generator().manual_seed(cfg.seed)
    crops = [parallel.rank_generator(cfg.seed, r) for r in range(2)]
    rngs = []
    for r in range(2):
        torch.manual_seed(distributed.rank_seed(cfg.seed, r))
        rngs.append(torch.get_rng_state())
    net.train()
    for epoch in range(1, epochs + 1):
        for g in opt.param_groups:
            g["lr"] = lr_at(cfg, epoch)
        for batch in epoch_batches(len(clips), cfg.batch_size, order):
            opt.zero_grad()
            buffers = {k: v.clone() for k, v in net.named_buffers()}
            for r in (1, 0):
                idx = parallel.rank_slice(batch, r, 2)
                assert idx is not None
                x = make_batch([clips[i] for i in idx.tolist()], cfg.resolved_window, crops[r],
                               gain_db=cfg.gain_db, stretch=cfg.time_stretch)  # fmt: skip
                torch.set_rng_state(rngs[r])
                (F.cross_entropy(net(x), labels[idx]) / 2).backward()
                rngs[r] = torch.get_rng_state()
                if r == 1:  # DDP keeps rank 0's running statistics
                    with torch.no_grad():
                        for k, v in net.named_buffers():
                            v.copy_(buffers[k])
            opt.step()
    return {f"net.{k}": v for k, v in net.state_dict().items()}


def test_two_processes_train_as_one_on_the_same_global_batches_and_resume_exactly(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    _ok(torchrun("train", str(out), "--stop-after", "1"))
    assert load_checkpoint(out, "last")[1]["epoch"] == 1
    _ok(torchrun("train", str(out), "--resume"))
    got = load_file(str(out / "last.safetensors"))
    # One thread as in the workers: with 2 the tiny EnvNet (BatchNorm over 4 mostly padded crops)
    # drifts by ~3e-3 in 4 steps from summation order alone, hiding real differences.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            want = _reference_weights(TINY_DDP.epochs)
    finally:
        torch.set_num_threads(threads)
    assert got.keys() == want.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-4, atol=1e-5, msg=k)
    # rank 0 alone wrote files; one metrics line an epoch
    assert _writes(out, 1) == []
    assert "save_checkpoint:run" in _writes(out, 0)
    lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    assert all(r["test_acc"] is not None for r in lines)
    state = load_checkpoint(out, "last", with_state=True)[2]
    assert state is not None and state["world_size"] == 2 and len(state["ranks"]) == 2
    # another world size is refused, with the reason
    train, test = train_data()
    cfg = dataclasses.replace(TINY_DDP, epochs=3)
    with pytest.raises(CheckpointError, match="different config"):
        train_victim(cfg, train, test, out, resume=True, progress=False)
    with pytest.raises(CheckpointError, match="trained with 2 process"):
        train_victim(TINY_DDP, train, test, out, resume=True, progress=False)


def test_a_dead_rank_fails_the_run_without_hanging(tmp_path: Path) -> None:
    out = tmp_path / "run"
    t0 = time.monotonic()
    # rank 1 dies making its first batch of epoch 2 (2 batches an epoch)
    proc = torchrun("train", str(out), "--die-after-batches", "2", timeout_s=100)
    assert proc.returncode != 0
    assert time.monotonic() - t0 < 100
    cause = proc.stderr[proc.stderr.find("Root Cause") :]
    assert re.search(r"rank\s*:\s*1\b.*\n\s*exitcode\s*:\s*3\b", cause), proc.stderr[-2000:]
    _, meta, state = load_checkpoint(out, "last", with_state=True)
    assert meta["epoch"] == 1 and state is not None


def test_without_the_launcher_the_survivor_says_a_rank_died(tmp_path: Path) -> None:
    """Two processes started by hand (no torchrun agent to stop the survivor): rank 0's own
    collective fails and it exits with a DistributedError naming the likely cause."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    env["PYTHONPATH"] = os.pathsep.join([SRC, str(WORKER.parent), env.get("PYTHONPATH", "")])
    env[distributed.TIMEOUT_ENV] = "20"
    out = tmp_path / "run"
    cmd = [sys.executable, str(WORKER), "train", str(out), "--die-after-batches", "2"]
    procs = [
        subprocess.Popen(
            cmd, env=dict(env, RANK=str(r), LOCAL_RANK=str(r)), stderr=subprocess.PIPE, text=True
        )
        for r in range(2)
    ]
    try:
        errs = [p.communicate(timeout=100)[1] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert procs[1].returncode == 3
    assert procs[0].returncode != 0
    assert re.search(
        r"DistributedError: rank 0 of 2: .* failed; another rank probably died", errs[0]
    )


@pytest.fixture(scope="module")
def victim_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("victim") / "tiny.pt"
    torch.save(train_tiny_victim(seed=0, steps=60).state_dict(), path)
    return path


def test_sharded_evaluation_writes_the_single_process_records(
    tmp_path: Path, victim_file: Path
) -> None:
    from conftest import TinyVictim

    out = tmp_path / "sharded"
    _ok(torchrun("evaluate", str(out), str(victim_file)))
    model = TinyVictim()
    model.load_state_dict(torch.load(victim_file, weights_only=True))
    one = tmp_path / "one"
    attack = make_attack("fgsm", {"eps": "0.5"})
    evaluate_attack(attack, model, EvalClips(), batch_size=2, out_dir=one)
    got, want = read_records(out), read_records(one)
    assert [r["index"] for r in got] == list(range(11))
    for r in got + want:
        r.pop("seconds")
    assert got == want
    assert any(r["success"] for r in want)  # the attack did something to compare
    s_got = json.loads((out / "summary.json").read_text())
    s_want = json.loads((one / "summary.json").read_text())
    for key in ("n", "n_right", "n_success", "acc", "asr", "msnr_db", "lsd_db"):
        assert s_got[key] == s_want[key], key
    assert (out / "report.html").read_bytes().count(b"<audio") == (
        (one / "report.html").read_bytes().count(b"<audio")
    )
    assert _writes(out, 1) == []
    assert len(_writes(out, 0)) >= 3


@pytest.mark.parametrize("target", ["random", "2"])
def test_sharded_targeted_evaluation_writes_the_single_process_records(
    tmp_path: Path, victim_file: Path, target: str
) -> None:
    """Random targets are drawn per clip, not per rank; a fixed class skips its own clips."""
    from conftest import TinyVictim

    out = tmp_path / "sharded"
    _ok(torchrun("evaluate", str(out), str(victim_file), "--target", target))
    model = TinyVictim()
    model.load_state_dict(torch.load(victim_file, weights_only=True))
    one = tmp_path / "one"
    evaluate_targeted_clips(model, target, one)
    got, want = read_records(out), read_records(one)
    skipped = {i for i, y in enumerate(EvalClips().labels()) if str(y) == target}
    assert [r["index"] for r in got] == [i for i in range(11) if i not in skipped]
    for r in got + want:
        r.pop("seconds")
    assert got == want
    assert any(r["success"] for r in want)  # the attack did something to compare
    assert all("transforms" in r and "transfer" in r and "target" in r for r in want)
    s_got = json.loads((out / "summary.json").read_text())
    s_want = json.loads((one / "summary.json").read_text())
    for key in ("n", "n_right", "n_success", "n_success_pcm16", "success_rate", "untargeted_asr",
                "msnr_db", "matrix", "target_mode", "n_skipped", "transforms", "transfer"):  # fmt: skip
        assert s_got[key] == s_want[key], key
    assert s_got["n_skipped"] == len(skipped)
    assert (out / "targeted.md").read_text() == (one / "targeted.md").read_text()
    assert _writes(out, 1) == []
    assert len(_writes(out, 0)) >= 3


def test_commands_without_data_parallelism_refuse_torchrun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ssgan.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 1
    assert "does not run under torchrun" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun with one process: a plain single process
    assert not distributed.launched()


def _reference_gan(victim: torch.nn.Module, epochs: int) -> dict[str, torch.Tensor]:
    """A single process trained on the 2-process GAN run's global batches: the library's own
    D and G steps on each rank's half (that rank's crops and random draws), their gradients
    averaged (DDP's all-reduce), then one optimiser step each, as every rank takes."""
    from dist_worker import TINY_GAN, gan_data
    from ssgan.data.segments import random_crops
    from ssgan.training.gan_steps import crop_batches, d_step, g_step, make_state

    cfg = TINY_GAN
    train, _ = gan_data()
    clips, labels = train.waveforms(), train.labels()
    ref = make_state(cfg)
    order = ref.rng  # the shared stream: seed + 1, as make_state seeds it
    rngs = [parallel.rank_generator(cfg.seed, r) for r in range(2)]
    probe = make_state(cfg)  # computes a rank's gradients; never steps (learning rate 0)
    probe.opt_G = torch.optim.SGD(probe.G.parameters(), lr=0.0)
    probe.opt_D = torch.optim.SGD(probe.D.parameters(), lr=0.0)

    def mean_grads(
        net: torch.nn.Module, ref_net: torch.nn.Module, step: str, xs: list, ys: list
    ) -> None:
        grads = []
        for r in range(2):
            probe.G.load_state_dict(ref.G.state_dict())
            probe.D.load_state_dict(ref.D.state_dict())
            probe.rng = rngs[r]
            if step == "d":
                d_step(probe, xs[r])
            else:
                g_step(probe, xs[r], ys[r], victim)
            grads.append([p.grad.clone() for p in net.parameters()])
        for p, g0, g1 in zip(ref_net.parameters(), *grads, strict=True):
            p.grad = (g0 + g1) / 2

    for _ in range(epochs):
        for batch in crop_batches(len(clips), cfg, order):
            xs, ys = [], []
            for r in range(2):
                idx = parallel.rank_slice(batch, r, 2)
                assert idx is not None
                xs.append(random_crops([clips[i] for i in idx.tolist()], cfg.crop_samples,
                                       generator=rngs[r]))  # fmt: skip
                ys.append(torch.tensor([labels[i] for i in idx.tolist()]))
            mean_grads(probe.D, ref.D, "d", xs, ys)
            ref.opt_D.step()
            mean_grads(probe.G, ref.G, "g", xs, ys)
            ref.opt_G.step()
        ref.sched_G.step()
        ref.sched_D.step()
    return {**{f"G.{k}": v for k, v in ref.G.state_dict().items()},
            **{f"D.{k}": v for k, v in ref.D.state_dict().items()}}  # fmt: skip


def test_two_processes_train_the_gan_as_one_and_resume_exactly(tmp_path: Path) -> None:
    victim = train_tiny_victim(steps=60).eval()
    weights = tmp_path / "victim.pt"
    torch.save(victim.state_dict(), weights)
    out = tmp_path / "gan"
    _ok(torchrun("gan", str(out), str(weights), "--epochs", "1"))
    assert load_checkpoint(out, "last")[1]["epoch"] == 1
    _ok(torchrun("gan", str(out), str(weights), "--resume"))
    got = load_file(str(out / "last.safetensors"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            want = _reference_gan(victim, 2)
    finally:
        torch.set_num_threads(threads)
    assert got.keys() == want.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-4, atol=1e-5, msg=k)
    assert _writes(out, 1) == []  # rank 0 alone writes
    assert "save_run:gan" in _writes(out, 0)
    lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2] and all("val/asr" in r for r in lines)
    state = load_checkpoint(out, "last", with_state=True)[2]
    assert state is not None and state["world_size"] == 2 and len(state["ranks"]) == 2
    # another world size is refused, with the reason
    from dist_worker import TINY_GAN, gan_data
    from ssgan.gan_validation import validate_generator
    from ssgan.training.gan import train_gan

    train, val = gan_data()
    with pytest.raises(CheckpointError, match="trained with 2 process"):
        train_gan(TINY_GAN, victim, train, val, out, resume=True, progress=False,
                  validate=validate_generator)  # fmt: skip


def test_sharded_attack_of_files_writes_what_one_process_writes(tmp_path: Path) -> None:
    import soundfile as sf

    from dist_worker import TINY_GAN, gan_data
    from ssgan.cli import main
    from ssgan.gan_validation import validate_generator
    from ssgan.training.gan import train_gan

    train, val = gan_data()
    victim = train_tiny_victim(steps=30).eval()
    run = tmp_path / "g"
    train_gan(dataclasses.replace(TINY_GAN, epochs=1), victim, train, val, run, progress=False,
              validate=validate_generator)  # fmt: skip
    gen = torch.Generator().manual_seed(3)
    inputs = []
    for i, (rate, n) in enumerate([(16000, 5000), (8000, 3000), (44100, 9000), (16000, 100)]):
        path = tmp_path / "in" / f"clip{i}.wav"
        path.parent.mkdir(exist_ok=True)
        audio = 0.3 * torch.randn(n, generator=gen).numpy() if n > 100 else [0.0] * n
        sf.write(path, audio, rate)  # the last one is silent: an error record, not a stop
        inputs.append(str(path))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank: the same arithmetic, the same files
    try:
        one_process = ["attack", *inputs, "--generator", str(run), "--out", str(tmp_path / "one")]
        assert main(one_process) == 1
    finally:
        torch.set_num_threads(threads)
    proc = torchrun_ssgan(
        "attack", *inputs, "--generator", str(run), "--out", str(tmp_path / "two")
    )
    assert proc.returncode != 0  # the silent file's error counts on every rank
    *one, summary_one = (tmp_path / "one" / "results.jsonl").read_text().splitlines()
    *two, summary_two = (tmp_path / "two" / "results.jsonl").read_text().splitlines()
    assert len(two) == len(inputs) and "error" in json.loads(two[-1])
    assert not list((tmp_path / "two").glob("results.rank*.jsonl"))  # merged by rank 0
    s1, s2 = json.loads(summary_one)["summary"], json.loads(summary_two)["summary"]
    s1.pop("time_s"), s2.pop("time_s")
    assert s1 == s2 and (s2["files"], s2["done"], s2["failed"]) == (4, 3, 1)

    def same(a: str, b: str) -> bool:
        ra, rb = json.loads(a), json.loads(b)
        assert Path(ra.pop("output")).name == Path(rb.pop("output")).name
        ra.pop("time_s"), rb.pop("time_s")
        return ra == rb

    assert all(same(a, b) for a, b in zip(one, two, strict=True))
    # rerun: every rank skips what is done and the silent file alone is tried again
    proc = torchrun_ssgan(
        "attack", *inputs, "--generator", str(run), "--out", str(tmp_path / "two")
    )
    assert proc.returncode != 0 and "4 files: 3 already done (skipped), 1 to attack" in proc.stderr
    *again, summary = (tmp_path / "two" / "results.jsonl").read_text().splitlines()
    assert again[:3] == two[:3] and json.loads(summary)["summary"]["skipped"] == 3
    for i in range(3):
        x1, r1 = sf.read(tmp_path / "one" / f"clip{i}_adv.wav")
        x2, r2 = sf.read(tmp_path / "two" / f"clip{i}_adv.wav")
        assert r1 == r2 and (x1 == x2).all()


def test_reproduce_runs_its_stages_data_parallel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers import TINY_GAN_ARGS, TINY_VICTIM_ARGS

    out = tmp_path / "t2"
    argv = ["reproduce", "table2", "--profile", "smoke", "--root", "bundled", "--out", str(out),
            "--segments", "0.8", *TINY_VICTIM_ARGS, *TINY_GAN_ARGS]  # fmt: skip
    monkeypatch.setenv("SSGAN_CACHE", str(tmp_path / "cache"))
    proc = torchrun_ssgan(*argv)
    _ok(proc)
    assert proc.stderr.count("12 stages, 0 already done") == 1  # rank 0 alone reports
    assert proc.stdout.count("| 0.8 s (ours) |") == 1  # and prints the table
    data = json.loads((out / "table2.json").read_text())
    assert [r["test"]["n"] for r in data["rows"]] == [10] * 5  # the sharded evaluations merged
    state = load_checkpoint(out / "victim", "last", with_state=True)[2]
    assert state is not None and state["world_size"] == 2
    gan_state = load_checkpoint(out / "ssgan_0.8s", "last", with_state=True)[2]
    assert gan_state is not None and gan_state["world_size"] == 2


def test_a_dead_rank_fails_the_gan_run_without_hanging(tmp_path: Path) -> None:
    victim = train_tiny_victim(steps=30).eval()
    weights = tmp_path / "victim.pt"
    torch.save(victim.state_dict(), weights)
    out = tmp_path / "gan"
    t0 = time.monotonic()
    # rank 1 dies making its second batch of epoch 2 (3 batches an epoch)
    proc = torchrun("gan", str(out), str(weights), "--die-after-batches", "4", timeout_s=100)
    assert proc.returncode != 0 and time.monotonic() - t0 < 100
    cause = proc.stderr[proc.stderr.find("Root Cause") :]
    assert re.search(r"rank\s*:\s*1\b.*\n\s*exitcode\s*:\s*3\b", cause), proc.stderr[-2000:]
    _, meta, state = load_checkpoint(out, "last", with_state=True)
    assert meta["epoch"] == 1 and state is not None
