"""The HTML report opened in headless Chromium: every image and audio element loads, no errors.

Needs Playwright's Python package (``pip install playwright``; its bundled browsers are NOT
needed) and a Chromium binary: Debian's ``chromium`` package at /usr/bin/chromium, or the path in
``SSGAN_CHROMIUM``. Skipped cleanly when either is missing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from ssgan.paper import table_ii
from ssgan.report import Example, write_report

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _chromium() -> str | None:
    env = os.environ.get("SSGAN_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _example(name: str, success: bool, seed: int) -> Example:
    rng = np.random.default_rng(seed)
    n = 8000  # 0.5 s
    t = np.arange(n) / 16_000
    x = (0.7 * np.sin(2 * np.pi * 330 * t) * np.exp(-3 * t)).astype(np.float32)
    x_adv = np.clip(x + 0.003 * rng.standard_normal(n), -1, 1).astype(np.float32)
    return Example(
        name=name,
        label=0,
        clean_pred=0,
        adv_pred=1 if success else 0,
        success=success,
        snr_db=30.0,
        x=x,
        x_adv=x_adv,
    )


def test_report_loads_in_headless_chromium(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    executable = _chromium()
    if executable is None:
        pytest.skip("no chromium found (apt-get install chromium, or set SSGAN_CHROMIUM)")
    summary = {"attack": "fgsm", "n": 2, "n_right": 2, "n_success": 1, "acc": 1.0, "asr": 0.5,
               "msnr_db": 30.0, "seconds_per_example": 0.01, "device": "cpu"}  # fmt: skip
    _, html = write_report(
        tmp_path,
        summary,
        [{}, {}],
        [_example("hit.wav", True, 0), _example("miss.wav", False, 1)],
        title="browser check",
        paper_rows=[table_ii(1.6, "test")],
    )
    problems: list[str] = []
    with sync_api.sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except Exception as exc:  # a broken local chromium is an environment problem
            pytest.skip(f"chromium at {executable} does not start: {exc}")
        try:
            page = browser.new_page()
            page.on(
                "console",
                lambda msg: (
                    problems.append(f"console {msg.type}: {msg.text}")
                    if msg.type in ("error", "warning")
                    else None
                ),
            )
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}"))
            page.goto(html.resolve().as_uri(), wait_until="load")
            # Audio metadata loads asynchronously after "load"; wait for every element.
            page.wait_for_function(
                "Array.from(document.querySelectorAll('audio'))"
                ".every(a => a.readyState >= 1 || a.error)",
                timeout=20_000,
            )
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight])"
            )
            audios = page.eval_on_selector_all(
                "audio",
                "els => els.map(e => [e.readyState, e.duration, e.error && e.error.message])",
            )
        finally:
            browser.close()
    assert len(images) == 2 and len(audios) == 6
    for complete, width, height in images:
        assert complete and width > 0 and height > 0
    for ready, duration, error in audios:
        assert error is None
        assert ready >= 1 and duration == pytest.approx(0.5, abs=1e-3)
    assert problems == []
