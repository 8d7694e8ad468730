"""Depends: handler parameters filled by factories, once per delivery.

A parameter annotated ``Annotated[T, Depends(factory)]`` receives what ``factory``
returns. A factory is a plain function, an async function, or a generator (sync or
async) that yields once: what it yields is the value, and what follows the ``yield``
runs after the handler, also when the handler (or a later dependency) failed; the
exception is thrown in at the ``yield``, as in FastAPI, and cannot be swallowed there
(the attempt still fails). Teardowns run in the reverse order of their setups, before
the delivery is settled.

A factory's own parameters are filled the same way: other dependencies
(``Annotated[X, Depends(other)]``), a parameter annotated :class:`~burrowmq.Message`,
one annotated :class:`~burrowmq.App` (the running app, whose ``lifespan_state`` holds
what the lifespan yielded) and the ``{name}`` words of the route's routing key, by name.
Each factory runs once per attempt of a delivery, however often the graph names it,
unless it is marked ``Depends(factory, use_cache=False)``. Sync factories run on the
event loop: keep them quick.

The graph is inspected once, when the route is made (cycles and parameters nothing can
fill are :class:`~burrowmq.ConfigurationError` then, naming the handler and the
parameter), and bound to the running app and its ``dependency_overrides`` once, when
the app starts. A delivery walks the bound plan; nothing is inspected per message, and
routes without dependencies do none of this.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from burrowmq.exceptions import ConfigurationError
from burrowmq.framework.message import Message

__all__ = ["DependencyPlan", "Depends", "Injection", "RunningApp", "depends_of"]

Hints = Callable[[Callable[..., Any], str], tuple[dict[str, Any], dict[str, Any]]]
"""``hints(func, name)``: ``func``'s resolved annotations, plain and with ``Annotated``."""

PAYLOAD: Final = ":payload"
MESSAGE: Final = ":message"
APP: Final = ":app"

Keyed = Callable[[Mapping[str, Any], Any, Message], Awaitable[Any]]
"""``keyed(words, value, message)``: a handler call with its dependencies solved."""

_FUNCTION, _COROUTINE, _GENERATOR, _ASYNC_GENERATOR = "function", "async", "gen", "agen"
_GENERATORS = (_GENERATOR, _ASYNC_GENERATOR)
_NO_STACK: Any = None  # a graph without generators tears nothing down


class Depends:
    """Marks a parameter as filled by a factory: ``db: Annotated[Db, Depends(get_db)]``.

    Args:
        factory: a function, async function, generator or async generator (yielding
            once) whose parameters burrowmq fills in turn (see
            :mod:`burrowmq.routing.depends`).
        use_cache: ``False`` runs the factory for each parameter naming it, instead of
            once per delivery.

    Raises:
        ConfigurationError: ``factory`` is not callable.
    """

    __slots__ = ("factory", "use_cache")

    def __init__(self, factory: Callable[..., Any], *, use_cache: bool = True) -> None:
        if not callable(factory):
            raise ConfigurationError(f"Depends() takes a callable factory, got {factory!r}")
        self.factory = factory
        self.use_cache = use_cache

    def __repr__(self) -> str:
        cache = "" if self.use_cache else ", use_cache=False"
        return f"Depends({_name(self.factory)}{cache})"


class RunningApp:
    """The base of :class:`~burrowmq.App`: a dependency parameter annotated ``App``
    receives the running app (with the test client, the copy it runs)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Injection:
    """What a plan is bound to when the app starts.

    Attributes:
        app: the running app, for parameters annotated ``App``.
        overrides: factories to call in place of others (``{get_db: fake_db}``).
    """

    app: RunningApp | None = None
    overrides: Mapping[Callable[..., Any], Callable[..., Any]] = field(default_factory=dict)


def depends_of(annotated: Any, default: Any) -> Depends | None:
    """The :class:`Depends` of a parameter: in its ``Annotated`` metadata, or its default."""
    for marker in getattr(annotated, "__metadata__", ()):
        if isinstance(marker, Depends):
            return marker
    return default if isinstance(default, Depends) else None


def _source(
    param: inspect.Parameter, plain: Any, extra: Any, key_names: tuple[str, ...]
) -> str | Depends | None:
    """Where a parameter's value comes from (a pick key, or a dependency), if anywhere."""
    dep = depends_of(extra, param.default)
    if dep is not None:
        return dep
    if plain is Message:
        return MESSAGE
    if isinstance(plain, type) and issubclass(plain, RunningApp):
        return APP
    if param.name in key_names:
        return param.name
    return None


