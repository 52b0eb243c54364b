"""`make run`: the five services on the local infrastructure, with a demo workspace.

Expects the infrastructure's environment (`eval "$(deploy/infra.sh env)"`, done by make).
Ctrl-C stops the services; the infrastructure keeps running (`make infra-stop`).
"""

import os
import signal
import sys
from pathlib import Path

from mailsync_devtools.demo import seed, wait_for_timeline
from mailsync_devtools.stack import SERVICES, StackError, running_stack

REPO = Path(__file__).resolve().parents[4]
INFRA = REPO / ".infra"


def secret_key() -> str:
    """The local deployment's credential key, made once and kept under .infra/."""
    from mailsync_shared.crypto import generate_key

    path = INFRA / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(generate_key())
        path.chmod(0o600)
    return path.read_text().strip()


def main() -> int:
    env = {
        "MAILSYNC_SECRET_KEY": os.environ.get("MAILSYNC_SECRET_KEY") or secret_key(),
        "MAILSYNC_ALLOW_PRIVATE_HOSTS": "true",
    }
    imap_host = os.environ.get("MAILSYNC_IMAP_HOST", "127.0.0.1")
    imap_port = int(os.environ.get("MAILSYNC_IMAP_PORT", "10143"))
    lmtp_port = int(os.environ.get("MAILSYNC_LMTP_PORT", "10024"))
    users_file = Path(os.environ.get("MAILSYNC_MAIL_USERS_FILE", INFRA / "dovecot/users"))
    api_url = "http://127.0.0.1:8000"
    print("starting services:", ", ".join(s.name for s in SERVICES), flush=True)
    try:
        with running_stack(env, INFRA / "logs/services") as running:
            demo = seed(api_url, users_file, imap_host, imap_port, lmtp_port)
            print(f"demo mailbox {demo.message_count} messages; waiting for the first timeline...")
            threads = wait_for_timeline(api_url, demo)
            key = demo.api_key
            print(
                f"""
Mailsync is running.
  API        {api_url}        docs {api_url}/docs      events {api_url}/asyncapi.json
  Console    {api_url}/console   (sign in with the API key below: the owner's personal token)
  Logs       {INFRA / "logs/services"}/<service>.log
  Demo       workspace {demo.workspace_id}, mailbox dana@acme.test ({threads} threads on Hank)
  API key    {key}

Try:
  curl -s -H 'Authorization: Bearer {key}' {api_url}/v1/contacts/{demo.contact_id}/timeline
  curl -s -H 'Authorization: Bearer {key}' {api_url}/v1/mailboxes/{demo.mailbox_id}/sync-summary
  curl -s -H 'Authorization: Bearer {key}' '{api_url}/v1/threads?unassigned=true'

Ctrl-C stops the services.""",
                flush=True,
            )
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
            print("\nstopping services", flush=True)
            del running
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping services", flush=True)
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    sys.exit(main())
