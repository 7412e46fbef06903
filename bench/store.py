"""The results store: the layout of `results/`, the one atomic write, and the records' files.

Layout (`Layout(root)`; every name built from a results field goes through `safe_name`):

    results/<machine>/<UTC time>-<profile>-<device>[-shardIofN].jsonl   sweeps (bench records)
    results/eval/<machine>/<UTC time>-eval-<suite>.jsonl                evaluations (eval records)
    results/structure/<model>.jsonl                                     structure records (params, MACs)
    results/baselines/structure.json                                    structural baseline (any machine)
    results/baselines/<machine>/benchmarks.json                         latency baseline (that machine)
    results/selfcheck/<machine>/<check>.json                            self-checks of the harness
    results/trained/<model>_<dataset>.pt (+ .pt.json sidecar, .pt.log)  checkpoints trained here

Beside a sweep's results file (`sidecar`): `<file>.rounds`, the journal of its worker processes (JSON Lines,
kept only while the sweep is unfinished, for --resume), and `<file>.run.json`, each invocation's summary
(wall time, time in timed forwards, efficiency, stop rules). Neither is named *.jsonl: they are not results.

Records files are JSON Lines, one record per line, appended as whole fsync'ed lines under an exclusive lock
(two runs never write one file). A crash can at worst leave a torn last line: a last line without its
newline that is not even one complete JSON value (a write cut short). The reader skips it and the next
append cuts it off. A last line that is complete but lacks its newline (a file concatenated, or a disk that
filled exactly there) is kept: a record is read and ended before the next append; anything else (two records
run together, a record of a newer schema) is an error naming the line, never cut. Every other file is
written whole or not at all (`write_atomic`: temp file in the same folder + rename); it never replaces a
folder, a device or a pipe.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from bench.errors import UsageError
from bench.records import Record, RecordError, parse_line

DEFAULT_ROOT = Path("results")
MAX_NAME = 80  # characters of a file name taken from a results field, before its hash suffix
WRITE_CHECK_BYTES = 1 << 16  # what check_writable writes: room for a record (a few KiB, with samples tens)


def safe_name(text: str, limit: int = MAX_NAME) -> str:
    """A file-name-safe, bounded, unique form of `text` (a model or machine name from a results field):
    the text itself where it is short and safe, else a sanitised prefix plus a hash of the whole text."""
    text = str(text)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", text).strip(".")
    if safe == text and 0 < len(text) <= limit:
        return text
    return f"{safe[:limit] or 'x'}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def sidecar(results: Path, what: str) -> Path:
    """A file kept beside results file `results`: `<name>.<what>` (see the module docstring)."""
    results = Path(results)
    return results.with_name(f"{results.name}.{what}")


def utc_stamp(when: dt.datetime | None = None) -> str:
    return f"{when or dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}"


@dataclass(frozen=True)
class Layout:
    """Where each kind of result lives under one results folder."""

    root: Path = DEFAULT_ROOT

    def sweep(self, machine: str, profile: str, device: str, shard: tuple[int, int] | None = None) -> Path:
        tag = f"-shard{shard[0]}of{shard[1]}" if shard else ""
        name = f"{utc_stamp()}-{safe_name(profile)}-{safe_name(device)}{tag}.jsonl"
        return self.root / safe_name(machine) / name

    def evals(self, machine: str, suite: str = "eval") -> Path:
        return self.root / "eval" / safe_name(machine) / f"{utc_stamp()}-eval-{safe_name(suite)}.jsonl"

    def structure(self, model: str) -> Path:
        return self.root / "structure" / f"{safe_name(model)}.jsonl"

    def baselines(self, machine: str) -> Path:
        return self.root / "baselines" / safe_name(machine)

    def structure_baseline(self) -> Path:
        return self.root / "baselines" / "structure.json"

    def selfcheck(self, machine: str, check: str) -> Path:
        return self.root / "selfcheck" / safe_name(machine) / f"{safe_name(check)}.json"

    def trained(self, model: str, dataset: str) -> Path:
        return self.root / "trained" / f"{safe_name(model)}_{safe_name(dataset)}.pt"


# ------------------------------------------------------------------------------------------ writing


def check_writable(folder: Path) -> None:
    """UsageError (one line) unless files can be created and written in `folder` (made if missing): a file
    in the way, a read-only file system or a full disk is found here, before any work."""
    folder = Path(folder)
    blocker = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise UsageError(f"cannot write to {folder}: {blocker} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".segbench-write-check-") as probe:
            probe.write(bytes(WRITE_CHECK_BYTES))  # a full disk fails here, not after the first measurement
            probe.flush()
    except OSError as exc:
        raise UsageError(f"cannot write to {folder}: {exc.strerror or exc}") from None


def write_atomic(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` whole or not at all: a temporary file in the same folder, fsync'ed, then
    renamed over `path`. A failure (full disk, read-only folder) leaves `path` as it was and no temp file.
    A `path` that is there but not a regular file (a folder, /dev/stdout, a pipe) is a UsageError: the rename
    would replace it."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise UsageError(f"cannot write {path}: it is not a regular file (a folder, device or pipe)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:100]}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # a file to share, not mkstemp's private 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json(path: Path, document: dict) -> None:
    write_atomic(path, json.dumps(document, indent=1, sort_keys=True, allow_nan=False) + "\n")


def save_checkpoint(state: dict, path: Path) -> Path:
    """Write a state_dict (tensors) as a checkpoint, atomically: safetensors for a .safetensors name,
    torch.save otherwise (read back with `torch.load(weights_only=True)`, zoo.weights.read_state_dict)."""
    import io

    import torch

    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    if path.suffix == ".safetensors":
        try:
            import safetensors.torch
        except ImportError:
            raise UsageError(
                "writing .safetensors needs the safetensors package (pip install safetensors)"
            ) from None
        data = safetensors.torch.save(tensors)
    else:
        buffer = io.BytesIO()
        torch.save(tensors, buffer)
        data = buffer.getvalue()
    write_atomic(path, data)
    return path


def save_torch(obj, path: Path) -> None:
    """torch.save `obj` (e.g. a resume state of tensors and plain values) to `path`, atomically."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_atomic(path, buffer.getvalue())


