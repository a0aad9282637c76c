"""What ``ssgan attack`` reads and writes: files, folders and globs in, a mirrored tree out, and
the ``results.jsonl`` ledger a rerun resumes from.

Inputs (``expand_inputs``):

- a **file** is taken as given (the loader says what is wrong with it, if anything);
- a **folder** is walked recursively, sorted, for every extension of a format soundfile reads
  (``ssgan.audio.audio_files``: ``audio_suffixes``, case-insensitive; names starting with ``.``
  and anything under the output folder are left out);
- a **glob** (a quoted pattern, ``'clips/**/*.wav'``, expanded here with ``**`` recursive) gives
  its audio files, and the folders it matches are walked.

Outputs (``plan_attack``): a file given directly goes to ``OUT/<stem>_adv.<wav|flac>``; a file
found under a folder ``IN`` (or under a glob's fixed leading folders) keeps its place:
``IN/a/b.mp3`` goes to ``OUT/a/b_adv.wav``. Two inputs that map to one output, or an output that
is an input, are an ``OutputError`` naming both.

Resume (``resume_plan``): an output that exists and has a complete record (no ``"error"``, same
input) in ``results.jsonl`` or in a rank's part file is skipped; the records are read line by
line, a torn last line (a crash inside a write) is dropped.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ssgan.audio import audio_files, audio_suffixes, is_audio_file
from ssgan.errors import OutputError, SSGANError
from ssgan.streaming import output_format

__all__ = [
    "RESULTS_NAME",
    "PlannedFile",
    "ResumePlan",
    "audio_suffixes",
    "expand_inputs",
    "part_path",
    "plan_attack",
    "read_records",
    "remove_stale_temps",
    "resume_plan",
]

logger = logging.getLogger(__name__)

#: The ledger of an ``ssgan attack`` output folder.
RESULTS_NAME = "results.jsonl"


@dataclasses.dataclass(frozen=True)
class PlannedFile:
    """One file to attack: its ``input``, ``output`` and the argument (``source``) it came from."""

    input: Path
    output: Path
    source: str


def _is_glob(spec: str) -> bool:
    return glob.has_magic(spec)


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and (path == folder or folder in path.parents)


def _glob_base(pattern: str) -> Path:
    """The fixed leading folders of ``pattern`` (``clips`` for ``clips/**/*.wav``)."""
    parts: list[str] = []
    for part in Path(pattern).parts[:-1]:
        if _is_glob(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def expand_inputs(
    specs: Iterable[str | Path], *, exclude: Path | None = None
) -> list[tuple[Path, Path | None, str]]:
    """``(file, base, spec)`` for every audio file that ``specs`` name.

    ``base`` is the folder the file's output mirrors its place under (``None`` for a file given
    directly). ``exclude`` (the output folder) is never walked into. Raises ``SSGANError`` for a
    folder without audio files or a pattern that matches none, naming it.
    """
    exclude = exclude.resolve() if exclude is not None else None
    out: list[tuple[Path, Path | None, str]] = []
    for raw in specs:
        spec = str(raw)
        path = Path(spec)
        if path.is_dir():
            if _inside(path.resolve(), exclude):
                raise SSGANError(f"{spec}: is the output folder or inside it; choose another --out")
            files = audio_files(path, exclude=exclude)
            if not files:
                raise SSGANError(
                    f"{spec}: no audio files in this folder or below (extensions of the formats "
                    f"soundfile reads: {', '.join(sorted(audio_suffixes()))})"
                )
            out += [(f, path, spec) for f in files]
        elif path.exists() or not _is_glob(spec):
            out.append((path, None, spec))  # a missing file: the loader's error record names it
        else:
            base = _glob_base(spec)
            matched: list[Path] = []
            for hit in sorted(glob.glob(spec, recursive=True)):
                p = Path(hit)
                if p.is_dir():
                    matched += audio_files(p, exclude=exclude)
                elif is_audio_file(p) and not _inside(p.resolve(), exclude):
                    matched.append(p)
            if not matched:
                raise SSGANError(f"{spec}: the pattern matches no audio file")
            out += [(f, base, spec) for f in sorted(set(matched))]
    return out


def plan_attack(
    specs: Sequence[str | Path], out_dir: Path, *, fmt: str | None = None
) -> list[PlannedFile]:
    """The files ``specs`` name with their outputs under ``out_dir`` (see the module docstring).

    Raises ``OutputError`` when an output (or ``results.jsonl``) would overwrite an input or two
    inputs map to one output; ``SSGANError`` for an empty folder or pattern.
    """
    expanded = expand_inputs(specs, exclude=out_dir)
    resolved_inputs = {p.resolve(): p for p, _, _ in expanded}
    plan: list[PlannedFile] = []
    seen: dict[Path, PlannedFile] = {}
    for path, base, spec in expanded:
        name = f"{path.stem}_adv.{output_format(path, fmt)}"
        rel = path.parent.relative_to(base) if base is not None else Path()
        target = out_dir / rel / name
        key = target.resolve()
        if key in resolved_inputs:
            raise OutputError(f"{target}: would overwrite an input file")
        if key in seen:
            first = seen[key]
            if first.input.resolve() == path.resolve():
                continue  # the same file named twice (a folder and a glob, say): attacked once
            raise OutputError(
                f"{target}: inputs {first.input} (from {first.source}) and {path} (from {spec}) "
                "map to the same output; give them separately or rename one"
            )
        planned = PlannedFile(path, target, spec)
        seen[key] = planned
        plan.append(planned)
    results = out_dir / RESULTS_NAME
    if results.resolve() in resolved_inputs:
        raise OutputError(f"{results}: would overwrite an input file")
    return plan


def part_path(out_dir: Path, rank: int) -> Path:
    """Where rank ``rank`` of a torchrun launch appends its records before rank 0 merges them."""
    return out_dir / f"results.rank{rank}.jsonl"


def read_records(path: Path) -> list[dict[str, Any]]:
    """The per-file records of a ``results.jsonl`` (summary lines and torn lines left out)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn line: a crash inside a write
        if isinstance(record, dict) and isinstance(record.get("output"), str):
            records.append(record)
    return records


