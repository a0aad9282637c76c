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


def test_one_override_syntax_on_every_command_that_takes_settings() -> None:
    # Every command with settings takes them as `--set SECTION.KEY=VALUE` and nothing else new.
    leaves = dict(_leaves(build_parser()))
    sections = {
        ("train", "victim"): ("victim", "adversarial"),
        ("train", "gan"): ("gan",),
        ("evaluate", "attack"): ("attack",),
        ("attack",): ("attack",),
        ("reproduce", "table2"): ("victim", "gan", "uap-iterative", "uap-penalty", "uap-fit"),
        ("reproduce", "robustness"): ("victim", "gan", "uap-iterative", "uap-penalty", "uap-fit"),
        ("reproduce", "transfer"): ("ssgan", "pgd", "cw"),
    }
    for path, want in sections.items():
        action = _option(leaves[path], "--set")
        assert action is not None and action.metavar == "SECTION.KEY=VALUE", path
        assert leaves[path].get_default("settings_sections") == want, path
    # The per-section flags of earlier versions are gone from every command.
    old = ("--victim-set", "--gan-set", "--attack-arg", "--adversarial-arg")
    for path, parser in leaves.items():
        assert not [f for f in old if _option(parser, f) is not None], path
    for path in [("reproduce", "table2"), ("reproduce", "table3"), ("reproduce", "robustness")]:
        assert _option(leaves[path], "--victim-checkpoint").default == "last", path


def test_split_sections_sorts_and_refuses_clearly() -> None:
    from ssgan.config import split_sections

    got = split_sections(
        ["gan.lr=1e-3", "epochs=5", "gan.eot=mp3:kbps=64,reverb:rt60_s=0.3", "victim.x=a=b"],
        sections=("victim", "gan"),
        default="victim",
    )
    assert got == {
        "victim": ["epochs=5", "x=a=b"],
        "gan": ["lr=1e-3", "eot=mp3:kbps=64,reverb:rt60_s=0.3"],
    }
    with pytest.raises(ValueError, match=r"unknown section 'uap'.*victim, gan"):
        split_sections(["uap.x=1"], sections=("victim", "gan"))
    with pytest.raises(ValueError, match=r"victim\.lr, gan\.lr"):
        split_sections(["lr=1"], sections=("victim", "gan"))
    with pytest.raises(ValueError, match=r"expected SECTION\.KEY=VALUE"):
        split_sections(["gan.lr"], sections=("gan",))


def test_set_reaches_the_setting_it_names(capsys, tmp_path) -> None:
    import json

    # config show: section-prefixed and bare keys alike; a foreign section is refused.
    assert main(["config", "show", "gan", "--set", "gan.lr=3e-3", "--set", "snr_db=25"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["lr"] == 3e-3 and shown["snr_db"] == 25.0
    assert main(["config", "show", "gan", "--set", "victim.epochs=3"]) == 2
    assert "unknown section 'victim'" in capsys.readouterr().err
    # reproduce: a bad UAP key fails at once, before any stage runs (nothing written).
    out = tmp_path / "r"
    code = main(["reproduce", "table3", "--root", str(tmp_path), "--out", str(out),
                 "--set", "uap-fit.passes=3"])  # fmt: skip
    assert code == 2 and "uap-fit.passes" in capsys.readouterr().err
    assert not out.exists()
    code = main(["reproduce", "table3", "--root", str(tmp_path), "--out", str(out),
                 "--set", "epochs=3"])  # fmt: skip
    assert code == 2 and "victim.epochs, gan.epochs" in capsys.readouterr().err
    # ssgan attack: the victim-querying steps need the victim; unknown keys are named.
    code = main(["attack", str(tmp_path / "a.wav"), "--generator", str(tmp_path), "--out",
                 str(tmp_path / "o"), "--set", "attack.quietest=true"])  # fmt: skip
    assert code == 2 and "pass --victim RUN_V" in capsys.readouterr().err
    code = main(["attack", str(tmp_path / "a.wav"), "--generator", str(tmp_path), "--out",
                 str(tmp_path / "o"), "--set", "attack.eps=1"])  # fmt: skip
    assert code == 2 and "refine_steps" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_uap_settings_apply_on_top_of_the_profile() -> None:
    from ssgan.reproduce import REPRODUCE_PROFILES, uap_settings

    got = uap_settings("smoke", {"uap-iterative": ("max_passes=4",), "uap-fit": ("clips=3",)})
    assert got["uap-iterative"]["max_passes"] == "4" and got["fit"]["clips"] == 3
    assert got["uap-penalty"] == dict(REPRODUCE_PROFILES["smoke"].uap_penalty)
    assert REPRODUCE_PROFILES["smoke"].uap_fit_clips != 3  # the profile itself is untouched
    with pytest.raises(ValueError, match="whole number"):
        uap_settings("smoke", {"uap-fit": ("clips=x",)})


def test_config_show_uap(capsys) -> None:
    import json

    assert main(["config", "show", "uap", "--profile", "cpu", "--set", "uap-fit.clips=7"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["fit"]["clips"] == 7 and "max_passes" in shown["uap-iterative"]
    assert main(["config", "show", "uap", "--set", "clips=7"]) == 2
    assert "uap-fit.clips" in capsys.readouterr().err


def test_config_show_reproduce_prints_every_setting_a_profile_makes(capsys) -> None:
    """One profile, read by `ssgan reproduce`: its victim, GAN and table settings, with --set
    applied to the training sections as `ssgan reproduce --set` does."""
    import json

    from ssgan.reproduce import REPRODUCE_PROFILES
    from ssgan.training.gan import PROFILES as GAN_PROFILES

    argv = ["config", "show", "reproduce", "--profile", "cpu", "--model", "envnetv2"]
    assert main([*argv, "--set", "gan.epochs=3", "--set", "victim.epochs=7"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["gan"]["epochs"] == 3 and shown["victim"]["epochs"] == 7
    assert shown["gan"]["snr_db"] == GAN_PROFILES["cpu"].snr_db
    tables = REPRODUCE_PROFILES["cpu"]
    assert shown["tables"]["train_clips_evaluated"] == tables.train_clips_evaluated == 200
    assert shown["tables"]["uap_fit_clips"] == tables.uap_fit_clips
    assert main(["config", "show", "reproduce", "--profile", "cpu-box"]) == 2
    assert "expected one of smoke, demo, cpu, paper" in capsys.readouterr().err


def test_transfer_settings_keep_their_order(monkeypatch, tmp_path) -> None:
    import ssgan.reproduce_transfer as rt

    seen = {}

    def fake(opts):
        seen["args"] = opts.attack_args
        out = tmp_path / "t.md"
        out.write_text("table")
        return out

    monkeypatch.setattr(rt, "reproduce_transfer", fake)
    argv = ["reproduce", "transfer", "--victims", str(tmp_path), "--root", str(tmp_path),
            "--out", str(tmp_path / "o"), "--set", "pgd.eps=1",
            "--set", "pgd.eps=2", "--set", "cw.steps=3"]  # fmt: skip
    assert main(argv) == 0
    assert seen["args"] == {"pgd": ["eps=1", "eps=2"], "cw": ["steps=3"]}  # the last one wins
