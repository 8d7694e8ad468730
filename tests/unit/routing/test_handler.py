"""Handler: what a handler function asks for, and how it is called.

This module uses ``from __future__ import annotations``, so every handler below has
string annotations that ``Handler.inspect`` must resolve.
"""

from __future__ import annotations

from typing import Any

import pytest
import structlog.testing
from pydantic import BaseModel

from burrowmq.exceptions import ConfigurationError, DecodeError
from burrowmq.framework.message import Message
from burrowmq.routing.handler import Handler

pytestmark = pytest.mark.unit

MESSAGE = Message(body=b'{"order_id": "1", "total": 9.5}', routing_key="order.eu.placed")
ORDER_BODY = b'{"order_id": "1", "total": 9.5}'


class OrderPlaced(BaseModel):
    order_id: str
    total: float


class Quote(BaseModel):
    price: float


Calls = list[tuple[Any, ...]]


class TestInspectShapes:
    """``Handler.inspect`` understands the handler shapes burrowmq supports."""

    def test_payload_only(self) -> None:
        """``(payload: Model)`` decodes the model and does not want the message."""

        async def handle(event: OrderPlaced) -> None: ...

        spec = Handler.inspect(handle)
        assert spec.payload_type is OrderPlaced
        assert not spec.wants_message
        assert spec.decode(ORDER_BODY) == OrderPlaced(order_id="1", total=9.5)

    def test_payload_and_message(self) -> None:
        """``(payload, message: Message)`` decodes the payload and wants the message."""

        async def handle(event: OrderPlaced, message: Message) -> None: ...

        spec = Handler.inspect(handle)
        assert spec.payload_type is OrderPlaced
        assert spec.wants_message

    def test_message_only(self) -> None:
        """``(message: Message)`` alone leaves the body undecoded (bytes)."""

        async def handle(message: Message) -> None: ...

        spec = Handler.inspect(handle)
        assert spec.payload_type is bytes
        assert spec.wants_message
        assert spec.decode(b"\xff not json") == b"\xff not json"

    def test_keyword_only_message(self) -> None:
        """A keyword-only ``Message`` parameter is recognised."""

        async def handle(event: OrderPlaced, *, message: Message) -> None: ...

        spec = Handler.inspect(handle)
        assert spec.payload_type is OrderPlaced
        assert spec.wants_message

    def test_string_annotations_resolve(self) -> None:
        """Annotations written as strings resolve to the real types."""

        async def handle(event: OrderPlaced, message: Message) -> Quote: ...

        assert isinstance(handle.__annotations__["event"], str)
        spec = Handler.inspect(handle)
        assert spec.payload_type is OrderPlaced
        assert spec.returns is Quote
        assert spec.wants_message

    def test_explicit_string_annotations(self) -> None:
        """Quoted annotations resolve as well."""

        async def handle(event: "OrderPlaced", message: "Message") -> "Quote": ...  # noqa: UP037

        spec = Handler.inspect(handle)
        assert (spec.payload_type, spec.returns, spec.wants_message) == (OrderPlaced, Quote, True)

    def test_unannotated_payload_is_plain_json(self) -> None:
        """An unannotated payload gets the JSON body as plain data."""

        async def handle(event) -> None: ...  # type: ignore[no-untyped-def]

        spec = Handler.inspect(handle)
        assert spec.payload_type is Any
        assert spec.decode(b'{"a": [1, "x", null]}') == {"a": [1, "x", None]}
        with pytest.raises(DecodeError):
            spec.decode(b"not json")

    @pytest.mark.parametrize(
        ("annotation", "body", "value"),
        [
            ("bytes", b"\x00\xff", b"\x00\xff"),
            ("str", b"plain text", "plain text"),
            ("dict", b'{"k": 1}', {"k": 1}),
            ("list[int]", b"[1, 2]", [1, 2]),
        ],
    )
    def test_payload_annotation_decides_decoding(
        self, annotation: str, body: bytes, value: Any
    ) -> None:
        """The first parameter's annotation decides how the body is decoded."""
        namespace: dict[str, Any] = {}
        exec(f"async def handle(payload: {annotation}) -> None: ...", namespace)
        spec = Handler.inspect(namespace["handle"])
        assert spec.decode(body) == value

    def test_returns(self) -> None:
        """The return annotation is kept (``NoneType`` for ``-> None``); ``None`` when absent."""

        async def with_none(event: OrderPlaced) -> None: ...

        async def without(event: OrderPlaced):  # type: ignore[no-untyped-def]
            ...

        assert Handler.inspect(with_none).returns is type(None)
        assert Handler.inspect(without).returns is None

    def test_name(self) -> None:
        """``name`` is the handler's ``module.qualname``."""

        async def handle(event: OrderPlaced) -> None: ...

        spec = Handler.inspect(handle)
        assert spec.name == f"{__name__}.{handle.__qualname__}"
        assert spec.func is handle

    def test_optional_extra_parameter_is_allowed(self) -> None:
        """A parameter with a default that burrowmq does not fill is allowed."""

        async def handle(event: OrderPlaced, retries: int = 3) -> None: ...

        assert Handler.inspect(handle).payload_type is OrderPlaced

    def test_var_args_are_ignored(self) -> None:
        """``*args`` and ``**kwargs`` do not count as parameters to fill."""

        async def handle(event: OrderPlaced, *args: Any, **kwargs: Any) -> None: ...

        assert Handler.inspect(handle).payload_type is OrderPlaced


