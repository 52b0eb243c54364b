"""How messages flow: every exchange, queue and binding, declared in one place.

- `mailsync.work` (topic): internal work between services (ingest -> capture -> associate,
  api -> send). Not a public interface.
- `mailsync.events` (topic): public events. Other systems bind their own queues here; an
  event no queue is bound for is not delivered (published without `mandatory`, so the broker
  does not return it), while work is published `mandatory`.
- Routing keys are `<event type>.<workspace id>` on both exchanges, so a binding can select
  one type (`mailsync.email.logged.v1.*`) or one workspace (`#.<workspace id>`).
- `mailsync.send.webhook-events` receives only the public events some webhook subscription
  wants: its bindings follow the subscriptions (`mailsync_shared.webhooks.bindings`).
- Work queues are quorum queues with an explicit delivery limit (RabbitMQ 3.10 has no default)
  and dead-letter into `mailsync.dead-letter`, where the reason travels with the message.
- Capture's and associate's work (fetched messages; captured ones from `mailsync.work` and
  sent ones from `mailsync.events`) goes through `mailsync.<service>.shards`, a consistent-hash
  exchange on the workspace header every publish carries (`WORKSPACE_HEADER`), into
  `SHARD_COUNT` shard queues: one workspace's messages always land in one shard. Each shard
  queue has a single active consumer, the replica that holds the shard's lease
  (`mailsync_shared.shard_leases`), so one workspace is handled by one replica at a time.
- Every ingest worker has a wake queue of its own, `mailsync.ingest.wake.<worker id>`
  (exclusive, deleted with the worker's connection), bound on `mailsync.work` to the
  `mailsync.mailbox.claimable.v1` messages of its pool's workspaces (`ingest_wakes`): the api
  publishes one when a mailbox becomes claimable, and the worker claims at once instead of at
  its next periodic claim. Wakes are hints (`HINTS`): nothing durable, nothing dead-lettered,
  published without `mandatory`.
"""

from collections.abc import Collection
from dataclasses import dataclass

from aio_pika import RobustQueue
from faststream import AckPolicy
from faststream.rabbit import (
    Channel,
    ExchangeType,
    QueueType,
    RabbitBroker,
    RabbitExchange,
    RabbitQueue,
    RabbitRouter,
)
from faststream.rabbit.schemas.queue import QuorumQueueArgs
from faststream.rabbit.subscriber import RabbitSubscriber

from mailsync_shared.contracts.envelope import Event
from mailsync_shared.contracts.mail import MessageCaptured, MessageFetched
from mailsync_shared.contracts.mailboxes import MailboxClaimable
from mailsync_shared.contracts.outbound import EmailSendFailed, EmailSent, SendRequested
from mailsync_shared.contracts.records import ContactCaptured, EmailLogged, ThreadAssociated

DELIVERY_LIMIT = 5
WORKSPACE_HEADER = "x-mailsync-workspace"
SHARD_COUNT = 16

WORK_EXCHANGE = RabbitExchange("mailsync.work", type=ExchangeType.TOPIC, durable=True)
EVENTS_EXCHANGE = RabbitExchange("mailsync.events", type=ExchangeType.TOPIC, durable=True)
DEAD_LETTER_EXCHANGE = RabbitExchange("mailsync.dead-letter", type=ExchangeType.TOPIC, durable=True)

DEAD_LETTER_QUEUE = RabbitQueue(
    "mailsync.dead-letter", queue_type=QueueType.QUORUM, durable=True, routing_key="#"
)

INTERNAL_EVENTS: tuple[type[Event], ...] = (
    MessageFetched,
    MessageCaptured,
    SendRequested,
    MailboxClaimable,
)
# Internal messages that are hints, not work: when no queue takes one (no ingest worker of the
# workspace's pool is running) nothing is lost, so the broker need not return it.
HINTS: tuple[type[Event], ...] = (MailboxClaimable,)
PUBLIC_EVENTS: tuple[type[Event], ...] = (
    EmailLogged,
    ThreadAssociated,
    ContactCaptured,
    EmailSent,
    EmailSendFailed,
)


def exchange_for(event_type: type[Event]) -> RabbitExchange:
    return WORK_EXCHANGE if event_type in INTERNAL_EVENTS else EVENTS_EXCHANGE


def work_queue(name: str, event_type: type[Event]) -> RabbitQueue:
    """A durable quorum queue for one event type, dead-lettering after `DELIVERY_LIMIT` tries."""
    return _quorum_queue(name, event_type.binding_key())