@dataclass(frozen=True, slots=True)
class _Node:
    """One callable of the graph, inspected: how to call it and with what."""

    func: Callable[..., Any]
    name: str
    kind: str
    positional: tuple[str | Depends, ...]
    keywords: tuple[tuple[str, str | Depends], ...]
    key_types: Mapping[str, Any]

    @property
    def sources(self) -> tuple[str | Depends, ...]:
        return self.positional + tuple(source for _, source in self.keywords)


def _kind(factory: Callable[..., Any]) -> str:
    target = factory if inspect.isfunction(factory) or inspect.ismethod(factory) else None
    if target is None and not isinstance(factory, type):
        target = getattr(factory, "__call__", None)  # noqa: B004 - a callable object's method
    if target is None:
        return _FUNCTION
    if inspect.isasyncgenfunction(target):
        return _ASYNC_GENERATOR
    if inspect.iscoroutinefunction(target):
        return _COROUTINE
    if inspect.isgeneratorfunction(target):
        return _GENERATOR
    return _FUNCTION


def _name(func: object) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', func)!s}"


def inspect_node(
    func: Callable[..., Any],
    *,
    handler: str,
    key_names: tuple[str, ...],
    hints: Hints,
    sources: Mapping[str, str] | None = None,
) -> _Node:
    """Inspect one callable of the graph.

    Args:
        func: the factory (or the handler, the graph's root).
        handler: the handler's name, for errors.
        key_names: the ``{name}`` words of the route's routing key.
        hints: resolves ``func``'s annotations.
        sources: parameters already placed by the caller (the handler's payload).

    Raises:
        ConfigurationError: a parameter nothing can fill.
    """
    name = _name(func)
    target = func.__init__ if isinstance(func, type) else func  # type: ignore[misc]
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"handler {handler}: cannot read the signature of dependency {name}: {exc}"
        ) from None
    plain, extra = hints(target, name)
    positional: list[str | Depends] = []
    keywords: list[tuple[str, str | Depends]] = []
    key_types: dict[str, Any] = {}
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = plain.get(param.name, inspect.Parameter.empty)
        source: str | Depends | None = (sources or {}).get(param.name)
        if source is None:
            source = _source(param, annotation, extra.get(param.name), key_names)
        if source is None:
            if param.default is not inspect.Parameter.empty:
                continue
            raise ConfigurationError(
                f"handler {handler}: dependency {name} has parameter {param.name!r} that "
                "burrowmq cannot fill: a dependency takes other dependencies "
                "(Annotated[T, Depends(factory)]), parameters annotated Message or App, "
                "and the {name} words of the route's routing key"
            )
        if isinstance(source, str) and source in key_names and param.name == source:
            key_types[source] = str if annotation is inspect.Parameter.empty else annotation
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            positional.append(source)
        else:
            keywords.append((param.name, source))
    return _Node(func, name, _kind(func), tuple(positional), tuple(keywords), key_types)


