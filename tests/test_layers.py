"""The package's layers, stated once and checked over every import, function-level ones included.

Bottom to top (docs/design.md): a module may import from its own layer or any layer below, never
from above. ``KNOWN_UPWARD`` lists the imports that still cross a layer upwards (none since issue
29: the GAN loop takes its validation as a callable, ``ssgan.gan_validation``); a new crossing
fails this test, and so does removing one without removing it from the list, so the list only
shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "ssgan"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("ssgan", "memory", "errors", "config", "io", "paper", "pretrained"),
    ("metrics", "losses", "distributed", "targets"),
    ("audio", "report"),
    ("transforms", "data"),
    ("models",),
    ("training",),
    ("attacks", "art"),
    ("evaluation", "gan_validation", "streaming", "attack_inputs"),
    ("reproduce", "reproduce_stages", "reproduce_robustness", "reproduce_transfer", "demo"),
    ("cli", "__main__"),
)

KNOWN_UPWARD: set[tuple[str, str]] = set()


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else module
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module}: in no layer; add its top-level name to LAYERS")


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            # the layers are checked on absolute names; the package uses no relative imports
            raise AssertionError(f"{path}:{node.lineno}: relative import; import ssgan.... instead")
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] != "ssgan":
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "ssgan"}
    return found


def test_every_module_has_a_layer() -> None:
    for name in _modules():
        _layer(name)


def test_no_import_crosses_a_layer_upwards() -> None:
    modules = _modules()
    upward = set()
    for name, path in modules.items():
        for target in _imports(path, modules):
            if _layer(target) > _layer(name):
                upward.add((name, target))
    new = sorted(upward - KNOWN_UPWARD)
    assert not new, f"imports that cross a layer upwards: {new}"
    gone = sorted(KNOWN_UPWARD - upward)
    assert not gone, f"no longer crossing, remove from KNOWN_UPWARD: {gone}"


def test_the_checker_refuses_relative_imports(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from .pgd import PGD\n")
    try:
        _imports(src, {})
    except AssertionError as exc:
        assert "relative import" in str(exc)
    else:
        raise AssertionError("a relative import went unchecked")


def test_the_checker_sees_function_level_imports(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from ssgan.cli import main\n    import ssgan.attacks.pgd\n")
    modules = {"ssgan.cli": src, "ssgan.attacks.pgd": src}
    assert _imports(src, modules) == {"ssgan.cli", "ssgan.attacks.pgd"}
