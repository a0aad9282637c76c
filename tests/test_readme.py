"""Every ``ssgan`` command the README shows exists, and its options parse (``--help`` runs)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from ssgan.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def _commands() -> list[list[str]]:
    """The README's ``ssgan ...`` lines in code blocks, continuation lines joined."""
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", text, flags=re.S)
    commands = []
    for block in blocks:
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("ssgan "):
                commands.append(shlex.split(line)[1:])
    return commands


def test_the_readme_shows_commands_and_both_make_targets() -> None:
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text
    assert len(_commands()) >= 8


@pytest.mark.parametrize("argv", _commands(), ids=lambda a: " ".join(a[:3]))
def test_readme_command_parses(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    """The sub-command path exists and every option shown is one it knows (argparse would exit
    2 on an unknown one); ``[...]`` optional parts and ``...`` elisions are dropped."""
    words = [w for w in argv if w != "..." and not w.startswith("[") and not w.endswith("]")]
    path = []
    for word in words:
        if word.startswith("-"):
            break
        path.append(word)
    options = {w.split("=", 1)[0] for w in words if w.startswith("--")}
    with pytest.raises(SystemExit) as info:
        main([*path[:2], "--help"])
    assert info.value.code == 0
    usage = capsys.readouterr().out
    for option in options:
        assert option in usage, (argv, option)
