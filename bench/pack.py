"""Fit a results folder into what a GPU machine hands back: at most 8 files of at most 16 MiB each, no deeper
than two folders, each name made of letters, digits, '.', '_' and '-'. Torch-free (it runs after the window).

`pack_folder` only changes what does not fit: a records file (*.jsonl) over the size is split at line ends
into parts beside it (`<name>-part2.jsonl`, ...; every part is a valid records file, the report reads them
all), a log (*.log) over the size keeps its beginning and its end around one line saying what was cut, and
temporary files left by an interrupted atomic write are removed. Anything else that does not fit is reported
(PackError), never deleted.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

MAX_FILES = 8
MAX_BYTES = 16 * 2**20
MAX_DEPTH = 2  # folders between the root and a file
SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


class PackError(ValueError):
    """The folder cannot be brought within the limits without losing results."""


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def split_lines(path: Path, max_bytes: int) -> list[Path]:
    """Split a JSON Lines file into parts of at most `max_bytes` at line ends; the first keeps the name."""
    parts: list[list[bytes]] = [[]]
    size = 0
    for line in path.read_bytes().splitlines(keepends=True):
        if len(line) > max_bytes:
            raise PackError(f"{path}: one line is {len(line)} bytes, more than {max_bytes}")
        if size + len(line) > max_bytes:
            parts.append([])
            size = 0
        parts[-1].append(line)
        size += len(line)
    names = [path] + [path.with_name(f"{path.stem}-part{i}{path.suffix}") for i in range(2, len(parts) + 1)]
    for name, lines in zip(reversed(names), reversed(parts), strict=True):  # the original is rewritten last
        tmp = name.with_name(f".{name.name}.tmp")
        tmp.write_bytes(b"".join(lines))
        tmp.replace(name)
    return names


def cut_middle(path: Path, max_bytes: int) -> int:
    """Keep the first and last parts of a text file within `max_bytes`; return the bytes cut."""
    data = path.read_bytes()
    cut = len(data) - max_bytes + 200
    if cut <= 0:
        return 0
    head = data[: (len(data) - cut) // 2]
    tail = data[len(head) + cut :]
    marker = f"\n[... {cut} bytes of this log cut here to keep the file under {max_bytes} bytes ...]\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(head + marker.encode() + tail)
    tmp.replace(path)
    return cut


def pack_folder(
    folder: Path, max_files: int = MAX_FILES, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH
) -> list[str]:
    """Bring `folder` within the limits (see the module docstring); return what was done, one line each.
    Raises PackError naming what cannot be brought within them."""
    folder = Path(folder)
    done = []
    for path in _files(folder):
        if path.name.startswith(".") and path.name.endswith(".tmp"):
            path.unlink()
            done.append(f"removed the temporary file {path.relative_to(folder)}")
    for path in _files(folder):
        size = path.stat().st_size
        if size <= max_bytes:
            continue
        if path.suffix == ".jsonl":
            parts = split_lines(path, max_bytes)
            done.append(f"split {path.relative_to(folder)} ({size} bytes) into {len(parts)} parts")
        elif path.suffix == ".log":
            done.append(
                f"cut {cut_middle(path, max_bytes)} bytes from the middle of {path.relative_to(folder)}"
            )
    problems = []
    files = _files(folder)
    for path in files:
        relative = path.relative_to(folder)
        if path.stat().st_size > max_bytes:
            problems.append(f"{relative} is {path.stat().st_size} bytes (limit {max_bytes})")
        if len(relative.parts) - 1 > max_depth:
            problems.append(f"{relative} is more than {max_depth} folders down")
        if not all(SAFE_NAME.match(part) for part in relative.parts):
            problems.append(
                f"{relative} has a name with characters other than letters, digits, '.', '_', '-'"
            )
    if len(files) > max_files:
        problems.append(
            f"{len(files)} files (limit {max_files}): {', '.join(str(p.relative_to(folder)) for p in files)}"
        )
    if problems:
        raise PackError("; ".join(problems))
    return done


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.pack DIR`: exit 0 when DIR is within the limits (after packing), else 1."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.pack DIR", file=sys.stderr)
        return 2
    try:
        for line in pack_folder(Path(args[0])):
            print(f"pack: {line}", file=sys.stderr)
    except PackError as exc:
        print(f"pack: {args[0]} is not within the limits: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
