"""Fixture results with a history across commits: each change a history must show, by hand.

On machine cpu-test-2c, five runs (commits c1..c5, one day apart) of three cells, every latency with a 1%
interval (made-up numbers; they never reach results/):

- bisenetv2 360x480: 20 ms, 20.2, 22.6 (+12% but with a wide interval: within noise), 20.1, then 26 ms at c5
  (+29%, intervals disjoint: a regression `segbench compare` flags);
- fastscnn 360x480: 5 ms throughout, but its MACs grow 30% at c4 (a structural change, flagged);
- enet 360x480: 8 ms, then out of memory at c3 (a cell that stopped working, flagged), 8 ms again after.

And one run of bisenetv2 on gpu-test (a cell measured once).
"""

from __future__ import annotations

from dataclasses import replace

from bench.records import from_dict
from tests.reports.fixtures import bench

COMMITS = ["c1", "c2", "c3", "c4", "c5"]
BISENET = [20.0, 20.2, 22.6, 20.1, 26.0]


def _latency(median: float, rel: float = 0.01) -> dict:
    return {"median": median, "n": 40, "p10": median * 0.98, "p90": median * 1.03,
            "ci95": [median * (1 - rel), median * (1 + rel)]}  # fmt: skip


def _run(model, day, latency, *, macs=1e9, rel=0.01, status="ok", error=None, **extra):
    record = bench(
        model, latency, macs, status=status, error=error, timestamp=f"2026-01-{day:02d}T00:00:00+00:00",
        commit=f"{COMMITS[day - 1]}00000000", **extra,
    )  # fmt: skip
    if status == "ok":
        record["latency_ms"] = _latency(latency, rel)
    return record


def records() -> list[dict]:
    out = []
    for day in range(1, 6):
        out.append(_run("bisenetv2", day, BISENET[day - 1], macs=25e9, rel=0.15 if day == 3 else 0.01))
        out.append(_run("fastscnn", day, 5.0, macs=1.3e9 if day >= 4 else 1e9))
        if day == 3:
            out.append(_run("enet", day, None, status="oom", error="out of memory"))
        else:
            out.append(_run("enet", day, 8.0, macs=4e9))
    out.append(_run("bisenetv2", 5, 4.0, macs=25e9, device="cuda", machine="gpu-test", precision="fp16"))
    return out


def typed(recs=None, source="history.jsonl"):
    return [replace(from_dict(r), source=source) for r in (recs or records())]
