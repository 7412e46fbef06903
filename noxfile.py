"""Sessions: `nox -s bench` (the default CPU sweep + HTML report), `nox -s tests`, `nox -s lint`.

Virtualenvs are reused between runs, so torch is installed once per session venv, not on every run.
Pass extra arguments after `--`: `nox -s tests -- -m "not slow"`, `nox -s bench -- --models bisenetv2`.
"""

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