class TestUnannotatedPayload:
    """A payload without an annotation: decoded as Any would be, with a warning once."""

    def test_warns_once_and_decodes_json(self) -> None:
        """The handler is named in one warning, however often it is inspected; the body is JSON data."""

        async def untyped(body) -> None:  # type: ignore[no-untyped-def]
            ...

        with structlog.testing.capture_logs() as logs:
            spec = Handler.inspect(untyped)
            Handler.inspect(untyped)
        warnings = [e for e in logs if e["event"] == "handler_payload_unannotated"]
        assert len(warnings) == 1
        assert warnings[0]["log_level"] == "warning"
        assert warnings[0]["handler"].endswith("untyped")
        assert warnings[0]["parameter"] == "body"
        assert spec.decode(b'{"a": 1}') == {"a": 1}

    def test_any_is_silent(self) -> None:
        """``body: Any`` says JSON data is meant: no warning."""

        async def anything(body: Any) -> None: ...

        with structlog.testing.capture_logs() as logs:
            Handler.inspect(anything)
        assert not logs


class TestInspectRefuses:
    """``Handler.inspect`` refuses handlers it cannot call."""

    def test_extra_required_parameter(self) -> None:
        """A second required parameter that is not a Message cannot be filled."""

        async def handle(event: OrderPlaced, db: dict[str, Any]) -> None: ...

        with pytest.raises(ConfigurationError, match="'db'"):
            Handler.inspect(handle)

    def test_extra_required_keyword_only_parameter(self) -> None:
        """A required keyword-only parameter that is not a Message cannot be filled."""

        async def handle(event: OrderPlaced, *, db: dict[str, Any]) -> None: ...

        with pytest.raises(ConfigurationError, match="'db'"):
            Handler.inspect(handle)

    def test_payload_after_message(self) -> None:
        """The payload must be the first parameter."""

        async def handle(message: Message, event: OrderPlaced) -> None: ...

        with pytest.raises(ConfigurationError, match="'event'"):
            Handler.inspect(handle)

    def test_sync_function(self) -> None:
        """A plain ``def`` is refused."""

        def handle(event: OrderPlaced) -> None: ...

        with pytest.raises(ConfigurationError, match="async def"):
            Handler.inspect(handle)  # type: ignore[arg-type]

    def test_async_generator(self) -> None:
        """An async generator is not an async function and is refused."""

        async def handle(event: OrderPlaced):  # type: ignore[no-untyped-def]
            yield event

        with pytest.raises(ConfigurationError):
            Handler.inspect(handle)

    def test_unresolvable_annotation(self) -> None:
        """An annotation naming something that does not exist is refused with the handler's name."""

        async def handle(event: DoesNotExist) -> None: ...  # type: ignore[name-defined]  # noqa: F821

        with pytest.raises(ConfigurationError, match="cannot resolve the annotations"):
            Handler.inspect(handle)


class TestLocalAnnotations:
    """Annotations resolve among the decorating function's locals, as pydantic's do."""

    def test_model_defined_in_the_function(self) -> None:
        """A model defined in the function inspecting the handler resolves and decodes."""

        class LocalOrder(BaseModel):
            order_id: str

        async def handle(event: LocalOrder) -> None: ...

        spec = Handler.inspect(handle)
        assert spec.payload_type is LocalOrder
        assert spec.decode(b'{"order_id": "7"}') == LocalOrder(order_id="7")

    def test_local_return_annotation(self) -> None:
        """A local model as the return annotation resolves too (RPC replies use it)."""

        class LocalQuote(BaseModel):
            price: float

        async def quote(sku: str) -> LocalQuote:
            return LocalQuote(price=1.0)

        assert Handler.inspect(quote).returns is LocalQuote

    def test_module_names_still_win_lookup_order(self) -> None:
        """Module-level names resolve without looking at any frame."""

        async def handle(event: OrderPlaced, message: Message) -> None: ...

        assert Handler.inspect(handle).payload_type is OrderPlaced

    def test_name_local_to_neither_is_refused(self) -> None:
        """A name neither the module nor the decorating frame defines names the handler."""

        def make() -> Any:
            class Hidden(BaseModel):
                x: int

            async def handle(event: Hidden) -> None: ...

            return handle

        handle = make()  # Hidden was local to make(), which has returned
        with pytest.raises(ConfigurationError, match=r"handler .*handle: name 'Hidden'"):
            Handler.inspect(handle)


