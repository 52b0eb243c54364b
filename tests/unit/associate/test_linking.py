"""Linking a thread's participants to contacts, companies and open deals."""

from mailsync_shared.association.linking import Links, counterpart_addresses, link_records
from mailsync_shared.contracts.records import LinkReason
from mailsync_shared.storage.documents import CompanyDocument, ContactDocument, DealDocument

WS = "ws"
ANN = ContactDocument(id="c-ann", workspace_id=WS, name="Ann Client", emails=["ann@client.test"])
BOB = ContactDocument(
    id="c-bob", workspace_id=WS, name="Bob", emails=["bob@other.test"], company_id="co-other"
)
CLIENT = CompanyDocument(
    id="co-client", workspace_id=WS, name="Client Inc", domains=["client.test"]
)
OTHER = CompanyDocument(id="co-other", workspace_id=WS, name="Other Ltd", domains=["other.io"])


def deal(deal_id: str, **fields: object) -> DealDocument:
    return DealDocument.model_validate(
        {"_id": deal_id, "workspace_id": WS, "name": deal_id, **fields}
    )


def test_owner_addresses_are_not_counterparts() -> None:
    addresses = counterpart_addresses(
        ["Owner@Acme.test", "ann@client.test", "ann@client.test", "colleague@acme.test"],
        ["owner@acme.test", "colleague@acme.test"],
    )
    assert addresses == ["ann@client.test"]


def test_contact_and_company_matched_with_reasons() -> None:
    links = link_records(["ann@client.test"], [ANN], [CLIENT, OTHER], [])
    assert links.contact_ids == ("c-ann",)
    assert links.company_ids == ("co-client",)
    reasons = {r.record_id: r.reason for r in links.reasons}
    assert reasons["c-ann"] == "ann@client.test is an address of contact Ann Client"
    assert reasons["co-client"] == "client.test is a domain of company Client Inc"


def test_subdomain_matches_the_company_domain() -> None:
    links = link_records(["zed@eu.client.test"], [], [CLIENT], [])
    assert links.company_ids == ("co-client",)


def test_company_of_a_matched_contact_is_linked_even_without_its_domain() -> None:
    links = link_records(["bob@other.test"], [BOB], [OTHER], [])
    assert links.company_ids == ("co-other",)
    assert "contact Bob belongs to company Other Ltd" in {r.reason for r in links.reasons}


def test_unmatched_records_are_not_linked() -> None:
    links = link_records(
        ["nobody@nowhere.test"], [ANN], [CLIENT], [deal("d1", contact_ids=["c-ann"])]
    )
    assert links == Links()


def test_all_open_deals_of_matched_contacts_are_linked_not_the_company_ones() -> None:
    deals = [
        deal("d-ann-1", contact_ids=["c-ann"]),
        deal("d-ann-2", contact_ids=["c-ann"], company_id="co-client"),
        deal("d-ann-won", contact_ids=["c-ann"], status="won"),
        deal("d-company", company_id="co-client"),
    ]
    links = link_records(["ann@client.test"], [ANN], [CLIENT], deals)
    assert links.deal_ids == ("d-ann-1", "d-ann-2")
    assert "open deal d-ann-1 involves contact Ann Client" in {r.reason for r in links.reasons}


def test_company_deals_are_linked_when_contacts_have_none() -> None:
    deals = [
        deal("d-company", company_id="co-client"),
        deal("d-lost", company_id="co-client", status="lost"),
    ]
    links = link_records(["ann@client.test"], [ANN], [CLIENT], deals)
    assert links.deal_ids == ("d-company",)
    assert "open deal d-company belongs to company Client Inc" in {r.reason for r in links.reasons}


def test_union_keeps_old_links_and_first_reasons() -> None:
    old = Links(
        contact_ids=("c-old",),
        reasons=(LinkReason(record_type="contact", record_id="c-old", reason="old reason"),),
    )
    new = link_records(["ann@client.test"], [ANN], [], [])
    merged = old.union(new)
    assert merged.contact_ids == ("c-old", "c-ann")
    assert [r.record_id for r in merged.reasons] == ["c-old", "c-ann"]
    again = merged.union(new)
    assert again == merged


def test_automated_mail_links_contacts_and_their_companies_but_no_deal_or_domain() -> None:
    deals = [
        deal("d-ann", contact_ids=["c-ann"]),
        deal("d-other", company_id="co-other"),
    ]
    why = "bulk mail (Precedence: bulk)"

    links = link_records(
        ["ann@client.test", "bob@other.test", "zed@client.test"],
        [ANN, BOB],
        [CLIENT, OTHER],
        deals,
        automated=why,
    )

    assert links.contact_ids == ("c-ann", "c-bob")
    assert links.company_ids == ("co-other",), "Bob's company only; client.test is a domain"
    assert links.deal_ids == ()
    contact_reasons = [r.reason for r in links.reasons if r.record_type == "contact"]
    assert all(why in reason for reason in contact_reasons)
