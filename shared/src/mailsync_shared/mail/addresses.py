"""Addresses and domains as capture and association compare them."""


def domain_of(address: str) -> str:
    """The lower-cased domain of an addr-spec; empty when it has none."""
    local, at, domain = address.rpartition("@")
    return domain.strip().lower() if at and local else ""


def local_part(address: str) -> str:
    return address.rpartition("@")[0].lower()


def domain_and_parents(domain: str) -> list[str]:
    """`eu.mail.client.test` -> [`eu.mail.client.test`, `mail.client.test`, `client.test`].

    Stops at two labels: a bare top-level domain is never a candidate.
    """
    labels = [label for label in domain.lower().split(".") if label]
    return [".".join(labels[index:]) for index in range(max(len(labels) - 1, 0))]


def within_domains(address: str, domains: set[str] | frozenset[str]) -> str | None:
    """The entry of `domains` that the address's domain equals or is a subdomain of."""
    for candidate in domain_and_parents(domain_of(address)):
        if candidate in domains:
            return candidate
    return None
