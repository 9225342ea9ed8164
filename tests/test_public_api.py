"""The public names are a contract: code outside this repository imports them."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path

import pytest

import convoso_async
from convoso_async import (
    AuthenticationError,
    Callbacks,
    ConvosoAPIError,
    ConvosoClient,
    ConvosoError,
    InvalidParameterError,
    MalformedResponseError,
    NotFoundError,
    PaginationLimitError,
    RateLimitError,
    ServerError,
    TransportError,
)

EXPECTED_ALL = sorted(
    [
        # the contract from issue 2
        "ConvosoClient",
        "RetryPolicy",
        "Callback",
        "CallbackPage",
        "Stage",
        "Recipient",
        "ConvosoError",
        "ConvosoAPIError",
        "AuthenticationError",
        "NotFoundError",
        "InvalidParameterError",
        "RateLimitError",
        "ServerError",
        "TransportError",
        "PaginationLimitError",
        # exported beyond the contract
        "Callbacks",
        "CallbackSearch",
        "MalformedResponseError",
        # issue 5: the export's iterator, progress snapshot and plan windows
        "CallbackExport",
        "ExportProgress",
        "ExportWindow",
        "__version__",
    ]
)


def test_all_is_exactly_the_contract_sorted() -> None:
    assert convoso_async.__all__ == EXPECTED_ALL


@pytest.mark.parametrize("name", EXPECTED_ALL)
def test_every_public_name_imports(name: str) -> None:
    module = importlib.import_module("convoso_async")
    assert getattr(module, name) is not None


def test_version_is_a_string() -> None:
    assert isinstance(convoso_async.__version__, str)
    assert convoso_async.__version__.count(".") >= 1


@pytest.mark.parametrize(
    "cls",
    [
        ConvosoAPIError,
        AuthenticationError,
        NotFoundError,
        InvalidParameterError,
        RateLimitError,
        ServerError,
        TransportError,
        PaginationLimitError,
        MalformedResponseError,
    ],
)
def test_every_error_derives_from_convoso_error(cls: type[Exception]) -> None:
    assert issubclass(cls, ConvosoError)


@pytest.mark.parametrize(
    "cls",
    [AuthenticationError, NotFoundError, InvalidParameterError, RateLimitError, ServerError],
)
def test_api_failures_derive_from_convoso_api_error(cls: type[Exception]) -> None:
    assert issubclass(cls, ConvosoAPIError)


@pytest.mark.parametrize("cls", [TransportError, PaginationLimitError, MalformedResponseError])
def test_non_api_failures_are_not_api_errors(cls: type[Exception]) -> None:
    assert not issubclass(cls, ConvosoAPIError)


def test_convoso_error_is_an_exception_not_a_value_error() -> None:
    # Validation raises ValueError; a ConvosoError must not be caught by `except ValueError`.
    assert issubclass(ConvosoError, Exception)
    assert not issubclass(ConvosoError, ValueError)


def _defaults(function: Callable[..., object]) -> dict[str, object]:
    return {
        name: parameter.default
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }


def test_the_defaults_are_the_ones_the_readme_documents() -> None:
    # README, "The client": timeout=30.0, max_concurrency=8, ...; retry=RetryPolicy() is
    # taken as None in the signature (test_default_retry_policy holds what it becomes).
    assert _defaults(ConvosoClient) == {
        "auth_token": None,
        "base_url": None,
        "timeout": 30.0,
        "retry": None,
        "max_concurrency": 8,
        "rate_limit": None,
        "session": None,
    }
    # README, "Paginating" and the method list: search()'s and search_page()'s own.
    search = _defaults(Callbacks.search)
    knobs = ("page_size", "max_items", "offset", "concurrency", "truncate")
    assert {name: search[name] for name in knobs} == {
        "page_size": 5000,
        "max_items": None,
        "offset": 0,
        "concurrency": 4,
        "truncate": False,
    }
    page = _defaults(Callbacks.search_page)
    assert (page["offset"], page["limit"]) == (0, 20)


def test_py_typed_ships_in_the_package_directory() -> None:
    package_dir = Path(convoso_async.__file__).parent
    assert (package_dir / "py.typed").is_file()


def test_every_public_name_has_a_home_and_importing_the_package_loads_no_aiohttp() -> None:
    import subprocess
    import sys

    code = (
        "import sys, convoso_async, convoso_async.testing.pytest_plugin; "
        "print('aiohttp' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    for name in convoso_async.__all__:
        assert getattr(convoso_async, name) is not None
    with pytest.raises(AttributeError):
        _ = convoso_async.NoSuchName  # type: ignore[attr-defined]


def _public_callables() -> list[tuple[str, object]]:
    """Every class and function in the two packages' ``__all__``, and each class's public
    methods and dunders (``__init__``, ``__aenter__``...) up its MRO within the package."""
    import inspect

    import convoso_async.testing

    found: list[tuple[str, object]] = []
    for module in (convoso_async, convoso_async.testing):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                found.append((f"{module.__name__}.{name}", obj))
            if not inspect.isclass(obj):
                continue
            found.append((f"{module.__name__}.{name}", obj))
            for klass in obj.__mro__:
                if not klass.__module__.startswith("convoso_async"):
                    continue
                for attr, member in vars(klass).items():
                    if attr.startswith("_") and not attr.endswith("__"):
                        continue  # private
                    if isinstance(member, staticmethod | classmethod):
                        member = member.__func__
                    if isinstance(member, property):
                        member = member.fget
                    if inspect.isfunction(member):
                        found.append((f"{module.__name__}.{name}.{attr}", member))
    return found


def test_type_hints_of_every_public_callable_resolve_at_run_time() -> None:
    """pydantic, FastAPI, typeguard and cattrs call typing.get_type_hints on the
    signatures they are handed: a name imported only for type checkers, or a generic
    that cannot be subscripted at run time (``array[int]`` on 3.11), made it raise."""
    import typing

    callables = _public_callables()
    assert len(callables) > 100
    failures = []
    for name, obj in callables:
        if name == "convoso_async.CallbackExport.__init__":
            # Built by Callbacks.export(), never by the caller, and it names Callbacks,
            # whose module imports the export's: resolving it would take a run-time
            # import cycle, or one module planting names in another.
            continue
        try:
            typing.get_type_hints(obj)
        except Exception as error:  # collected, reported together
            failures.append(f"{name}: {type(error).__name__}: {error}")
    assert failures == []


@pytest.mark.parametrize("module_name", ["convoso_async", "convoso_async.testing"])
def test_type_checkers_do_not_see_the_lazy_module_getattr(module_name: str) -> None:
    # A module-level __getattr__ that mypy or pyright can see makes every name the module
    # lacks an Any: `from convoso_async import ConvosoClinet` passed `mypy --strict` in
    # user code, and so did any typo'd attribute. It must be hidden behind
    # `if not TYPE_CHECKING:` (the lazy loading at run time is tested above).
    import ast

    module = importlib.import_module(module_name)
    tree = ast.parse(Path(module.__file__ or "").read_text(encoding="utf-8"))
    visible = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "__getattr__"
    ]
    assert visible == []
    assert callable(module.__getattr__)


def _declared_minimum(package: str) -> tuple[int, ...]:
    import re
    import tomllib

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    dependencies = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    for requirement in dependencies:
        found = re.fullmatch(rf"{package}\s*>=\s*([0-9.]+)", requirement.strip())
        if found:
            return tuple(int(part) for part in found.group(1).split("."))
    raise AssertionError(f"no '{package}>=' lower bound in {dependencies}")


# The oldest release of each dependency the package needs, and why: the suite was run
# against each declared minimum (pip install 'NAME==X'), and these failed below them.
NEEDED_MINIMUMS = [
    # aiohttp before 3.10.6 raised its parser's errors (a garbled status or header line)
    # with status 0 and no message: the TransportError said nothing of what was wrong
    # (test_a_parser_error_quoting_the_echoed_form_leaks_no_token failed), and before
    # 3.10.2 the emulator's server left a multipart upload's temporary file unclosed.
    ("aiohttp", (3, 10, 6)),
    # RetryCallState.upcoming_sleep (read by the deadline's stop rule) came in 8.3.0:
    # under 8.2 every retry of a call with RetryPolicy(deadline=...) raised AttributeError.
    ("tenacity", (8, 3)),
    # orjson before 3.9.15 set no depth limit (CVE-2024-27454): an answer of a million
    # nested '[' crashed the whole process with a segmentation fault, not a
    # MalformedResponseError.
    ("orjson", (3, 9, 15)),
    # cattrs 23.2.0 is yanked (an import bug on Python 3.11), and before 24.1 the
    # converter's Optional hooks were not reached (test_converter_structures_optional_
    # fields_through_registered_hooks failed with StructureHandlerNotFoundError).
    ("cattrs", (24, 1)),
]


@pytest.mark.parametrize(("package", "needed"), NEEDED_MINIMUMS)
def test_declared_lower_bounds_are_ones_the_package_works_with(
    package: str, needed: tuple[int, ...]
) -> None:
    assert _declared_minimum(package) >= needed
