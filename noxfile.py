"""Sessions: ``tests``, ``lint``, ``typecheck`` run in CI; ``bench`` and ``chaos`` on demand."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_venv = "yes"
nox.options.default_venv_backend = "venv"


@nox.session
def tests(session: nox.Session) -> None:
    """Unit and emulator integration tests, with coverage (fails under 90%).

    ``coverage run`` rather than pytest-cov: our own pytest plugin is loaded through an
    entry point before pytest-cov starts measuring, which would hide module-level lines.
    """
    session.install("-e", ".[test]")
    session.run("coverage", "erase")
    session.run("coverage", "run", "-m", "pytest", "-m", "not chaos", *session.posargs)
    session.run("coverage", "report")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", ".[test]", "mypy", "pyarrow-stubs")
    session.run("mypy", "--strict", "convoso_async")


@nox.session
def chaos(session: nox.Session) -> None:
    """The long fault-injection runs (minutes, not seconds)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "chaos", "-p", "no:cacheprovider", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark in benchmarks/, each printing figures and ratios to a same-run baseline."""
    session.install("-e", ".[dev]")
    import pathlib

    for script in sorted(pathlib.Path("benchmarks").glob("bench_*.py")):
        session.run("python", str(script), *session.posargs)
