"""A delivery handed to its handler as the handler's own argument.

A handler that takes FastStream's `RabbitMessage` (`Annotated[..., Context("message")]`) has
it resolved by FastDepends, which runs the synchronous `Context.use` in a worker thread for
every delivery. A subscriber declared with `decoder=as_delivered` instead decodes each
delivery to the delivery itself, so a handler taking one `Delivery` argument gets it with no
thread and no decoding: the handlers read the body themselves (often a batch of events,
validated in one pass), and FastStream's JSON decoding of it would only be thrown away.
"""

from typing import Any

from aio_pika import IncomingMessage
from faststream.message import StreamMessage

Delivery = StreamMessage[IncomingMessage]


async def as_delivered(message: StreamMessage[Any]) -> StreamMessage[Any]:
    """A subscriber's decoder: its handler's argument is the delivery itself."""
    return message
