"""``ssgan config show victim|gan --profile P [--model M] [--set key=value ...]``: the resolved
settings a training would use, as JSON (the same resolution as ``ssgan train``, nothing run)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ssgan.config import apply_overrides, to_dict


def register(sub: argparse._SubParsersAction) -> None:
    from ssgan.models.registry import MODELS
    from ssgan.training.gan import PROFILES as GAN_PROFILES
    from ssgan.training.victim import PROFILES as VICTIM_PROFILES

    parser = sub.add_parser("config", help="print the resolved settings of a profile")
    inner = parser.add_subparsers(dest="action", required=True)
    show = inner.add_parser("show", help="the settings `ssgan train` would use, as JSON")
    show.add_argument(
        "what",
        choices=("victim", "gan", "uap"),
        help="which training (uap: the universal perturbations `ssgan reproduce` fits)",
    )
    show.add_argument(
        "--profile",
        default="cpu",
        help=f"victim: {', '.join(VICTIM_PROFILES)}; gan: {', '.join(GAN_PROFILES)}; uap: the "
        "reproduce profiles",
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
        if args.what == "uap":
            from ssgan.reproduce import UAP_PROFILES, uap_settings

            if args.profile not in UAP_PROFILES:
                raise ValueError(
                    f"profile={args.profile!r}: expected one of {', '.join(UAP_PROFILES)}"
                )
            sections = ("uap-iterative", "uap-penalty", "uap-fit")
            uap = split_sections(args.settings, sections=sections)
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