def _is_record(line: str) -> bool:
    try:
        parse_line(line)
    except RecordError:
        return False
    return True


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


_RAW_DECODER = json.JSONDecoder()


def torn(line: str) -> bool:
    """Whether a last line without its newline is a write cut short: not even one complete JSON value at its
    start. A write of one line cut anywhere leaves a prefix of one JSON object, which never is one."""
    try:
        _RAW_DECODER.raw_decode(line.lstrip())
    except (ValueError, RecursionError):
        return True
    return False


def _end_last_line(f, path: Path, complete: Callable[[str], bool] = _is_record) -> None:
    """Make the file end at a line boundary before appending: a last line without its newline is ended
    when it is `complete` (a whole record, by default), cut off when it is `torn`, and otherwise (two records
    run together, a record this version cannot read) a UsageError: it is never cut."""
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return
    f.seek(size - 1)
    if f.read(1) == b"\n":
        return
    chunk, pos, start_of_line = 1 << 16, size, 0
    while pos > 0:
        start = max(0, pos - chunk)
        f.seek(start)
        i = f.read(pos - start).rfind(b"\n")
        if i >= 0:
            start_of_line = start + i + 1
            break
        pos = start
    f.seek(start_of_line)
    try:
        whole = complete(f.read(size - start_of_line).decode("utf-8"))
    except UnicodeDecodeError:
        whole = False
    if not whole:
        f.seek(start_of_line)
        last = f.read(size - start_of_line).decode("utf-8", errors="replace")
        if not torn(last):
            raise UsageError(f"{path}: its last line is complete but not what this file holds; not appending")
        f.truncate(start_of_line)
        return
    f.seek(0, os.SEEK_END)
    f.write(b"\n")


