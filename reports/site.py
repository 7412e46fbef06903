"""Writing the report's site: into a temporary folder beside the target, then swapped in whole.

A reader of the output folder sees the previous report or the new one, never a mix: if writing fails (a full
disk, a read-only file system) the temporary folder is removed and the previous report is left as it was,
with one line saying why. This is bench.store.write_atomic's pattern applied to a folder (write aside,
flush, rename): the files inside the private temporary folder need no atomic write of their own, and they
are flushed to disk together (on a virtual disk one flush costs milliseconds, and concurrent flushes share
the file system's journal commits: a site of three hundred files is flushed in a fraction of a second
instead of one second). The target is checked before anything is rendered: it must be a folder (or not
exist yet) in a writable parent, and an existing folder must be empty or hold a SegBench report, since it is
replaced whole (a folder of other files is refused rather than deleted).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.errors import UsageError
from bench.store import check_writable

GENERATOR = "SegBench report"  # <meta name="generator"> of every page: how a report folder is recognised


def _is_report(folder: Path) -> bool:
    index = folder / "index.html"
    try:
        head = index.read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        return False
    return f'content="{GENERATOR}"' in head or "<title>SegBench leaderboard</title>" in head


def check_target(out: Path) -> None:
    """UsageError (one line) unless `out` can receive a site: see the module docstring."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; the report is a folder (name a new or report folder)")
    if out.is_dir() and any(out.iterdir()) and not _is_report(out):
        raise UsageError(
            f"--out {out} holds files that are not a SegBench report; name an empty or new folder"
        )
    check_writable(out.parent if out.parent != Path("") else Path("."))


def write_site(files: dict[str, str], out: Path) -> None:
    """Write `files` (relative path -> text) as the folder `out`, replacing the report there whole."""
    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    staging = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out.name}.new-"))
    old = None
    try:
        written = [staging]
        for name, text in sorted(files.items()):
            path = staging / name
            if not path.parent.exists():
                path.parent.mkdir(parents=True)
                written.append(path.parent)
            path.write_bytes(text.encode("utf-8"))
            os.chmod(path, 0o644)
            written.append(path)
        os.chmod(staging, 0o755)  # a folder to share, not mkdtemp's private 0700
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(_flush, written))
        if out.exists():
            old = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out.name}.old-"))
            os.replace(out, old / "site")
            try:
                os.replace(staging, out)
            except OSError:
                os.replace(old / "site", out)
                raise
        else:
            os.replace(staging, out)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None and not (old / "site").exists():
            shutil.rmtree(old, ignore_errors=True)
        if isinstance(exc, OSError):
            reason = exc.strerror or str(exc)
            raise UsageError(
                f"cannot write the report to {out}: {reason} (the previous report is unchanged)"
            ) from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    with contextlib.suppress(OSError):  # the new report is in place; this only makes its name durable
        _flush(parent)


def _flush(path: Path) -> None:
    """fsync a file or a folder (its entries)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
