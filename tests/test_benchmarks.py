"""Smoke test of the scripts of benchmarks/ and research/: each runs with --quick (or tiny
settings) on tiny models and writes its JSON.

The tiny runs (EnvNet with its shortest window and 16-wide FC layers, one epoch; a GAN of two
steps) are trained once for the module by ``benchmarks/common.ensure_runs``; each script is then
run in-process through its ``main(argv)``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
RESEARCH = ROOT / "research"  # experiments and GPU sessions, tested here beside the benchmarks
VICTIM_SET = ["window=5294", "fc_width=16", "epochs=1"]
GAN_SET = ["epochs=1", "steps_per_epoch=2", "val_clips=2", "victim_crops=1"]

pytestmark = pytest.mark.slow


def _load(name: str, folder: Path = BENCH):
    """The script ``folder/name.py`` as a module, with its folder on ``sys.path`` (as when run)."""
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", folder / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    common = _load("common")
    work = tmp_path_factory.mktemp("bench_runs")
    v_dir, g_dir = common.ensure_runs(None, None, work=work, victim_set=VICTIM_SET, gan_set=GAN_SET)
    assert (v_dir / "best.json").is_file() and g_dir is not None
    return v_dir, g_dir


def _run(name: str, runs, tmp_path, extra=()) -> dict:
    v_dir, g_dir = runs
    out = tmp_path / f"{name}.json"
    threads = torch.get_num_threads()
    argv = ["--quick", "--victim", str(v_dir), "--out", str(out), *extra]
    if name != "step_anatomy":
        argv += ["--generator", str(g_dir)]
    assert _load(name).main(argv) == 0
    assert torch.get_num_threads() == threads  # thread settings restored
    payload = json.loads(out.read_text())
    machine = payload["machine"]
    for key in ("cpu_model", "cores_usable", "torch", "torch_threads", "date"):
        assert machine[key] not in (None, "")
    assert payload["quick"] is True
    return payload


def test_attack_cost(runs, tmp_path, capsys):
    payload = _run("attack_cost", runs, tmp_path, ["--only", "ssgan,fgsm,pgd-long,uap"])
    names = [r["attack"] for r in payload["rows"]]
    assert names == ["ssgan", "fgsm", "pgd-3", "uap"]
    for r in payload["rows"]:
        assert r["seconds_per_clip"] > 0 and r["n"] == 1
    ratio = payload["target"]["ratio_pgd_long_over_ssgan"]
    by = {r["attack"]: r for r in payload["rows"]}
    assert ratio == pytest.approx(by["pgd-3"]["seconds_per_clip"] / by["ssgan"]["seconds_per_clip"])
    assert "cost ratio" in capsys.readouterr().out


def test_throughput(runs, tmp_path):
    payload = _run("throughput", runs, tmp_path, ["--thread-counts", "1"])
    modes = {r["mode"] for r in payload["rows"]}
    assert modes == {"batch", "single", "long"}
    for r in payload["rows"]:
        audio_s = r["clips"] * r["clip_seconds"]
        assert r["x_realtime"] == pytest.approx(audio_s / r["seconds"])
    assert payload["best_batch_x_realtime"] == max(
        r["x_realtime"] for r in payload["rows"] if r["mode"] == "batch"
    )


def test_step_anatomy(runs, tmp_path):
    payload = _run("step_anatomy", runs, tmp_path)
    for step in ("gan_step", "victim_step"):
        res = payload[step]
        assert res["sum_of_parts_s"] == pytest.approx(sum(res["parts_s"].values()))
        assert res["whole_step_s"] > 0 and res["step_gflop"] > 0
    assert "G step: victim bwd" in payload["gan_step"]["parts_s"]
    assert {r["part"] for r in payload["micro"]} >= {"conv2 fwd fp32", "conv2 fwd+bwd fp32"}


def test_epoch_anatomy_under_both_allocators(tmp_path):
    out = tmp_path / "epoch_anatomy.json"
    assert _load("epoch_anatomy").main(["--quick", "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["quick"] is True
    system, kept = payload["results"]["system"], payload["results"]["kept"]
    assert system["allocator"] == "glibc defaults"
    assert kept["allocator"]["M_MMAP_MAX"] == 0  # the children really ran different allocators
    for res in (system, kept):
        parts = res["parts"]
        training = ("data + augmentation", "forward", "loss", "backward", "optimiser (fused SGD)")
        assert res["sum_training_parts_s"] == pytest.approx(
            sum(parts[k]["wall_s"] for k in training)
        )
        assert parts["evaluation (10 crops, test fold)"]["wall_s"] > 0
        assert res["whole"]["training_epoch_s"] > 0 and 0 <= res["sys_share_of_run"] < 1
        assert res["checkpoint_bytes"]["last.state.pt"] > 0
        assert "G step: victim bwd" in res["gan_step"]["parts_s"]


def test_layout_before_is_the_legacy_nchw_path(tmp_path):
    layout = _load("layout")
    from ssgan.models.generators import build_generator
    from ssgan.models.generators.spec import GeneratorSpec

    # The first conv's output layout is inherited by every layer after it.
    seen: list[tuple[int, ...]] = []
    model = build_generator(GeneratorSpec())
    model.net[0].register_forward_hook(lambda _m, _i, out: seen.append(out.stride()))
    with torch.no_grad():
        with layout.legacy_layout():
            model(torch.randn(1, 4000))
        model(torch.randn(1, 4000))
    assert seen[0][1] != 1 and seen[1][1] == 1  # before: NCHW; after: channels_last

    out = tmp_path / "layout.json"
    threads = torch.get_num_threads()
    assert layout.main(["--quick", "--out", str(out)]) == 0
    assert torch.get_num_threads() == threads
    payload = json.loads(out.read_text())
    assert payload["quick"] is True
    cases = {r["case"] for r in payload["rows"]}
    assert {"generator fp32", "envnet step", "victim 10-crop grad"} <= cases
    for r in payload["rows"]:
        assert r["speedup"] == pytest.approx(r["before_s"] / r["after_s"])


def test_envnetv2_window(tmp_path):
    out = tmp_path / "window.json"
    assert _load("envnetv2_window").main(["--quick", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["window"] for r in rows] == [24_180, 66_650]
    assert rows[1]["fc_input"] > rows[0]["fc_input"]
    assert rows[0]["train_x"] == 1.0


def test_profile_victim_step(capsys):
    assert _load("profile_victim_step").main(["--quick", "--rows", "5"]) == 0
    out = capsys.readouterr().out
    assert "EnvNet training step, batch 2" in out and "Self CPU time total" in out


def _quick_json(name: str, argv: list[str]) -> dict:
    threads = torch.get_num_threads()
    assert _load(name).main(["--quick", *argv]) == 0
    assert torch.get_num_threads() == threads  # thread settings restored
    payload = json.loads(Path(argv[argv.index("--out") + 1]).read_text())
    assert payload["quick"] is True and payload["machine"]["torch"] == torch.__version__
    return payload


def _eager_rows(payload: dict) -> list[dict]:
    rows = payload["rows"]
    assert [r["precision"] for r in rows] == ["fp32"]  # --quick: no bf16 (a second compilation)
    audio_s = payload["segments"] * 1.6
    for r in rows:
        assert 0 < r["eager_s"] < math.inf
        assert r["eager_x_realtime"] == pytest.approx(audio_s / r["eager_s"])
    return rows


def test_compile_generator(tmp_path):
    """Eager G against ``torch.compile``d G; where this machine cannot compile, the JSON says
    so and the eager figures still hold. Compiled, G computes what it computes eagerly."""
    out = tmp_path / "compile.json"
    payload = _quick_json("compile_generator", ["--threads", "1", "--out", str(out)])
    assert payload["segments"] == 2 and payload["repeats"] == 1
    for r in _eager_rows(payload):
        if payload["compiled"]:
            assert payload["compile_error"] is None and payload["compile_seconds"] > 0
            assert 0 < r["compiled_s"] < math.inf
            assert r["speedup"] == pytest.approx(r["eager_s"] / r["compiled_s"])
            assert r["max_abs_diff"] <= 1e-6  # G's output is ~1e-2; float32 reordering ~1e-10
        else:
            assert payload["compile_error"] and "compiled_s" not in r


def test_compile_generator_without_a_compiler(tmp_path, monkeypatch):
    def fail(model, *args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch, "compile", fail)
    out = tmp_path / "compile.json"
    payload = _quick_json("compile_generator", ["--threads", "1", "--out", str(out)])
    assert payload["compiled"] is False and payload["compile_seconds"] is None
    assert payload["compile_error"] == "RuntimeError: no C++ compiler"
    for r in _eager_rows(payload):
        assert "compiled_s" not in r and "speedup" not in r
    with pytest.raises(RuntimeError, match="no C\\+\\+ compiler"):  # only --quick skips it
        _load("compile_generator").main(["--segments", "1", "--repeats", "1"])


def test_ddp_throughput_one_process_and_torchrun(tmp_path):
    """Both settings append their row to the same JSON lines: one process (in-process, victim
    and GAN) and torchrun with 2 gloo processes (victim); crops per second from the epochs
    after the warm-up."""
    import os
    import subprocess

    import ssgan

    out = tmp_path / "ddp.jsonl"
    ddp = _load("ddp_throughput")
    threads = torch.get_num_threads()
    for what in ("victim", "gan"):
        assert ddp.main(["--quick", "--threads", "1", "--what", what, "--out", str(out)]) == 0
    assert torch.get_num_threads() == threads
    env = dict(os.environ, OMP_NUM_THREADS="1", SSGAN_DIST_TIMEOUT_S="30")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(ssgan.__file__).resolve().parents[1]), env.get("PYTHONPATH", "")]
    )
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "--max-restarts", "0", str(BENCH / "ddp_throughput.py"), "--quick", "--threads", "1",
           "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["what"], r["processes"]) for r in rows] == [("victim", 1), ("gan", 1), ("victim", 2)]
    for r in rows:
        assert r["quick"] is True and r["machine"]["torch"] == torch.__version__
        assert (r["global_batch"], r["fc_width"], r["window"]) == (4, 16, 5294)
        assert len(r["epoch_seconds"]) == 1  # 2 epochs, the first one not counted
        assert all(0 < s < math.inf for s in r["epoch_seconds"])
        steps = 8 // 4 if r["what"] == "victim" else 2  # 8 clips of batch 4; 2 G steps
        assert r["crops_per_second"] == pytest.approx(steps * 4 / r["epoch_seconds"][0])


def test_memory_attack_short_file(tmp_path):
    """``ssgan attack`` on a 15-second file with a generator of the smallest training: it writes
    the whole file, and its peak RSS is below the 1 GB the script's target allows for one hour."""
    out = tmp_path / "memory.json"
    payload = _quick_json("memory_attack", ["--work", str(tmp_path / "work"), "--out", str(out)])
    (row,) = payload["rows"]
    assert row["minutes"] == 0.25 and row["input_seconds"] == pytest.approx(15.0)
    assert row["output_seconds"] == pytest.approx(row["input_seconds"])
    assert 0 < row["peak_rss_mib"] < payload["target_peak_rss_mib"] == 1024
    assert row["realtime_factor"] == pytest.approx(row["input_seconds"] / row["wall_s"])
    assert (tmp_path / "work" / "quick_gan" / "best.json").is_file()  # trained the quick G


