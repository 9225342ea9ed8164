"""The pytest plugin (fixture + marker, strict and auto mode), the CLI, and import hygiene."""

from __future__ import annotations

import ast
import asyncio
import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import aiohttp
import orjson
import pytest

import convoso_async.testing as testing
from convoso_async.testing import ConvosoEmulator, _emulator
from convoso_async.testing.__main__ import main
from convoso_async.testing._store import MAX_ROWS

PACKAGE = Path(testing.__file__).parent


@pytest.mark.convoso_emulator(records=25, seed=4, live_dialect=True, auth_token="tok")
async def test_fixture_honours_the_marker(convoso_emulator: ConvosoEmulator) -> None:
    assert isinstance(convoso_emulator, ConvosoEmulator)
    assert (len(convoso_emulator.store), convoso_emulator.auth_token) == (25, "tok")
    assert convoso_emulator.live_dialect
    async with (
        aiohttp.ClientSession() as http,
        http.post(convoso_emulator.url("search"), data={"auth_token": "tok"}) as response,
    ):
        assert (await response.json())["data"]["total"] == "25"


async def test_fixture_defaults(convoso_emulator: ConvosoEmulator) -> None:
    assert len(convoso_emulator.store) == 0
    assert convoso_emulator.base_url.startswith("http://127.0.0.1:")


PLUGIN_USER_TESTS = """
import aiohttp
import pytest


@pytest.mark.asyncio
@pytest.mark.convoso_emulator(records=12, seed=2)
async def test_uses_emulator(convoso_emulator):
    async with aiohttp.ClientSession() as http:
        async with http.post(
            convoso_emulator.url("search"), data={"auth_token": convoso_emulator.auth_token}
        ) as response:
            assert (await response.json())["total"] == 12


@pytest.mark.asyncio
async def test_fresh_emulator_per_test(convoso_emulator):
    assert len(convoso_emulator.store) == 0


@pytest.mark.convoso_emulator(3)
def test_positional_marker_is_refused(convoso_emulator):
    pass
"""


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_plugin_in_a_user_project(tmp_path: Path, mode: str) -> None:
    (tmp_path / "test_user.py").write_text(PLUGIN_USER_TESTS)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-o", f"asyncio_mode={mode}", "-p", "no:cacheprovider",
         "-o", "asyncio_default_fixture_loop_scope=function",
         "--strict-markers", "-W", "error", "-rA", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    out = result.stdout
    assert "2 passed" in out, out + result.stderr
    assert re.search(r"ERROR .*test_positional_marker_is_refused", out), out
    assert "keyword arguments only" in out
    markers = subprocess.run(
        [sys.executable, "-m", "pytest", "--markers"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    ).stdout  # fmt: skip
    assert "@pytest.mark.convoso_emulator(**kwargs)" in markers


def test_the_readme_plugin_example_runs_as_written_in_strict_mode(tmp_path: Path) -> None:
    # pytest-asyncio's default mode refuses an unmarked async test; the example had no mark.
    readme = (PACKAGE.parent.parent / "README.md").read_text()
    examples = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    (example,) = [e for e in examples if "async def test_export(convoso_emulator)" in e]
    (tmp_path / "test_readme.py").write_text(example)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-o", "asyncio_mode=strict", "-p", "no:cacheprovider",
         "-o", "asyncio_default_fixture_loop_scope=function", "-W", "error", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_the_emulator_never_imports_the_client() -> None:
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                assert node.level <= 1, f"{path.name} imports from the parent package"
                assert not module.startswith("convoso_async._"), f"{path.name}: {module}"
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("convoso_async._") for a in node.names)


