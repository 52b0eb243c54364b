"""XOAUTH2 mailboxes: access tokens are refreshed from the account's token endpoint (a local
one here) and used to log in to Dovecot over XOAUTH2; a refusal becomes the mailbox's error
status with its reason."""

import pytest
from pydantic import SecretStr

from mailsync_shared.crypto import CredentialCipher
from mailsync_shared.storage.documents import MailboxDocument
from tests.integration.conftest_ingest import (  # noqa: F401  (fixtures register by name)
    IngestCase,
    ingest_fixture,
)
from tests.support.mail import MailAccount, create_account, fill_inbox
from tests.support.oauth_tokens import access_token
from tests.support.polling import eventually
from tests.support.token_endpoint import TokenEndpoint

pytestmark = pytest.mark.integration


def oauth_mailbox(
    ingest: IngestCase,
    address: str,
    refresh_token: str,
    url: str,
    account: MailAccount | None = None,
) -> MailboxDocument:
    cipher = CredentialCipher(SecretStr(ingest.secret_key))
    base = ingest.mailbox(account or create_account(ingest.infra, "acme.test", "oauth"))
    imap = base.imap.model_copy(
        update={
            "auth": "xoauth2",
            "username": address,
            "secret_encrypted": cipher.encrypt(refresh_token),
            "token_endpoint": url,
            "client_id": "mailsync-test",
            "client_secret_encrypted": cipher.encrypt("client-secret"),
        }
    )
    return base.model_copy(update={"imap": imap, "address": address})


async def test_tokens_are_refreshed_and_refusals_become_the_mailbox_status(
    ingest: IngestCase,
) -> None:
    with TokenEndpoint({"good-refresh-token"}) as endpoint:
        # The endpoint's opaque tokens are no JWTs signed with Dovecot's key: refused at login.
        refused_by_server = oauth_mailbox(
            ingest, "ann@acme.test", "good-refresh-token", endpoint.url
        )
        revoked = oauth_mailbox(ingest, "bob@acme.test", "revoked-refresh-token", endpoint.url)
        for mailbox in (refused_by_server, revoked):
            await ingest.add_mailbox(mailbox)

        async with ingest.worker(ingest.settings()):

            async def both_in_error() -> dict[str, str] | None:
                reasons: dict[str, str] = {}
                for mailbox in (refused_by_server, revoked):
                    status = (await ingest.state(mailbox.id)).status
                    if status.state != "error" or status.reason is None:
                        return None
                    reasons[mailbox.address] = status.reason
                return reasons

            reasons = await eventually(both_in_error, what="both mailboxes in error", timeout=30)

    assert reasons["ann@acme.test"].startswith("authentication failed")
    assert (
        reasons["bob@acme.test"]
        == "authorization refused: token refresh refused (400 invalid_grant)"
    )
    good = [f for f in endpoint.forms if f["refresh_token"] == ["good-refresh-token"]]
    # The first token was refused by the server, so it was refreshed once more before giving up.
    assert len(good) == 2
    assert good[0] == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["good-refresh-token"],
        "client_id": ["mailsync-test"],
        "client_secret": ["client-secret"],
    }
    assert all("good-refresh-token" not in reason for reason in reasons.values())


async def test_a_refreshed_token_logs_in_over_xoauth2_and_the_mailbox_syncs(
    ingest: IngestCase,
) -> None:
    owner = create_account(ingest.infra, "acme.test", "oauth")
    sent_ids = fill_inbox(ingest.infra, owner, 3, "client@customer.test")
    with TokenEndpoint(
        {"refresh-secret"}, mint=lambda _: access_token(ingest.infra, owner.address)
    ) as endpoint:
        mailbox = await ingest.add_mailbox(
            oauth_mailbox(ingest, owner.address, "refresh-secret", endpoint.url, owner)
        )
        async with ingest.watched_worker() as spy:
            await eventually(
                lambda: ingest.caught_up(mailbox.id, spy, len(sent_ids)),
                what="the XOAUTH2 mailbox live with its INBOX published",
            )
    assert {event.data.message_id for event in spy.events} == set(sent_ids)
    assert len(endpoint.issued) == 1, "one token served the whole sync"
    assert endpoint.forms[0]["grant_type"] == ["refresh_token"]
