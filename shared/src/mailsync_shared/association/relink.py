"""Growing the links of stored threads when records appear after their mail was logged."""

from collections.abc import Sequence

from mailsync_shared.association.linking import counterpart_addresses, link_records
from mailsync_shared.association.records import (
    links_update,
    mailbox_addresses,
    records_for,
    thread_associated_event,
    thread_links,
)
from mailsync_shared.ids import new_id
from mailsync_shared.outbox import Publish, deliver, push
from mailsync_shared.storage.documents import ThreadDocument
from mailsync_shared.storage.scoped import WorkspaceStore


async def link_threads_of(
    store: WorkspaceStore, addresses: Sequence[str], publish: Publish
) -> list[str]:
    """Re-link every automatically linked thread with one of `addresses` as a participant.

    Links only grow, as for new mail; threads a person linked are left alone. Each thread
    whose links changed announces it (`thread.associated`, through the thread's outbox).
    """
    if not addresses:
        return []
    changed: list[str] = []
    found = await store.threads.find(
        {"participants": {"$in": list(addresses)}, "manually_linked": {"$ne": True}}
    )
    for document in found:
        thread = ThreadDocument.from_document(document)
        owners = await mailbox_addresses(store, thread.mailbox_ids)
        counterparts = counterpart_addresses(thread.participants, owners)
        contacts, companies, deals = await records_for(store, counterparts)
        current = thread_links(thread)
        matched = link_records(counterparts, contacts, companies, deals, automated=thread.automated)
        grown = current.union(matched)
        if grown.ids() == current.ids():
            continue
        event = thread_associated_event(
            store.workspace_id, thread.id, grown, manual=False, event_id=new_id()
        )
        result = await store.threads.update_one(
            {"_id": thread.id, "manually_linked": {"$ne": True}},
            {"$set": links_update(grown), "$push": push([event])},
        )
        if result.modified_count:
            await deliver(store.threads, thread.id, publish)
            changed.append(thread.id)
    return changed