def test_plugin_module_imports_only_pytest() -> None:
    tree = ast.parse((PACKAGE / "pytest_plugin.py").read_text())
    top_level = {
        alias.name.split(".")[0]
        for node in tree.body
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module != "__future__"
    }
    assert top_level <= {"pytest", "collections", "typing"}
    code = (
        "import sys, convoso_async.testing.pytest_plugin\n"
        "print(sorted(m for m in sys.modules if m.startswith('convoso_async.testing.')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert loaded.strip() == "['convoso_async.testing.pytest_plugin']"


def test_package_exports_are_lazy_and_complete() -> None:
    assert set(testing.__all__) <= set(dir(testing))
    for name in testing.__all__:
        assert getattr(testing, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = testing.Nope  # type: ignore[attr-defined]


async def test_cli_as_a_process_stops_on_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "convoso_async.testing", "--port", "0", "--records", "40",
        "--seed", "3", "--live-dialect", "--latency-ms", "5", "--auth-token", "cli-token",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        base_url = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        token = (await process.stdout.readline()).decode()
        assert token == "auth_token: cli-token\n"
        url = base_url.removeprefix("base_url: ").strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", url)
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{url}/callbacks/search", data={"auth_token": "cli-token"}) as response,
        ):
            body = await response.json()
        assert body["data"]["total"] == "40"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
        rest = (await process.stdout.read()).decode()
        assert "Serving 40 callbacks (seed 3, live dialect)" in rest
        assert rest.endswith("Emulator stopped.\n")
    finally:
        if process.returncode is None:  # pragma: no cover - only when an assertion failed
            process.kill()
            await process.wait()


class _Announcing(io.StringIO):
    """A stdout that tells a waiting thread once the base URL has been printed."""

    def __init__(self) -> None:
        super().__init__()
        self.ready = threading.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        if "auth_token:" in self.getvalue():
            self.ready.set()
        return written


def test_cli_main_in_process_stops_on_sigint(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _Announcing()
    monkeypatch.setattr(sys, "stdout", out)
    seen: dict[str, object] = {}

    def client() -> None:
        try:
            assert out.ready.wait(30)
            url = re.search(r"base_url: (\S+)", out.getvalue())[1]  # type: ignore[index]
            form = urllib.parse.urlencode({"auth_token": "emulator-token", "limit": "2"})
            with urllib.request.urlopen(f"{url}/callbacks/search", form.encode(), 10) as reply:
                seen["body"] = orjson.loads(reply.read())
        finally:
            os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=client)
    thread.start()
    code = main(["--port", "0", "--records", "30", "--seed", "9"])
    thread.join()
    assert code == 0
    assert seen["body"]["total"] == 30  # type: ignore[index]
    assert len(seen["body"]["results"]) == 2  # type: ignore[index]
    assert out.getvalue().endswith("Emulator stopped.\n")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize(
    "argv",
    [["--records", "-1"], ["--days", "0"], ["--port", "x"], ["--port", "65536"], ["--port", "-1"]],
)
def test_cli_rejects_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "convoso-async emulator" in capsys.readouterr().err


def test_cli_refuses_more_records_than_the_store_holds_before_building_any(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A usage error (2), not minutes of building then a ValueError traceback."""

    def build_store(*args: object, **kwargs: object) -> None:
        raise AssertionError("started building a store it cannot hold")

    monkeypatch.setattr(_emulator, "build_store", build_store)
    with pytest.raises(SystemExit) as exited:
        main(["--records", str(MAX_ROWS + 1), "--port", "0"])
    assert exited.value.code == 2
    assert f"--records must be 0-{MAX_ROWS}" in capsys.readouterr().err


def _run_on_a_port_in_use() -> int:
    """The emulator CLI's exit code when its port is taken by a listening socket."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        return main(["--port", str(port), "--records", "0"])


def test_cli_port_in_use_is_one_line_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run_on_a_port_in_use() == 3
    err = capsys.readouterr().err
    assert err.startswith("error: OSError: ")
    assert "address already in use" in err
    assert err.count("\n") == 1


def test_module_level_code_runs_under_coverage() -> None:
    """The plugin and package load before coverage starts; re-run their module code."""
    import importlib

    import convoso_async.testing.pytest_plugin as plugin

    assert importlib.reload(plugin).MARKER == "convoso_emulator"
    assert importlib.reload(testing).ConvosoEmulator is ConvosoEmulator


@pytest.mark.convoso_emulator(5)
def test_marker_arguments_are_keywords_only(request: pytest.FixtureRequest) -> None:
    from convoso_async.testing.pytest_plugin import emulator_kwargs

    with pytest.raises(pytest.UsageError, match="keyword arguments only"):
        emulator_kwargs(request.node)


@pytest.mark.convoso_emulator(records=3, seed=1)
def test_marker_keywords(request: pytest.FixtureRequest) -> None:
    from convoso_async.testing.pytest_plugin import emulator_kwargs

    assert emulator_kwargs(request.node) == {"records": 3, "seed": 1}


@pytest.fixture
def windows_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Event loops as on Windows (the Proactor loop): no add/remove_signal_handler."""
    loop = asyncio.new_event_loop()  # of the class asyncio.run() builds
    loop.close()
    for name in ("add_signal_handler", "remove_signal_handler"):
        monkeypatch.setattr(type(loop), name, getattr(asyncio.AbstractEventLoop, name))


@pytest.mark.usefixtures("windows_loop")
def test_cli_port_in_use_is_one_line_exit_3_on_windows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The cleanup's remove_signal_handler raised NotImplementedError over the OSError:
    # a traceback instead of the one-line error.
    assert _run_on_a_port_in_use() == 3
    err = capsys.readouterr().err
    assert err.startswith("error: OSError: ")
    assert err.count("\n") == 1


@pytest.mark.usefixtures("windows_loop")
def test_cli_main_stops_on_ctrl_c_on_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without loop signal handlers, Ctrl-C cancels the serving task (asyncio.run's own
    # SIGINT handler); the cleanup's remove_signal_handler then raised NotImplementedError.
    class CtrlC(io.StringIO):
        """A stdout that presses Ctrl-C once the server has announced itself."""

        def write(self, text: str) -> int:
            written = super().write(text)
            if text.startswith("Serving"):
                signal.raise_signal(signal.SIGINT)  # on this (the main) thread, at once
            return written

    out = CtrlC()
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["--port", "0", "--records", "3"]) == 0
    assert out.getvalue().endswith("Emulator stopped.\n")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
