"""AMQP wire translation: burrowmq's message properties to pamqp's and back.

Part of the AMQP transport; its errors are translated in :mod:`burrowmq.amqp.errors`.
"""

from __future__ import annotations

import struct
from typing import Final

from pamqp import commands as spec

from burrowmq.framework.transport import Properties

__all__ = ["CONTENT_HEADER", "FRAME_HEAD", "from_pamqp", "to_pamqp"]

FRAME_HEAD: Final = struct.Struct(">BHI")
"""A frame's head: its type, channel and payload size."""
CONTENT_HEADER: Final = struct.Struct(">HHQ")
"""A content header's start: class (60, basic), weight (0) and body size."""


def to_pamqp(props: Properties) -> spec.Basic.Properties:
    return spec.Basic.Properties(
        content_type=props.content_type,
        content_encoding=props.content_encoding,
        headers=props.headers or None,
        delivery_mode=props.delivery_mode,
        priority=props.priority,
        correlation_id=props.correlation_id,
        reply_to=props.reply_to,
        expiration=props.expiration,
        message_id=props.message_id,
        timestamp=props.timestamp,
        message_type=props.type,
        user_id=props.user_id,
        app_id=props.app_id,
    )


def from_pamqp(p: spec.Basic.Properties) -> Properties:
    return Properties(
        content_type=p.content_type,
        content_encoding=p.content_encoding,
        headers=dict(p.headers) if p.headers else {},
        delivery_mode=p.delivery_mode,
        priority=p.priority,
        correlation_id=p.correlation_id,
        reply_to=p.reply_to,
        expiration=p.expiration,
        message_id=p.message_id,
        timestamp=p.timestamp,
        type=p.message_type,
        user_id=p.user_id,
        app_id=p.app_id,
    )
