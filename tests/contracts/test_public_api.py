"""The public surface of the packages other code imports from (httpx-style ``__all__`` checks)."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path
from types import ModuleType

import pytest

import synapsex.contracts
import synapsex.runtime
from synapsex.contracts import ContractError

PACKAGES = ["synapsex.contracts", "synapsex.runtime"]


def package(name: str) -> ModuleType:
    return importlib.import_module(name)


def imported_names(module: ModuleType) -> set[str]:
    """The names the package ``__init__`` binds by ``import``/``from … import``."""
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            names.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update((alias.asname or alias.name).partition(".")[0] for alias in node.names)
    return names


def submodules(module: ModuleType) -> list[ModuleType]:
    return [
        importlib.import_module(f"{module.__name__}.{info.name}")
        for info in pkgutil.iter_modules(module.__path__)
    ]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_without_duplicates(name):
    exported = package(name).__all__
    assert exported == sorted(exported)
    assert len(set(exported)) == len(exported)


@pytest.mark.parametrize("name", PACKAGES)
def test_every_name_in_all_exists(name):
    module = package(name)
    missing = [attr for attr in module.__all__ if not hasattr(module, attr)]
    assert missing == []


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_exactly_the_public_names_the_package_imports(name):
    module = package(name)
    public_imports = {n for n in imported_names(module) if not n.startswith("_")}
    assert set(module.__all__) == public_imports


@pytest.mark.parametrize("name", PACKAGES)
def test_star_import_gives_exactly_all(name):
    namespace: dict[str, object] = {}
    exec(f"from {name} import *", namespace)
    namespace.pop("__builtins__")
    assert set(namespace) == set(package(name).__all__)


@pytest.mark.parametrize("name", PACKAGES)
def test_exported_classes_and_functions_are_defined_in_the_package(name):
    module = package(name)
    foreign = [
        attr
        for attr in module.__all__
        if (inspect.isclass(obj := getattr(module, attr)) or inspect.isfunction(obj))
        and not (obj.__module__ == name or obj.__module__.startswith(f"{name}."))
    ]
    assert foreign == []


@pytest.mark.parametrize("name", PACKAGES)
def test_classes_that_claim_the_package_as_their_module_are_exported(name):
    module = package(name)
    claimed = {
        obj.__name__
        for sub in submodules(module)
        for obj in vars(sub).values()
        if inspect.isclass(obj) and obj.__module__ == name and not obj.__name__.startswith("_")
    }
    assert claimed  # the check is not vacuous
    assert claimed <= set(module.__all__)


def test_every_contract_error_is_exported_from_contracts():
    errors = importlib.import_module("synapsex.contracts.errors")
    defined = {
        obj.__name__
        for obj in vars(errors).values()
        if inspect.isclass(obj) and issubclass(obj, ContractError)
    }
    assert len(defined) == 10
    assert defined <= set(synapsex.contracts.__all__)


def test_runtime_errors_are_exported_from_runtime():
    errors = importlib.import_module("synapsex.runtime.errors")
    defined = {
        obj.__name__
        for obj in vars(errors).values()
        if inspect.isclass(obj)
        and issubclass(obj, Exception)
        and obj.__module__ == "synapsex.runtime"
    }
    assert defined == {"AskCycle", "UnknownService"}
    assert defined <= set(synapsex.runtime.__all__)


def test_message_bases_and_helpers_are_exported_from_contracts():
    assert {
        "Message",
        "Reply",
        "Page",
        "secret_field",
        "message_class",
        "message_type_name",
    } <= set(synapsex.contracts.__all__)