def _quorum_queue(name: str, routing_key: str, *, single_consumer: bool = False) -> RabbitQueue:
    arguments: QuorumQueueArgs = {
        "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE.name,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    if single_consumer:
        arguments["x-single-active-consumer"] = True
    return RabbitQueue(
        name,
        queue_type=QueueType.QUORUM,
        durable=True,
        routing_key=routing_key,
        arguments=arguments,
    )


# The public events some webhook subscription wants, for HTTP webhooks (the send service):
# bound to `EVENTS_EXCHANGE` by one key per workspace and wanted event type, as subscriptions
# come and go (`mailsync_shared.webhooks.bindings`), never by this declaration. One consumer at
# a time, one delivery at a time (its own channel with prefetch 1, whichever service declares
# the queue first in a process): the events are recorded in the order they were published,
# also with several send replicas.
WEBHOOK_EVENTS_QUEUE = _quorum_queue(
    "mailsync.send.webhook-events", "mailsync.send.webhook-events", single_consumer=True
)
WEBHOOK_EVENTS_CHANNEL = Channel(prefetch_count=1)


async def webhook_events_queue(broker: RabbitBroker) -> RobustQueue:
    """The webhook events queue as the broker declared it, on its own channel; the subscriber
    on it reuses both."""
    queue: RobustQueue = await broker.config.declarer.declare_queue(
        WEBHOOK_EVENTS_QUEUE, channel=WEBHOOK_EVENTS_CHANNEL
    )
    return queue


@dataclass(frozen=True)
class Consumer:
    """A service's queue and the exchange that feeds it."""

    queue: RabbitQueue
    exchange: RabbitExchange
    event_type: type[Event]

    def subscriber(self, broker: RabbitBroker | RabbitRouter, *, title: str) -> RabbitSubscriber:
        """The subscriber on this queue, of a broker or of a router it includes, holding as
        many deliveries as the broker's channel allows (`WorkerWiring`'s prefetch); a handler
        that raises nacks its delivery (requeued, dead-lettered after the limit)."""
        return broker.subscriber(
            self.queue, self.exchange, ack_policy=AckPolicy.NACK_ON_ERROR, title=title
        )


def consumer(name: str, event_type: type[Event]) -> Consumer:
    return Consumer(work_queue(name, event_type), exchange_for(event_type), event_type)


SEND_REQUESTS = consumer("mailsync.send.requested", SendRequested)

CONSUMERS: tuple[Consumer, ...] = (SEND_REQUESTS,)


@dataclass(frozen=True)
class Sharded:
    """A service's work split by workspace: a consistent-hash exchange on `WORKSPACE_HEADER`
    fed by `events`, and one single-active-consumer queue per shard."""

    service: str
    exchange: RabbitExchange
    events: tuple[type[Event], ...]
    shards: tuple[Consumer, ...]


def sharded(service: str, events: tuple[type[Event], ...], count: int = SHARD_COUNT) -> Sharded:
    exchange = RabbitExchange(
        f"mailsync.{service}.shards",
        type=ExchangeType.X_CONSISTENT_HASH,
        durable=True,
        arguments={"hash-header": WORKSPACE_HEADER},
    )
    shards = tuple(
        Consumer(
            _quorum_queue(f"mailsync.{service}.shard-{shard:02d}", "1", single_consumer=True),
            exchange,
            events[0],
        )
        for shard in range(count)
    )
    return Sharded(service, exchange, events, shards)


CAPTURE_SHARDS = sharded("capture", (MessageFetched,))
ASSOCIATE_SHARDS = sharded("associate", (MessageCaptured, EmailSent))
SHARDED: tuple[Sharded, ...] = (CAPTURE_SHARDS, ASSOCIATE_SHARDS)


# Wakes waiting in a worker's queue beyond this many are dropped, oldest first: one is enough
# to make the worker claim, and the periodic claim stands behind them.
WAKE_BACKLOG = 1000


@dataclass(frozen=True)
class IngestWakes:
    """One ingest worker's wake queue and the routing keys it is bound with."""

    queue: RabbitQueue
    keys: tuple[str, ...]

    async def bind(self, broker: RabbitBroker) -> None:
        """Declare the queue (if its subscriber has not yet) and bind it on `WORK_EXCHANGE`."""
        queue = await broker.declare_queue(self.queue)
        for key in self.keys:
            await queue.bind(WORK_EXCHANGE.name, routing_key=key)


def ingest_wakes(
    worker_id: str, workspaces: Collection[str] = (), excluded: Collection[str] = ()
) -> IngestWakes:
    """The wake queue of the worker `worker_id` of the pool that leases the mailboxes of
    `workspaces` (all when empty) except `excluded`: one binding per workspace of the pool, or
    one for every workspace when the pool is all of them but some (a topic binding cannot
    leave a workspace out; the worker ignores the wakes of excluded ones)."""
    if workspaces:
        keys = tuple(
            f"{MailboxClaimable.event_type}.{workspace}"
            for workspace in sorted(set(workspaces) - set(excluded))
        )
    else:
        keys = (MailboxClaimable.binding_key(),)
    queue = RabbitQueue(
        f"mailsync.ingest.wake.{worker_id}",
        durable=False,
        exclusive=True,
        auto_delete=True,
        arguments={"x-max-length": WAKE_BACKLOG},
    )
    return IngestWakes(queue, keys)


async def declare_topology(broker: RabbitBroker) -> None:
    """Declare every exchange, queue and binding; safe to call from every service at start.

    Publishers declare the consumers' queues too, so nothing published before a consumer's
    first start is lost.
    """
    for exchange in (WORK_EXCHANGE, EVENTS_EXCHANGE, DEAD_LETTER_EXCHANGE):
        await broker.declare_exchange(exchange)
    dead_letters = await broker.declare_queue(DEAD_LETTER_QUEUE)
    await dead_letters.bind(DEAD_LETTER_EXCHANGE.name, routing_key="#")
    for item in CONSUMERS:
        queue = await broker.declare_queue(item.queue)
        await queue.bind(item.exchange.name, routing_key=item.queue.routing())
    for service in SHARDED:
        shards = await broker.declare_exchange(service.exchange)
        for event_type in service.events:
            await shards.bind(exchange_for(event_type).name, routing_key=event_type.binding_key())
        for item in service.shards:
            queue = await broker.declare_queue(item.queue)
            await queue.bind(item.exchange.name, routing_key=item.queue.routing())
    await webhook_events_queue(broker)
