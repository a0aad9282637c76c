"""Strict CSV reading for metadata files: clear errors naming the file, line and column."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from ssgan.errors import DatasetError


def read_rows(path: Path, required: Iterable[str]) -> list[tuple[int, dict[str, str]]]:
    """Rows of ``path`` as ``(line number, {column: value})``; ``DatasetError`` on any problem."""
    if not path.is_file():
        raise DatasetError(f"{path}: metadata file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read metadata ({exc})") from None
    if "\x00" in text:
        raise DatasetError(f"{path}: not a text CSV file (contains NUL bytes)")
    try:
        reader = csv.DictReader(text.splitlines())
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise DatasetError(
                f"{path}: missing column(s) {', '.join(missing)} (header: {','.join(header)})"
            )
        rows = []
        for row in reader:
            line = reader.line_num
            if None in row or any(v is None for v in row.values()):
                raise DatasetError(f"{path}:{line}: wrong number of fields")
            rows.append((line, {k: v.strip() for k, v in row.items()}))
    except csv.Error as exc:
        raise DatasetError(f"{path}: malformed CSV ({exc})") from None
    return rows


def as_int(path: Path, line: int, column: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DatasetError(
            f"{path}:{line}: column {column}: expected an integer, got {value!r}"
        ) from None
