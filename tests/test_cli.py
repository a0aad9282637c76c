"""The ``ssgan`` command table: every sub-command static, one default per shared option."""

from __future__ import annotations

import argparse

import pytest

from ssgan.cli import COMMANDS, build_parser, main


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """``(command path, parser)`` for every runnable (sub-)command."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, child in subs[0].choices.items():
        yield from _leaves(child, (*path, name))


def _option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action | None:
    return next((a for a in parser._actions if flag in a.option_strings), None)


def test_the_command_table_is_static_and_complete() -> None:
    assert [m.__name__.rsplit(".", 1)[1] for m in COMMANDS] == [
        "data", "train", "evaluate", "attack", "reproduce", "demo", "config",
    ]  # fmt: skip
    paths = {" ".join(p) for p, _ in _leaves(build_parser())}
    assert {"attack", "demo", "train victim", "train gan", "evaluate victim",
            "evaluate attack", "reproduce table2", "reproduce table3", "config show"} <= paths  # fmt: skip


def test_evaluate_needs_its_subcommand(capsys: pytest.CaptureFixture) -> None:
    # No argv rewriting: `evaluate --attack` is not silently taken for `evaluate attack`.
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "--attack", "fgsm"])
    assert info.value.code == 2
    assert "evaluate" in capsys.readouterr().err


def test_shared_options_mean_the_same_everywhere() -> None:
    leaves = dict(_leaves(build_parser()))
    want = {"--victim-checkpoint": "last", "--generator-checkpoint": "best", "--device": "cpu"}
    for path, parser in leaves.items():
        for flag, default in want.items():
            action = _option(parser, flag)
            if action is not None:
                assert action.default == default, (path, flag, action.default)
    # A victim run is loaded by these; each lets the user pick its checkpoint (default last).
    for path in [("attack",), ("evaluate", "victim"), ("evaluate", "attack"), ("train", "gan")]:
        assert _option(leaves[path], "--victim-checkpoint") is not None, path
    for path in [("attack",), ("evaluate", "attack")]:
        assert _option(leaves[path], "--generator-checkpoint") is not None, path
    # --split: the loaded victim's own split where there is a victim (None until resolved).
    for path in [("evaluate", "victim"), ("evaluate", "attack"), ("train", "gan")]:
        assert _option(leaves[path], "--split").default is None, path
    assert _option(leaves[("train", "victim")], "--split").default == "paper"


def test_every_command_has_help(capsys: pytest.CaptureFixture) -> None:
    for path, _ in _leaves(build_parser()):
        with pytest.raises(SystemExit) as info:
            main([*path, "--help"])
        assert info.value.code == 0
        assert "usage: ssgan" in capsys.readouterr().out


def test_config_show_prints_the_resolved_profile_with_overrides(capsys) -> None:
    import dataclasses
    import json

    from ssgan.training.gan import PROFILES as GAN_PROFILES
    from ssgan.training.victim import get_profile

    assert main(["config", "show", "gan", "--profile", "cpu-grad", "--set", "lr=3e-4"]) == 0
    shown = json.loads(capsys.readouterr().out)
    expected = dataclasses.asdict(dataclasses.replace(GAN_PROFILES["cpu-grad"], lr=3e-4))
    assert shown == json.loads(json.dumps(expected))
    assert main(["config", "show", "victim", "--profile", "demo", "--model", "logmel"]) == 0
    victim = json.loads(capsys.readouterr().out)
    assert (
        victim["model"] == "logmel" and victim["fc_width"] == get_profile("demo", "logmel").fc_width
    )
    assert main(["config", "show", "gan", "--profile", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["config", "show", "gan", "--set", "bogus=1"]) == 2
    assert "bogus" in capsys.readouterr().err
