"""Sessions: `nox -s bench` (the default CPU sweep + HTML report), `nox -s tests`, `nox -s lint`,
`nox -s regress` (benchmark suite vs the committed baseline), `nox -s baseline` (rewrite the baselines) and
`nox -s gpu` (the prepared GPU window: gpu/run.sh).

Virtualenvs are reused between runs, so torch is installed once per session venv, not on every run.
Pass extra arguments after `--`: `nox -s tests -- -m "not slow"`, `nox -s bench -- --models bisenetv2`.
"""

import os
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = False


def _install(session: nox.Session, extras: str = "") -> None:
    # Editable, so that in a reused venv an edited checkout is what runs, without reinstalling.
    session.install("-e", f".{extras}")


@nox.session
def bench(session: nox.Session) -> None:
    """Run the embedded default sweep (quick profile, CPU), then render the HTML leaderboard."""
    _install(session)
    args = session.posargs or ["--profile", "quick", "--device", "cpu"]
    session.run("segbench", "run", *args)
    # Accuracy: the models trained here on CamVid test and the authors' SINet on humanseg_mini; skips with a
    # message when ../shared/data is absent.
    session.run("segbench", "eval", "--suite", "default")
    session.run("segbench", "report", "results", "--out", "build/report")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite; tests needing ../shared/data or a CUDA GPU skip with a message when absent."""
    _install(session, "[dev]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")


# The pytest-benchmark suite (benchmarks/, outside pytest's testpaths): per-round data is kept so that
# `segbench compare` can put an order-statistic interval on each median.
BENCHMARK_ARGS = ("benchmarks", "-p", "no:cacheprovider", "--benchmark-save-data", "--benchmark-sort=name")
BASELINES = Path("results/baselines")


def _machine(session: nox.Session) -> str:
    """This machine's slug (bench.env.machine_slug), asked of the session's Python, which has torch."""
    code = "from bench.env import machine_slug; print(machine_slug('cpu'))"
    return session.run("python", "-c", code, silent=True).strip()


@nox.session
def regress(session: nox.Session) -> None:
    """Benchmark suite -> build/benchmarks.json, compared with this machine's committed baseline.

    Latency regressions fail the session on the baseline's own machine; with no baseline for this machine it
    compares with another machine's, where latency is not comparable and only reported. Extra arguments go
    to `segbench compare` (e.g. `-- --latency-report-only`). The table is also in build/regress.md.
    """
    _install(session, "[dev]")
    Path("build").mkdir(exist_ok=True)
    out = "build/benchmarks.json"
    session.run("pytest", *BENCHMARK_ARGS, f"--benchmark-json={out}")
    machine = _machine(session)
    base = BASELINES / machine / "benchmarks.json"
    extra = list(session.posargs)
    if not base.exists():
        others = sorted(BASELINES.glob("*/benchmarks.json"))
        if not others:
            session.error(f"no benchmark baseline under {BASELINES}: create one with `nox -s baseline`")
        base = others[0]
        session.warn(f"no benchmark baseline for {machine}: comparing with {base}, latency report-only")
        extra.append("--latency-report-only")
    session.run("segbench", "compare", str(base), out, "--markdown", "build/regress.md", *extra)


@nox.session
def baseline(session: nox.Session) -> None:
    """Rewrite the baselines on purpose (then commit them): the structure of every registered model
    (results/baselines/structure.json) and this machine's benchmark suite (<machine>/benchmarks.json)."""
    _install(session, "[dev]")
    session.run("segbench", "baseline", "--update")
    Path("build").mkdir(exist_ok=True)
    fresh = Path("build/benchmarks-baseline.json")
    session.run("pytest", *BENCHMARK_ARGS, f"--benchmark-json={fresh}")
    target = BASELINES / _machine(session) / "benchmarks.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(fresh, target)  # whole or not at all
    session.log(f"baselines written under {target.parent}; commit them with the change they record")


@nox.session(python=False)
def gpu(session: nox.Session) -> None:
    """The GPU window (issue 18): gpu/run.sh on this machine's own Python, in no virtualenv, since a GPU
    machine lent for minutes has torch but no network. Arguments go to `segbench gpu`: `nox -s gpu -- --plan`
    sizes the window anywhere; `nox -s gpu -- --out DIR` runs it (see the README, "GPU window")."""
    session.run("bash", "gpu/run.sh", *session.posargs, external=True)
