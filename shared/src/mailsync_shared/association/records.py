"""Loading what linking needs: the records that might match, the mailbox owners' addresses."""

from collections.abc import Sequence
from typing import Any

from mailsync_shared.association.linking import Links, candidate_domains
from mailsync_shared.contracts.records import AssociatedThread, ThreadAssociated
from mailsync_shared.ids import stable_id
from mailsync_shared.storage.documents import (
    CompanyDocument,
    ContactDocument,
    DealDocument,
    ThreadDocument,
)
from mailsync_shared.storage.mailbox_directory import DIRECTORY
from mailsync_shared.storage.scoped import WorkspaceStore

SOURCE = "/mailsync/associate"


async def mailbox_addresses(store: WorkspaceStore, mailbox_ids: Sequence[str]) -> list[str]:
    """The owner addresses of these mailboxes (from the workspace's `MailboxDirectory`)."""
    if not mailbox_ids:
        return []
    entries = await DIRECTORY.entries(store, including=mailbox_ids)
    found = (entries.get(mailbox_id) for mailbox_id in dict.fromkeys(mailbox_ids))
    return [entry.address for entry in found if entry is not None and entry.address]


async def records_for(
    store: WorkspaceStore, addresses: Sequence[str]
) -> tuple[list[ContactDocument], list[CompanyDocument], list[DealDocument]]:
    """Active contacts, companies and open deals that might match the addresses."""
    if not addresses:
        return [], [], []
    contacts = [
        ContactDocument.from_document(d)
        for d in await store.contacts.find(
            {"emails": {"$in": list(addresses)}, "retracted_at": None}
        )
    ]
    company_ids = sorted({c.company_id for c in contacts if c.company_id})
    domains = candidate_domains(addresses)
    company_filters: list[dict[str, Any]] = [{"domains": {"$in": domains}}] if domains else []
    if company_ids:
        company_filters.append({"_id": {"$in": company_ids}})
    companies = (
        [
            CompanyDocument.from_document(d)
            for d in await store.companies.find({"$or": company_filters})
        ]
        if company_filters
        else []
    )
    deal_filters: list[dict[str, Any]] = []
    if contacts:
        deal_filters.append({"contact_ids": {"$in": [c.id for c in contacts]}})
    if companies:
        deal_filters.append({"company_id": {"$in": [c.id for c in companies]}})
    deals = (
        [
            DealDocument.from_document(d)
            for d in await store.deals.find({"status": "open", "$or": deal_filters})
        ]
        if deal_filters
        else []
    )
    return contacts, companies, deals


def thread_ref_id(workspace_id: str, kind: str, value: str) -> str:
    """`_id` of the `thread_refs` document for a key (`message-id`, `provider`, `subject`)."""
    return stable_id("thread-ref", workspace_id, kind, value)


def links_update(links: Links) -> dict[str, Any]:
    """The `$set` fields storing `links` on a thread."""
    return {
        "contact_ids": list(links.contact_ids),
        "company_ids": list(links.company_ids),
        "deal_ids": list(links.deal_ids),
        "link_reasons": [r.model_dump(mode="python") for r in links.reasons],
    }


def thread_links(thread: ThreadDocument | None) -> Links:
    if thread is None:
        return Links()
    return Links(
        contact_ids=tuple(thread.contact_ids),
        company_ids=tuple(thread.company_ids),
        deal_ids=tuple(thread.deal_ids),
        reasons=tuple(thread.link_reasons),
    )


def thread_associated_event(
    workspace_id: str, thread_id: str, links: Links, *, manual: bool, event_id: str
) -> ThreadAssociated:
    event = ThreadAssociated.create(
        source=SOURCE,
        workspace_id=workspace_id,
        subject=thread_id,
        data=AssociatedThread(
            thread_id=thread_id,
            contact_ids=list(links.contact_ids),
            company_ids=list(links.company_ids),
            deal_ids=list(links.deal_ids),
            reasons=list(links.reasons),
            manual=manual,
        ),
    )
    return event.model_copy(update={"id": event_id})
