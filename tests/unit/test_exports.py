"""The public surface: every exported name imports, is sorted, documented and complete."""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType

import pytest

import burrowmq
from burrowmq import exceptions

pytestmark = pytest.mark.unit

PACKAGES = [
    "burrowmq",
    "burrowmq.amqp",
    "burrowmq.asyncapi",
    "burrowmq.framework",
    "burrowmq.memory",
    "burrowmq.routing",
    "burrowmq.rpc",
    "burrowmq.sync",
    "burrowmq.testing",
    "burrowmq.topology",
]

EXPORTED = [
    (package, name) for package in PACKAGES for name in importlib.import_module(package).__all__
]

EXCEPTION_CLASSES = [
    obj
    for _, obj in inspect.getmembers(exceptions, inspect.isclass)
    if issubclass(obj, BaseException) and obj.__module__ == exceptions.__name__
]


# Known gaps, each a bug to fix (then drop its entry): strict xfail flags the fix.
MISSING_AT_TOP_LEVEL: dict[str, str] = {}


def _module(package: str) -> ModuleType:
    return importlib.import_module(package)


def _own_docstring(obj: object) -> str | None:
    """The docstring written for ``obj`` itself, not inherited or generated."""
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    if not isinstance(doc, str):
        return None
    name = getattr(obj, "__name__", "")
    if doc.startswith(f"{name}("):  # the signature a dataclass writes when there is none
        return None
    return doc.strip() or None


class TestAll:
    """Each package's ``__all__``."""

    @pytest.mark.parametrize("package", PACKAGES)
    def test_all_is_a_list_of_strings(self, package: str) -> None:
        """``__all__`` is a list of strings."""
        names = _module(package).__all__
        assert isinstance(names, list)
        assert all(isinstance(name, str) for name in names)

    @pytest.mark.parametrize("package", PACKAGES)
    def test_all_is_sorted(self, package: str) -> None:
        """``__all__`` is in sorted order."""
        names = _module(package).__all__
        assert names == sorted(names)

    @pytest.mark.parametrize("package", PACKAGES)
    def test_all_has_no_duplicates(self, package: str) -> None:
        """No name appears twice in ``__all__``."""
        names = _module(package).__all__
        assert len(names) == len(set(names))

    @pytest.mark.parametrize(("package", "name"), EXPORTED)
    def test_exported_name_imports(self, package: str, name: str) -> None:
        """``from <package> import <name>`` works for every name in ``__all__``."""
        namespace: dict[str, object] = {}
        exec(f"from {package} import {name}", namespace)
        assert namespace[name] is getattr(_module(package), name)

    @pytest.mark.parametrize(("package", "name"), EXPORTED)
    def test_exported_name_has_a_docstring(self, package: str, name: str) -> None:
        """Every exported name carries its own docstring."""
        assert _own_docstring(getattr(_module(package), name)), f"{package}.{name}"

    def test_star_import_gives_exactly_all(self) -> None:
        """``from burrowmq import *`` binds exactly the names in ``__all__``."""
        namespace: dict[str, object] = {}
        exec("from burrowmq import *", namespace)
        namespace.pop("__builtins__", None)
        assert sorted(namespace) == sorted(burrowmq.__all__)


