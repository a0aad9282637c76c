"""``ssgan.io.trim_metrics``: the one metrics trimming both training loops resume with."""

from __future__ import annotations

import json
from pathlib import Path

from ssgan.io import trim_metrics


def test_lines_after_the_checkpoint_and_a_torn_last_line_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"epoch": e, "loss": 1.0 / e}) for e in (1, 2, 3)]
    path.write_text("\n".join(lines) + '\n{"epoch": 4, "lo')  # a crash inside the write
    trim_metrics(path, 2)
    assert [json.loads(x)["epoch"] for x in path.read_text().splitlines()] == [1, 2]


def test_a_complete_file_is_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1}\n{"epoch": 2}\n')
    before = path.stat().st_mtime_ns
    trim_metrics(path, 2)
    assert path.read_text() == '{"epoch": 1}\n{"epoch": 2}\n'
    assert path.stat().st_mtime_ns == before
    trim_metrics(tmp_path / "absent.jsonl", 1)  # no file: nothing to do


def test_the_gan_loop_resumes_past_a_torn_metrics_line(tmp_path: Path, tiny_victim) -> None:
    """The GAN run's own resume path (it used to fail on the torn line with a JSON error)."""
    import dataclasses

    from conftest import synth_batch
    from ssgan.gan_validation import validate_generator
    from ssgan.training.gan import PROFILES, train_gan

    x, y = synth_batch(16, 4000, seed=3)

    train, val = (list(x[2:]), y[2:].tolist()), (list(x[:2]), y[:2].tolist())
    config = dataclasses.replace(
        PROFILES["smoke"], segment_seconds=0.25, epochs=1, steps_per_epoch=1, val_clips=2
    )
    out = tmp_path / "gan"
    train_gan(config, tiny_victim, train, val, out, progress=False, validate=validate_generator)
    metrics = out / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"epoch": 2, "val/a')  # torn: died writing epoch 2
    longer = dataclasses.replace(config, epochs=2)
    train_gan(
        longer, tiny_victim, train, val, out, progress=False, resume=True,
        validate=validate_generator,
    )  # fmt: skip
    epochs = [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()]
    assert epochs == [1, 2]