@dataclass(frozen=True, slots=True)
class DependencyPlan:
    """A handler's dependency graph, inspected when its route is made.

    Attributes:
        root: the handler itself, as the graph's root.
        nodes: every factory of the graph, inspected, by factory.
        key_names: the route's ``{name}`` words.
        hints: how annotations were resolved (for overrides, at bind).
    """

    root: _Node
    nodes: Mapping[Callable[..., Any], _Node]
    key_names: tuple[str, ...]
    hints: Hints = field(repr=False)

    @classmethod
    def build(
        cls,
        root: _Node,
        *,
        key_names: tuple[str, ...],
        hints: Hints,
    ) -> DependencyPlan:
        """Inspect every factory ``root`` reaches.

        Raises:
            ConfigurationError: a cycle, or a parameter nothing can fill.
        """
        nodes: dict[Callable[..., Any], _Node] = {}
        _walk(root, nodes, key_names, hints, root.name, (), {})
        return cls(root, nodes, key_names, hints)

    @property
    def wants_message(self) -> bool:
        """Whether any callable of the graph takes the delivery's Message."""
        return any(MESSAGE in node.sources for node in (self.root, *self.nodes.values()))

    @property
    def key_types(self) -> dict[str, Any]:
        """The annotations the graph gives routing-key words (the handler's first)."""
        types: dict[str, Any] = {}
        for node in (self.root, *self.nodes.values()):
            for key, kind in node.key_types.items():
                types.setdefault(key, kind)
        return types

    def bind(self, injection: Injection) -> tuple[Keyed, bool]:
        """The handler's call with its graph solved, ``keyed(words, value, message)``,
        and whether it takes the delivery's Message (an override may, where the
        factory it replaces did not).

        Raises:
            ConfigurationError: an override makes a cycle or has a parameter nothing
                can fill.
        """
        nodes = dict(self.nodes)
        overrides = injection.overrides
        if overrides:
            _walk(self.root, nodes, self.key_names, self.hints, self.root.name, (), overrides)
        root = _compile(self.root, None, True, nodes, overrides)
        reachable = _reachable(self.root, nodes, overrides)
        wants = MESSAGE in self.root.sources or any(MESSAGE in nodes[f].sources for f in reachable)
        app = injection.app

        if not any(nodes[f].kind in _GENERATORS for f in reachable):

            async def direct(words: Mapping[str, Any], value: Any, message: Message) -> Any:
                pick = {**words, PAYLOAD: value, MESSAGE: message, APP: app}
                return await _solve(root, pick, {}, _NO_TEARDOWNS)

            return direct, wants

        async def keyed(words: Mapping[str, Any], value: Any, message: Message) -> Any:
            pick = {**words, PAYLOAD: value, MESSAGE: message, APP: app}
            teardowns: list[_Teardown] = []
            try:
                result = await _solve(root, pick, {}, teardowns)
            except BaseException as exc:
                await _unwind(teardowns, exc)
                raise
            await _unwind(teardowns, None)
            return result

        return keyed, wants


def _walk(
    node: _Node,
    nodes: dict[Callable[..., Any], _Node],
    key_names: tuple[str, ...],
    hints: Hints,
    handler: str,
    path: tuple[Callable[..., Any], ...],
    overrides: Mapping[Callable[..., Any], Callable[..., Any]],
) -> None:
    """Inspect the factories under ``node`` into ``nodes``, refusing cycles."""
    for source in node.sources:
        if not isinstance(source, Depends):
            continue
        factory = overrides.get(source.factory, source.factory)
        if factory in path:
            chain = " -> ".join(_name(f) for f in (*path[path.index(factory) :], factory))
            raise ConfigurationError(f"handler {handler}: dependency cycle: {chain}")
        child = nodes.get(factory)
        if child is None:
            child = nodes[factory] = inspect_node(
                factory, handler=handler, key_names=key_names, hints=hints
            )
        _walk(child, nodes, key_names, hints, handler, (*path, factory), overrides)


def _reachable(
    node: _Node,
    nodes: Mapping[Callable[..., Any], _Node],
    overrides: Mapping[Callable[..., Any], Callable[..., Any]],
) -> set[Callable[..., Any]]:
    """The factories the graph under ``node`` calls, overrides applied."""
    seen: set[Callable[..., Any]] = set()
    todo = [node]
    while todo:
        for source in todo.pop().sources:
            if isinstance(source, Depends):
                factory = overrides.get(source.factory, source.factory)
                if factory not in seen:
                    seen.add(factory)
                    todo.append(nodes[factory])
    return seen