class TestCall:
    """``call(value, message)`` passes the arguments each shape asks for."""

    async def test_payload_only(self) -> None:
        """``(payload)`` receives the value alone."""
        calls: Calls = []

        async def handle(event: OrderPlaced) -> str:
            calls.append((event,))
            return "ok"

        assert await Handler.inspect(handle).call("value", MESSAGE) == "ok"
        assert calls == [("value",)]

    async def test_payload_and_message(self) -> None:
        """``(payload, message: Message)`` receives both, in order."""
        calls: Calls = []

        async def handle(event: OrderPlaced, message: Message) -> None:
            calls.append((event, message))

        await Handler.inspect(handle).call("value", MESSAGE)
        assert calls == [("value", MESSAGE)]

    async def test_message_only(self) -> None:
        """``(message: Message)`` receives only the message."""
        calls: Calls = []

        async def handle(message: Message) -> None:
            calls.append((message,))

        await Handler.inspect(handle).call(b"body", MESSAGE)
        assert calls == [(MESSAGE,)]

    async def test_keyword_only_message(self) -> None:
        """A keyword-only Message parameter receives the message by keyword."""
        calls: Calls = []

        async def handle(event: OrderPlaced, *, message: Message) -> None:
            calls.append((event, message))

        await Handler.inspect(handle).call("value", MESSAGE)
        assert calls == [("value", MESSAGE)]

    async def test_keyword_only_payload(self) -> None:
        """A keyword-only payload receives the value by keyword."""
        calls: Calls = []

        async def handle(*, event: OrderPlaced, message: Message) -> None:
            calls.append((event, message))

        await Handler.inspect(handle).call("value", MESSAGE)
        assert calls == [("value", MESSAGE)]

    async def test_two_message_parameters(self) -> None:
        """Every parameter annotated Message receives the message."""
        calls: Calls = []

        async def handle(event: OrderPlaced, first: Message, second: Message) -> None:
            calls.append((event, first, second))

        await Handler.inspect(handle).call("value", MESSAGE)
        assert calls == [("value", MESSAGE, MESSAGE)]

    async def test_optional_parameter_keeps_its_default(self) -> None:
        """A parameter burrowmq does not fill keeps its default."""
        calls: Calls = []

        async def handle(event: OrderPlaced, retries: int = 3) -> None:
            calls.append((event, retries))

        await Handler.inspect(handle).call("value", MESSAGE)
        assert calls == [("value", 3)]

    async def test_message_after_optional_parameter(self) -> None:
        """A Message parameter that is not second is passed by keyword."""
        calls: Calls = []

        async def handle(event: OrderPlaced, retries: int = 3, *, message: Message) -> None:
            calls.append((event, retries, message))

        await Handler.inspect(handle).call("value", MESSAGE)
        assert calls == [("value", 3, MESSAGE)]

    async def test_positional_only_payload(self) -> None:
        """A positional-only payload receives the value positionally."""
        calls: Calls = []

        async def handle(event: OrderPlaced, /) -> None:
            calls.append((event,))

        await Handler.inspect(handle).call("value", MESSAGE)
        assert calls == [("value",)]

    async def test_positional_only_payload_and_message(self) -> None:
        """Positional-only payload and Message parameters receive both, in order."""
        calls: Calls = []

        async def handle(event: OrderPlaced, message: Message, /) -> None:
            calls.append((event, message))

        await Handler.inspect(handle).call("value", MESSAGE)
        assert calls == [("value", MESSAGE)]

    async def test_positional_only_payload_with_keyword_only_message(self) -> None:
        """A positional-only payload with a keyword-only Message receives both."""
        calls: Calls = []

        async def handle(event: OrderPlaced, /, *, message: Message) -> None:
            calls.append((event, message))

        await Handler.inspect(handle).call("value", MESSAGE)
        assert calls == [("value", MESSAGE)]

    async def test_no_parameters(self) -> None:
        """A handler without parameters is called with none."""
        calls: Calls = []

        async def handle() -> None:
            calls.append(())

        await Handler.inspect(handle).call(b"body", MESSAGE)
        assert calls == [()]