def _append_line(path: Path, line: str, complete: Callable[[str], bool]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "ab+") as f:
            _end_last_line(f, path, complete)
            f.seek(0, os.SEEK_END)
            f.write((line + "\n").encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:  # a full disk: name the file (a write error carries no file name of its own)
        if exc.filename is not None:
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc


def append_record(path: Path, record: Record) -> None:
    """Append one record as one line, durably."""
    _append_line(path, record.to_json(), _is_record)


def append_json(path: Path, document: dict) -> None:
    """Append one JSON object as one line, durably (a sweep's rounds journal); the same torn-line rules."""
    _append_line(path, json.dumps(document, sort_keys=True, allow_nan=False), _is_json_object)


def read_json_lines(path: Path) -> list[dict]:
    """The JSON objects of a file written by `append_json`; a torn last line is skipped, any other bad line
    is a UsageError naming the file and the line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    lines = text.split("\n")
    documents = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if _is_json_object(line):
            documents.append(json.loads(line))
        elif not (number == len(lines) and not text.endswith("\n") and torn(line)):
            raise UsageError(f"{path}:{number}: not a JSON object")
    return documents


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on results file `path` (created if missing) for a run's duration; a second
    writer gets a one-line UsageError instead of measuring every cell beside the first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise UsageError(f"{path} is being written by another segbench run") from None
            raise
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


# ------------------------------------------------------------------------------------------ reading


def read_records(path: Path) -> list[Record]:
    """All records of a results file. A torn last line (one that does not parse) is skipped; any other bad
    line is a UsageError naming the file, the line and what is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UsageError(f"cannot read results file {path}: {reason}") from None
    lines = text.split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(parse_line(line))
        except RecordError as exc:
            if number == len(lines) and not text.endswith("\n") and torn(line):
                break  # the last write was interrupted: that cell was never completed
            raise UsageError(f"{path}:{number}: not a SegBench record: {exc}") from None
    return records


def _foreign(path: Path) -> bool:
    """Whether the file's first line is a JSON object that is not a SegBench record (another tool's log)."""
    try:
        with open(path, encoding="utf-8") as f:
            first = next((line for line in f if line.strip()), "")
        obj = json.loads(first)
    except (OSError, UnicodeDecodeError, ValueError):
        return False  # let read_records report what is wrong with it
    return isinstance(obj, dict) and "schema_version" not in obj


def results_files(inputs: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """(results files, skipped files) named by `inputs`: a file must be a results file as given; a folder is
    searched for *.jsonl, skipping those that are another tool's log (a training log, say)."""
    files: list[Path] = []
    skipped: list[Path] = []
    inputs = [Path(p) for p in inputs]
    for path in inputs:
        if path.is_dir():
            for found in sorted(path.rglob("*.jsonl")):
                (skipped if _foreign(found) else files).append(found)
        elif path.exists():
            files.append(path)
        else:
            raise UsageError(f"results file {path} does not exist")
    if not files:
        raise UsageError(f"no results files (*.jsonl) in {', '.join(map(str, inputs))}")
    return files, skipped


def load(inputs: Iterable[Path]) -> tuple[list[Record], list[Path]]:
    """Every record under `inputs` (each with `source`, the file it came from), and the files skipped as
    not results."""
    files, skipped = results_files(inputs)
    records = [replace(r, source=path.as_posix()) for path in files for r in read_records(path)]
    return records, skipped


def merge_results(files: list[Path], out: Path) -> int:
    """Write the records of `files` (e.g. the shards of one sweep) to the new file `out`, atomically.

    A cell measured on one machine in two files is an error (shards overlap, or two sweeps were mixed):
    merging must never pick one number silently. Within one file a cell may have several records (a failed
    cell measured again with `run --retry-failed`): they are that file's history, copied as they are, and
    readers take the newest. Returns the number of records written."""
    out = Path(out)
    if out.exists():
        raise UsageError(f"{out} exists: merge writes a new file")
    records, seen = [], {}  # cell -> (index of the file it is in, that file)
    for index, path in enumerate(files):
        for record in read_records(path):
            key = (record.machine, *record.key)
            first, where = seen.setdefault(key, (index, path))
            if first != index:
                raise UsageError(f"{path}: cell {record.label()} is also in {where}; refusing to merge")
            records.append(record)
    write_atomic(out, "".join(r.to_json() + "\n" for r in records))
    return len(records)