@dataclasses.dataclass
class ResumePlan:
    """What a run has left: ``done`` (plan index -> the complete record of an earlier run),
    ``other`` (records of outputs outside this plan, kept as they were)."""

    done: dict[int, dict[str, Any]]
    other: list[dict[str, Any]]


def _key(path: str | Path) -> Path:
    return Path(path).resolve()


def resume_plan(plan: Sequence[PlannedFile], out_dir: Path, *, overwrite: bool) -> ResumePlan:
    """Which planned files an earlier run into ``out_dir`` finished (``overwrite``: none).

    A file is done when its output exists and the last record for that output has no
    ``"error"`` and names the same input. An existing output without one is redone when
    ``out_dir`` holds a ledger (an earlier run here was cut off), and refused otherwise
    (``OutputError``: a file this command did not write).
    """
    ledgers = [out_dir / RESULTS_NAME, *sorted(out_dir.glob("results.rank*.jsonl"))]
    if overwrite:
        return ResumePlan({}, [])
    latest: dict[Path, dict[str, Any]] = {}
    for ledger in ledgers:
        for record in read_records(ledger):
            latest[_key(record["output"])] = record
    ours = any(ledger.is_file() for ledger in ledgers)
    done: dict[int, dict[str, Any]] = {}
    planned_keys = set()
    for index, item in enumerate(plan):
        key = _key(item.output)
        planned_keys.add(key)
        found = latest.get(key)
        complete = (
            found is not None
            and "error" not in found
            and isinstance(found.get("input"), str)
            and _key(found["input"]) == item.input.resolve()
        )
        if item.output.exists():
            if complete and found is not None:
                done[index] = found
            elif not ours:
                raise OutputError(
                    f"{item.output}: exists and no {RESULTS_NAME} in {out_dir} says this command "
                    "wrote it (use --overwrite to replace it)"
                )
    other = [r for k, r in latest.items() if k not in planned_keys]
    return ResumePlan(done, other)


def remove_stale_temps(plan: Sequence[PlannedFile]) -> None:
    """Delete the temporary files a killed run left beside its outputs (``.NAME.*.tmp``)."""
    by_folder: dict[Path, set[str]] = {}
    for item in plan:
        by_folder.setdefault(item.output.parent, set()).add(item.output.name)
    for folder, names in by_folder.items():
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            stale = entry.name.startswith(".") and entry.name.endswith(".tmp")
            if stale and entry.name[1:].rsplit(".", 2)[0] in names:
                logger.info("%s: removing a temporary file of an interrupted run", entry)
                entry.unlink(missing_ok=True)