class TestCompleteness:
    """Nothing public is missing from the top-level ``__all__``."""

    @pytest.mark.parametrize(
        "name",
        [
            pytest.param(
                name,
                marks=[pytest.mark.xfail(strict=True, reason=MISSING_AT_TOP_LEVEL[name])]
                if name in MISSING_AT_TOP_LEVEL
                else [],
            )
            for name in exceptions.__all__
        ],
    )
    def test_public_name_of_exceptions_is_exported_at_top_level(self, name: str) -> None:
        """Every public class or function of ``burrowmq.exceptions`` is in ``burrowmq.__all__``."""
        obj = getattr(exceptions, name)
        assert inspect.isclass(obj) or inspect.isfunction(obj)
        assert name in burrowmq.__all__
        assert getattr(burrowmq, name) is obj

    @pytest.mark.parametrize(
        "name",
        sorted(
            name
            for name, obj in vars(exceptions).items()
            if not name.startswith("_")
            and (inspect.isclass(obj) or inspect.isfunction(obj))
            and obj.__module__ == exceptions.__name__
        ),
    )
    def test_public_definition_of_exceptions_is_in_its_all(self, name: str) -> None:
        """Every public class or function defined in ``burrowmq.exceptions`` is in its ``__all__``."""
        assert name in exceptions.__all__

    def test_depends_is_exported(self) -> None:
        """``Depends`` (the second wave's dependency marker) is importable from the top level."""
        from burrowmq.routing.depends import Depends

        assert "Depends" in burrowmq.__all__
        assert burrowmq.Depends is Depends

    @pytest.mark.parametrize(
        "name",
        ["Batch", "BatchError", "BytesCodec", "Codec", "JsonCodec", "MsgPackCodec", "TextCodec"],
    )
    def test_second_wave_names_are_exported(self, name: str) -> None:
        """``from burrowmq import Batch`` (and the codecs, and BatchError) works, as DESIGN names them."""
        assert name in burrowmq.__all__
        namespace: dict[str, object] = {}
        exec(f"from burrowmq import {name}", namespace)
        assert namespace[name] is getattr(burrowmq, name)

    def test_batch_error_is_outside_the_error_tree(self) -> None:
        """``BatchError`` is a handler signal, like ``Reject``, not a ``BurrowError``."""
        assert not issubclass(burrowmq.BatchError, burrowmq.BurrowError)

    def test_reject_is_exported(self) -> None:
        """``Reject`` is part of the public surface even though it is not an error."""
        assert "Reject" in burrowmq.__all__


class TestErrorTree:
    """Every error derives from ``BurrowError``; signals do not."""

    def test_exceptions_module_defines_exceptions(self) -> None:
        """The error module has a non-trivial set of exception classes to check."""
        assert exceptions.BurrowError in EXCEPTION_CLASSES
        assert len(EXCEPTION_CLASSES) > 10

    @pytest.mark.parametrize("cls", EXCEPTION_CLASSES, ids=lambda cls: cls.__name__)
    def test_every_exception_derives_from_burrow_error(self, cls: type[BaseException]) -> None:
        """Each exception class in ``burrowmq.exceptions`` is a ``BurrowError``."""
        assert issubclass(cls, burrowmq.BurrowError)

    def test_burrow_error_is_an_exception(self) -> None:
        """``BurrowError`` derives from ``Exception`` so ordinary handlers catch it."""
        assert issubclass(burrowmq.BurrowError, Exception)

    def test_reject_is_outside_the_error_tree(self) -> None:
        """``Reject`` is an ``Exception`` but not a ``BurrowError``."""
        assert issubclass(burrowmq.Reject, Exception)
        assert not issubclass(burrowmq.Reject, burrowmq.BurrowError)

    def test_except_burrow_error_does_not_swallow_reject(self) -> None:
        """``except BurrowError`` lets a raised ``Reject`` through."""

        def handler() -> None:
            try:
                raise burrowmq.Reject("bad order")
            except burrowmq.BurrowError:  # pragma: no cover - must not catch
                pytest.fail("Reject was caught as a BurrowError")

        with pytest.raises(burrowmq.Reject):
            handler()

    @pytest.mark.parametrize("cls", EXCEPTION_CLASSES, ids=lambda cls: cls.__name__)
    def test_every_exception_is_drawn_in_the_module_docstring(
        self, cls: type[BaseException]
    ) -> None:
        """The tree drawn in the module docstring names every exception class."""
        assert exceptions.__doc__ is not None
        drawn = {
            line.strip(" │├└─").split(" ")[0]
            for line in exceptions.__doc__.splitlines()
            if line.startswith("    ")
        }
        assert cls.__name__ in drawn
