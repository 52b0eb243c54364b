"""One store read for callers that ask for the same thing at the same moment.

A burst of requests reads the same document over and over (the caller's api key, their user,
the sending mailbox): each a store round trip that the MongoDB-wire server pays in CPU. Reads
of one key go through a `Batcher`: a read starts as soon as none of that key is running, and
everyone who asks while it runs shares the next one, which starts when it ends. So every
caller gets a read that began after it asked, exactly as if it had read alone (a revoked key
is never let in on a read that began before the revocation), and a key is read at most twice
per read's time, however many ask.
"""

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from mailsync_shared.batching import Batcher

T = TypeVar("T")
Read = Callable[[], Awaitable[T]]


class SharedReads(Generic[T]):
    """Reads by key, each shared by the callers that asked before it began. Callers must not
    change what they get: it is the same object for all of them."""

    def __init__(self) -> None:
        self._batcher: Batcher[Read[T], T] = Batcher(self._read_once, max_size=1_000_000)

    async def read(self, key: str, read: Read[T]) -> T:
        """`read()`, or the result of the same read (by `key`) that began after this call."""
        return await self._batcher.submit(key, read)

    @staticmethod
    async def _read_once(_key: str, reads: Sequence[Read[T]]) -> list[T]:
        value = await reads[0]()
        return [value] * len(reads)