def test_gpu_session_schedule_on_cpu(tmp_path):
    """The prepared GPU script's schedule, on a CPU with tiny models: the victim is re-sized to
    its share of the budget, a generator still training at the deadline is stopped and resumed
    with the epochs it reached (so its evaluations run), and the results come back packed."""
    import tarfile

    gpu_session = _load("gpu_session", RESEARCH)
    work, out = tmp_path / "work", tmp_path / "out"
    rc = gpu_session.main(
        [
            "--data", str(Path(__file__).resolve().parent.parent / "src/ssgan/bundled"),
            "--work", str(work), "--out", str(out), "--device", "cpu", "--profile", "smoke",
            "--budget", "360", "--segments", "1.6", "--threads", "1", "--probe-epochs", "2",
            "--victim-epochs", "1000", "--victim-set", "window=5294",
            "--victim-set", "fc_width=16", "--gan-set", "epochs=1000", "--gan-set", "val_clips=2",
            "--no-smoke", "--victim-share", "0.1", "--gan-share", "0.2", "--eval-share", "0.95",
            "--cost-early", "--cost-clips", "1",
        ]
    )  # fmt: skip
    assert rc == 0
    events = {e["event"]: e for e in json.loads((out / "session.json").read_text())}
    assert events["victim resized"]["epochs"] < 1000
    assert events["victim done"]["epochs"] == events["victim resized"]["epochs"]
    stopped = events["generator stopped at the deadline"]
    assert 1 <= stopped["epochs"] < 1000
    gan_meta = json.loads((work / "t2" / "ssgan_1.6s" / "last.json").read_text())
    assert gan_meta["epoch"] == stopped["epochs"]
    assert (work / "t2" / "ssgan_1.6s_test" / "summary.json").is_file()
    with tarfile.open(out / "results.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"t2/table2.md", "t2/victim/metrics.jsonl", "attack_cost.json"} <= names
    assert not any(n.endswith(".safetensors") for n in names)


def test_gpu_issues_schedule_on_cpu(tmp_path):
    """The issues-16/17 GPU script's schedule on a CPU with tiny models: the victims sized to
    their share, the generators stopped at their deadline, then the transfer matrices, noise and
    targeted evaluations on the victims and generators trained here, and the results packed."""
    import tarfile

    gpu_issues = _load("gpu_issues", RESEARCH)
    work, out = tmp_path / "work", tmp_path / "out"
    rc = gpu_issues.main(
        [
            "--data", str(Path(__file__).resolve().parent.parent / "src/ssgan/bundled"),
            "--work", str(work), "--out", str(out), "--device", "cpu", "--profile", "smoke",
            "--budget", "240", "--threads", "1", "--probe-epochs", "2", "--models",
            "envnet,logmel", "--victim-epochs", "1000", "--victim-set", "window=5294",
            "--victim-set", "fc_width=16", "--gan-epochs", "1000", "--gan-steps", "2",
            "--gan-set", "val_clips=2", "--victim-share", "0.0833", "--gan-share", "0.1875",
            "--robustness-methods", "",
        ]
    )  # fmt: skip
    assert rc == 0
    events = json.loads((out / "session.json").read_text())
    done = {e["model"]: e for e in events if e["event"] == "victim done"}
    assert set(done) == {"envnet", "logmel"}
    assert all(e["epochs"] < 1000 for e in done.values())  # resized to the share
    stopped = {e["run"] for e in events if e["event"] == "generator stopped at the deadline"}
    assert {"gan_envnet", "gan_logmel", "gan_targeted"} <= stopped
    for attack in ("ssgan", "pgd", "cw"):
        matrix = json.loads((work / f"transfer_{attack}" / "transfer.json").read_text())
        assert attack in json.dumps(matrix)
    assert (work / "targeted_ssgan_random" / "summary.json").is_file()
    assert (work / "noise_logmel" / "summary.json").is_file()
    with tarfile.open(out / "results.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"transfer_cw/transfer.md", "victim_envnet/metrics.jsonl"} <= names
    assert not any(n.endswith(".safetensors") for n in names)


def test_a_stopping_session_starts_no_defence_job(tmp_path):
    """Once the session ends (``finish`` sets ``stopping``), the defence thread starts nothing
    more and ``start`` refuses, so no job outlives the session."""
    from types import SimpleNamespace

    gpu_defence = _load("gpu_defence", RESEARCH)
    gpu_session = _load("gpu_session", RESEARCH)
    args = SimpleNamespace(
        profile="paper", defence_gan_epochs=10, gan_set=[], victim_set=[], eval_batch=40,
        device="cpu", defence_parallel=3, budget=60.0, threads=1, work=tmp_path, out=tmp_path / "o",
    )  # fmt: skip
    s = gpu_session.Session(args)
    s.victim_dir = lambda model: tmp_path / f"victim_{model}"
    s.data = lambda: []
    s.ssgan = lambda *argv: [sys.executable, "-c", "pass"]
    s.stopping.set()
    gpu_defence.run_defence(s, until=50.0)
    s.start("late", [sys.executable, "-c", "pass"])
    assert s.procs == {} and s.now() < 10
    assert s.events[-1] == {**s.events[-1], "event": "not started: the session is ending",
                            "name": "late"}  # fmt: skip


def test_gpu_issues_merges_robustness_rows(tmp_path):
    """The robustness processes' rows (one process per attack) end in one table: every row
    whose evaluation finished is copied beside the others and written, no other."""
    from types import SimpleNamespace

    gpu_issues = _load("gpu_issues", RESEARCH)
    specs = ["mp3:kbps=128", "resample:rate_hz=8000"]

    def summary(folder: Path, asr: float) -> None:
        folder.mkdir(parents=True)
        after = {t: {"asr": asr / 2, "acc": 0.5} for t in specs}
        (folder / "summary.json").write_text(
            json.dumps({"asr": asr, "msnr_db": 30.0, "acc": 0.8, "n": 80, "transforms": after})
        )

    summary(tmp_path / "rob_ssgan" / "ssgan_1.6s_test", 0.2)
    summary(tmp_path / "rob_cw" / "cw_test", 0.9)
    summary(tmp_path / "rob_ssgan-eot" / "ssgan_1.6s_eot_test", 0.3)
    (tmp_path / "rob_pgd" / "pgd_test").mkdir(parents=True)  # still being evaluated
    s = gpu_issues.Issues.__new__(gpu_issues.Issues)
    s.args, s.work, s.events = SimpleNamespace(device="cpu"), tmp_path, []
    s.note = lambda what, **fields: s.events.append({"event": what, **fields})
    gpu_issues.merge_robustness(s)
    assert s.events[-1] == {"event": "robustness table", "rows": ["ssgan", "ssgan-eot", "cw"]}
    table = (tmp_path / "robustness" / "robustness.md").read_text()
    assert "SSGAN + EOT" in table and "C&W" in table and "PGD" not in table
    assert "| 30.0 | 15.0 | 15.0 |" in table  # SSGAN + EOT: 30 % untransformed, 15 after each
    assert (tmp_path / "robustness" / "cw_test" / "summary.json").is_file()


def test_loss_balance(runs, tmp_path, capsys):
    v_dir, _ = runs
    out = tmp_path / "loss_balance.json"
    rc = _load("loss_balance", RESEARCH).main(
        ["--victim", str(v_dir), "--root", "bundled", "--quick", "--out", str(out)]
    )
    assert rc == 0
    row = json.loads(out.read_text())["rows"][0]
    assert row["amplitude"] == 0.01 and row["pert_pull"] == 1.0
    # the L2 term's gradient on delta has length beta whatever delta is; the victim's is finite
    assert row["victim_pull_median"] > 0 and -1.0 <= row["g_param_cosine"] <= 1.0
    assert row["g_param_pull_pert"] > 0
    assert "loss balance on" in capsys.readouterr().out


def test_frontier(runs, tmp_path):
    v_dir, g_dir = runs
    out = tmp_path / "frontier.json"
    argv = ["--victim", str(v_dir), "--generator", str(g_dir), "--root", "bundled",
            "--clips", "2", "--pgd-steps", "1", "--out", str(out)]  # fmt: skip
    assert _load("frontier", RESEARCH).main(argv) == 0
    result = json.loads(out.read_text())
    assert result["snr_db"] == [20.0, 25.0, 30.0, 35.0, 40.0]
    # The bundled ESC-10 fold 5 (the test split) holds one clip of each class, and the module's
    # one-epoch victim gives (nearly) the same class to every clip, so it gets at least one
    # right: the frontier always has a clip to attack (no ASR is a 0 / 0).
    assert result["clips"] == 10 and 1 <= result["clips_right"] <= 2
    assert result["snr_conventions"] == ["true", "box"]  # both, each under its own key
    n = result["clips_right"]
    for key in ("asr", "asr_box"):
        assert set(result[key]) == {"noise", "ssgan", "fgm", "pgd1"}
        for vs in result[key].values():
            assert len(vs) == 5 and all(0.0 <= v <= 1.0 for v in vs)
            assert all(v * n == pytest.approx(round(v * n)) for v in vs)  # fooled clips / n
        # One PGD step inside the s dB ball, projected onto it, is the FGM direction at exactly
        # s dB; and a victim gradient fools at least as often as noise at the loudest SNR.
        assert result[key]["pgd1"] == result[key]["fgm"]
        assert result[key]["pgd1"][0] >= result[key]["noise"][0]
    assert out.with_suffix(".png").stat().st_size > 0
    md = out.with_suffix(".md").read_text()
    assert "| attack | 20 dB (true) |" in md and "| attack | 20 dB (box, [16]) |" in md
    page = out.with_suffix(".html").read_text()
    assert "data:image/png;base64," in page and "<td>noise</td>" in page
    assert "20 dB (box, [16])" in page


def test_paper_budget_rows_resume_and_refuse_other_settings(runs, tmp_path, capsys):
    v_dir, g_dir = runs
    out = tmp_path / "budget"
    argv = ["--victim", str(v_dir), "--generator", str(g_dir), "--root", "bundled", "--snr", "20",
            "--pgd-steps", "2", "--cw-steps", "3", "--out", str(out)]  # fmt: skip
    paper_budget = _load("paper_budget", RESEARCH)
    assert paper_budget.main(argv) == 0
    results = json.loads((out / "paper_budget.json").read_text())
    assert list(results) == ["ssgan", "noise", "fgm", "pgd2", "cw3x1"]
    for name in ("noise", "fgm", "pgd2", "cw3x1"):
        row = results[name]
        records = [json.loads(line) for line in (out / name / "records.jsonl").open()]
        assert len(records) == 10 and row["n_right"] == sum(r["correct"] for r in records)
        # Every example of a row with a budget is within it (C&W's louder ones scaled down;
        # None: a clip returned unperturbed, an infinite SNR).
        snrs = [r["snr_box_db"] for r in records if r["correct"]]
        assert all(s is None or s >= 20.0 - 1e-3 for s in snrs)
        groups = row["by_sibling"]  # fold 5 shares no recording with folds 1-4
        assert groups["with sibling"]["right"] == 0 and groups["without"]["right"] == row["n_right"]
    assert "| cw3x1 |" in capsys.readouterr().out
    # A second run reads the rows back; other settings in the same folder are refused.
    before = (out / "cw3x1" / "records.jsonl").stat().st_mtime_ns
    assert paper_budget.main(argv) == 0
    assert (out / "cw3x1" / "records.jsonl").stat().st_mtime_ns == before
    with pytest.raises(SystemExit, match="other settings"):
        paper_budget.main([*argv[:-2], "--cw-steps", "4", "--out", str(out)])


def test_recipe_sweep(runs, tmp_path):
    v_dir, _ = runs
    out = tmp_path / "sweep.json"
    argv = ["--victim", str(v_dir), "--root", "bundled", "--steps", "2", "--eval-every", "1",
            "--variants", "snr30", "--work", str(tmp_path / "work"), "--out", str(out)]  # fmt: skip
    assert _load("recipe_sweep", RESEARCH).main(argv) == 0
    (row,) = json.loads(out.read_text())
    assert row["variant"] == "snr30" and row["steps"] == 2
    assert "--set g_output=snr" in row["command"]
    for asked in ("snr_db=30", "steps_per_epoch=1", "epochs=2"):  # 2 steps, validated after each
        assert f"--set {asked} " in row["command"] + " "
    assert 0.0 <= row["quietest_val"]["asr"] <= 1.0
    assert 0.0 <= row["fgm_val_asr"] <= 1.0 and 0.0 <= row["noise_val_asr"] <= 1.0
    # The row is the run's record: its curve has one validation per step, the best and last
    # ASRs are read from it, and the run trained and validated at the SNR asked for.
    curve = dict(row["val_curve"])
    assert list(curve) == [1, 2]
    assert row["val_asr"] == curve[row["best_epoch"]] and row["last_val_asr"] == curve[2]
    run = tmp_path / "work" / "snr30"
    config = json.loads((run / "config.json").read_text())
    assert (config["g_output"], config["snr_db"], config["steps_per_epoch"]) == ("snr", 30.0, 1)
    metrics = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines() if s]
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert all(m["val/snr_db"] == pytest.approx(30.0, abs=0.5) for m in metrics)
    assert "| snr30 | 2 |" in out.with_suffix(".md").read_text()


def test_defence_table_robust_accuracy_and_a_mismatched_victim(tmp_path, capsys):
    def summary(name: str, acc: float, asr: float, msnr: float | None) -> str:
        folder = tmp_path / name
        folder.mkdir()
        data = {"acc": acc, "asr": asr, "msnr_db": msnr, "n": 80, "n_right": round(80 * acc),
                "n_success": round(80 * acc * asr)}  # fmt: skip
        (folder / "summary.json").write_text(json.dumps(data))
        return str(folder)

    a = summary("a", 0.75, 0.2, 30.0)
    b = summary("b", 0.75, 0.0, None)
    c = summary("c", 0.5, 0.5, 31.0)
    out = tmp_path / "t.json"
    defence = _load("defence_table", RESEARCH)
    argv = ["--out", str(out), "--eval", "V", "G", a, "--eval", "V", "PGD", b]
    assert defence.main(argv) == 0
    rows = json.loads(out.read_text())
    assert rows["V"]["G"]["robust_acc"] == pytest.approx(0.6)
    assert rows["V"]["PGD"]["robust_acc"] == pytest.approx(0.75)
    assert "20.0 % / 30.0 dB / 60.0 %" in out.with_suffix(".md").read_text()
    assert defence.main([*argv, "--eval", "V", "C&W", c]) == 2
    assert "clean ACC 0.5 differs" in capsys.readouterr().err
    # a victim that gets no clip right: ASR undefined, robust accuracy 0
    none = tmp_path / "none"
    none.mkdir()
    (none / "summary.json").write_text(json.dumps(
        {"acc": 0.0, "asr": None, "msnr_db": None, "n": 80, "n_right": 0, "n_success": 0}))  # fmt: skip
    assert defence.main(["--out", str(out), "--eval", "W", "G", str(none)]) == 0
    assert json.loads(out.read_text())["W"]["G"]["robust_acc"] == 0.0
    assert "| W | 0.0 % | – / – / 0.0 % |" in out.with_suffix(".md").read_text()


def test_gpu_defence_runs_jobs_in_dependency_order_and_skips_what_a_failure_blocks(tmp_path):
    """The defence phase's scheduler with stand-in commands: every command is a real ``ssgan``
    command line (it parses), jobs start only after what they need succeeded, a failed
    fine-tune skips its evaluations and re-trained generator, and the table gets the cells
    that finished."""
    from types import SimpleNamespace

    from ssgan.cli import build_parser

    gpu_defence = _load("gpu_defence", RESEARCH)
    gpu_session = _load("gpu_session", RESEARCH)
    args = SimpleNamespace(
        profile="paper", defence_gan_epochs=10, gan_set=[], victim_set=[], eval_batch=40,
        device="cpu", defence_parallel=3, budget=60.0, threads=1,
    )  # fmt: skip
    s = gpu_session.Session.__new__(gpu_session.Session)
    gpu_session.Session.__init__(
        s, SimpleNamespace(**vars(args), work=tmp_path, out=tmp_path / "o")
    )
    s.victim_dir = lambda model: tmp_path / f"victim_{model}"
    s.data = lambda: ["--dataset", "esc10", "--root", "R", "--split", "fold:5"]
    s.ssgan = lambda *argv: list(argv)
    todo, cells = gpu_defence.jobs(s)
    for job in todo.values():
        build_parser().parse_args(job.cmd)  # exits on an unknown flag
    assert len(cells) == 4 * 5 and len(todo) == 1 + 3 + 3 + 4 * 4 + 3

    order: list[str] = []

    def fake(*argv: str) -> list[str]:
        out = Path(argv[argv.index("--out") + 1])
        if out.name == "victim_pgd":  # this fine-tune fails
            return [sys.executable, "-c", "raise SystemExit(3)"]
        summary = {
            "acc": 0.8,
            "asr": 0.25,
            "msnr_db": 30.0,
            "n": 80,
            "n_right": 64,
            "n_success": 16,
        }
        code = (f"import json, pathlib; p = pathlib.Path({str(out)!r}); p.mkdir(parents=True); "
                f"(p / 'summary.json').write_text({json.dumps(summary)!r})")  # fmt: skip
        return [sys.executable, "-c", code]

    s.ssgan = fake
    real_start = s.start
    s.start = lambda name, cmd: (order.append(name), real_start(name, cmd))
    gpu_defence.run_defence(s, until=50.0)
    assert s.now() < 40  # it ended when every job had, not at the deadline
    assert order.index("def_gan_fixed") < order.index("def_victim_ssgan")
    assert order.index("def_victim_clean") < order.index("def_gan_vs_clean")
    assert order.index("def_gan_vs_clean") < order.index("def_eval_clean_ssgan_retrained")
    assert not [n for n in order if n.startswith(("def_eval_pgd", "def_gan_vs_pgd"))]
    skipped = {e["name"] for e in s.events if e["event"] == "defence job skipped"}
    assert skipped == {n for n in todo if n.startswith(("def_eval_pgd", "def_gan_vs_pgd"))}
    rows = json.loads((tmp_path / "defence" / "defence.json").read_text())
    assert set(rows) == {"EnvNet (this session)", "+ clean fine-tune (control)",
                         "+ SSGAN-crop fine-tune"}  # fmt: skip
    assert len(rows["+ clean fine-tune (control)"]) == 5
