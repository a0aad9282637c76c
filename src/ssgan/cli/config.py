"""``ssgan config show victim|gan|uap|reproduce --profile P [--model M] [--set key=value ...]``:
the resolved settings a command would use, as JSON (the same resolution as ``ssgan train`` and
``ssgan reproduce``, nothing run)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ssgan.config import apply_overrides, to_dict


def register(sub: argparse._SubParsersAction) -> None:
    from ssgan.models.registry import MODELS
    from ssgan.reproduce_stages import REPRODUCE_PROFILES
    from ssgan.training.gan import PROFILES as GAN_PROFILES
    from ssgan.training.victim import PROFILES as VICTIM_PROFILES

    parser = sub.add_parser("config", help="print the resolved settings of a profile")
    inner = parser.add_subparsers(dest="action", required=True)
    show = inner.add_parser("show", help="the settings `ssgan train` would use, as JSON")
    show.add_argument(
        "what",
        choices=("victim", "gan", "uap", "reproduce"),
        help="which settings: a training (victim, gan), the universal perturbations `ssgan "
        "reproduce` fits (uap), or everything a reproduce profile sets (reproduce: its victim, "
        "GAN and table settings)",
    )
    show.add_argument(
        "--profile",
        default="cpu",
        help=f"victim: {', '.join(VICTIM_PROFILES)}; gan: {', '.join(GAN_PROFILES)}; uap, "
        f"reproduce: {', '.join(REPRODUCE_PROFILES)}",
    )
    show.add_argument("--model", choices=tuple(MODELS), default="envnet", help="victim only")
    show.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="change a setting as `ssgan train ... --set` does (repeatable): gan.lr=1e-3, "
        "victim.epochs=40, or a bare KEY=VALUE of the settings shown",
    )
    show.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ssgan.config import split_sections
    from ssgan.training.gan import PROFILES as GAN_PROFILES
    from ssgan.training.victim import get_profile

    config: Any
    try:
        if args.what == "reproduce":
            from ssgan.reproduce_stages import reproduce_profile

            tables = reproduce_profile(args.profile)
            overrides = split_sections(args.settings, sections=("victim", "gan"))
            shown = {
                "victim": to_dict(
                    apply_overrides(get_profile(args.profile, args.model), overrides["victim"])
                ),
                "gan": to_dict(apply_overrides(GAN_PROFILES[args.profile], overrides["gan"])),
                "tables": to_dict(tables),
            }
            print(json.dumps(shown, indent=2, sort_keys=True))
            return 0
        if args.what == "uap":
            from ssgan.reproduce_stages import reproduce_profile, uap_settings

            reproduce_profile(args.profile)
            uap = split_sections(
                args.settings, sections=("uap-iterative", "uap-penalty", "uap-fit")
            )
            shown = uap_settings(args.profile, {k: tuple(v) for k, v in uap.items() if v})
            print(json.dumps(shown, indent=2, sort_keys=True))
            return 0
        overrides = split_sections(args.settings, sections=(args.what,), default=args.what)
        if args.what == "victim":
            config = get_profile(args.profile, args.model)
        elif args.profile in GAN_PROFILES:
            config = GAN_PROFILES[args.profile]
        else:
            raise ValueError(f"profile={args.profile!r}: expected one of {', '.join(GAN_PROFILES)}")
        config = apply_overrides(config, overrides[args.what])
    except ValueError as exc:
        print(f"ssgan: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(to_dict(config), indent=2, sort_keys=True))
    return 0
