"""bench.pack: a results folder brought within what a GPU machine hands back (8 files, 16 MiB, 2 folders)."""

import json

import pytest

from bench.pack import PackError, main, pack_folder


def _jsonl(path, n, width=90):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"i": i, "pad": "x" * width}) + "\n" for i in range(n)]
    path.write_text("".join(lines))
    return lines


def test_a_folder_within_the_limits_is_left_alone(tmp_path):
    lines = _jsonl(tmp_path / "m" / "run.jsonl", 5)
    (tmp_path / "window.log").write_text("ok\n")
    assert pack_folder(tmp_path) == []
    assert (tmp_path / "m" / "run.jsonl").read_text() == "".join(lines)


def test_a_large_records_file_is_split_at_line_ends(tmp_path):
    path = tmp_path / "m" / "run.jsonl"
    lines = _jsonl(path, 30)  # about 3 KB
    done = pack_folder(tmp_path, max_bytes=1000)
    parts = [path] + sorted(path.parent.glob("run-part*.jsonl"), key=lambda p: int(p.stem.split("part")[1]))
    assert len(parts) >= 3 and done == [
        f"split m/run.jsonl ({len(''.join(lines))} bytes) into {len(parts)} parts"
    ]
    assert all(p.stat().st_size <= 1000 for p in parts)
    assert "".join(p.read_text() for p in parts) == "".join(lines)
    for p in parts:
        assert all(json.loads(line) for line in p.read_text().splitlines())


def test_a_large_log_keeps_its_beginning_and_end(tmp_path):
    text = "".join(f"line {i}\n" for i in range(1000))
    (tmp_path / "window.log").write_text(text)
    (done,) = pack_folder(tmp_path, max_bytes=2000)
    kept = (tmp_path / "window.log").read_text()
    assert len(kept.encode()) <= 2000 and done.startswith("cut ")
    assert (
        kept.startswith("line 0\n") and kept.endswith("line 999\n") and "bytes of this log cut here" in kept
    )


def test_temporary_files_of_an_interrupted_write_are_removed(tmp_path):
    (tmp_path / ".window.json.abc123.tmp").write_text("{")
    (tmp_path / "window.json").write_text("{}")
    assert pack_folder(tmp_path) == ["removed the temporary file .window.json.abc123.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["window.json"]


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({f"f{i}.json": 10 for i in range(9)}, r"9 files \(limit 8\)"),
        ({"a/b/c/deep.json": 10}, "more than 2 folders down"),
        ({"bad name.json": 10}, "a name with characters"),
        ({"big.json": 3000}, "big.json is 3000 bytes"),
    ],
)
def test_what_cannot_be_packed_is_reported_and_kept(tmp_path, layout, message):
    for name, size in layout.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x" * size)
    with pytest.raises(PackError, match=message):
        pack_folder(tmp_path, max_bytes=2000)
    assert all((tmp_path / name).exists() for name in layout)  # nothing deleted


def test_main_exit_status(tmp_path, capsys):
    (tmp_path / "ok.json").write_text("{}")
    assert main([str(tmp_path)]) == 0
    for i in range(9):
        (tmp_path / f"f{i}.json").write_text("{}")
    assert main([str(tmp_path)]) == 1
    assert "not within the limits" in capsys.readouterr().err
    assert main([]) == 2


def test_packing_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, bench.pack; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