@dataclass(slots=True)
class _Step:
    """A node bound for calling: its arguments are pick keys or other steps."""

    func: Callable[..., Any]
    name: str
    kind: str
    cache_key: Any  # the factory as the graph names it; None: not cached
    positional: tuple[str | _Step, ...] = ()
    keywords: tuple[tuple[str, str | _Step], ...] = ()


def _compile(
    node: _Node,
    key: Any,
    cached: bool,
    nodes: Mapping[Callable[..., Any], _Node],
    overrides: Mapping[Callable[..., Any], Callable[..., Any]],
) -> _Step:
    def arg(source: str | Depends) -> str | _Step:
        if not isinstance(source, Depends):
            return source
        factory = overrides.get(source.factory, source.factory)
        return _compile(nodes[factory], source.factory, source.use_cache, nodes, overrides)

    return _Step(
        node.func,
        node.name,
        node.kind,
        key if cached else None,
        tuple(arg(s) for s in node.positional),
        tuple((name, arg(s)) for name, s in node.keywords),
    )


async def _solve(
    step: _Step,
    pick: Mapping[str, Any],
    cache: dict[Any, Any],
    stack: list[_Teardown],
) -> Any:
    """Call ``step`` with its arguments solved first; its teardown goes on ``stack``."""
    key = step.cache_key
    if key is not None and key in cache:
        return cache[key]
    # Plain loops: an await inside a comprehension costs a coroutine per comprehension.
    args = []
    for source in step.positional:
        args.append(
            pick[source] if isinstance(source, str) else await _solve(source, pick, cache, stack)
        )
    kwargs = {}
    for name, source in step.keywords:
        kwargs[name] = (
            pick[source] if isinstance(source, str) else await _solve(source, pick, cache, stack)
        )
    kind = step.kind
    if kind == _COROUTINE:
        value = await step.func(*args, **kwargs)
    elif kind == _FUNCTION:
        value = step.func(*args, **kwargs)
    elif kind == _ASYNC_GENERATOR:
        agen = step.func(*args, **kwargs)
        try:
            value = await agen.__anext__()
        except StopAsyncIteration:
            raise ConfigurationError(f"dependency {step.name} returned without a yield") from None
        stack.append((agen, True, step.name))
    else:
        gen = step.func(*args, **kwargs)
        try:
            value = next(gen)
        except StopIteration:
            raise ConfigurationError(f"dependency {step.name} returned without a yield") from None
        stack.append((gen, False, step.name))
    if key is not None:
        cache[key] = value
    return value


_Teardown = tuple[Any, bool, str]
"""A generator dependency past its ``yield``: the generator, whether async, its name."""

_NO_TEARDOWNS: list[_Teardown] = []  # a graph without generators: never appended to


async def _unwind(teardowns: list[_Teardown], error: BaseException | None) -> None:
    """Run the generators past their ``yield``, last set up first, ``error`` thrown in.

    A teardown never turns a failure into a success (one that swallows the exception
    thrown in at its ``yield`` leaves it to fail the attempt); one that raises passes
    its exception on to the teardowns before it, and that exception is raised.
    """
    failure = error
    for gen, is_async, name in reversed(teardowns):
        try:
            if is_async:
                if failure is None:
                    await gen.__anext__()
                else:
                    await gen.athrow(failure)
                await gen.aclose()
            else:
                if failure is None:
                    next(gen)
                else:
                    gen.throw(failure)
                gen.close()
            raise ConfigurationError(f"dependency {name} yielded more than once")
        except (StopAsyncIteration, StopIteration):
            continue
        except BaseException as raised:
            if raised is not failure:
                if raised.__context__ is None:
                    raised.__context__ = failure
                failure = raised
    if failure is not error and failure is not None:
        raise failure
