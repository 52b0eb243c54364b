"""Access tokens the local Dovecot accepts over XOAUTH2: JWTs signed with the key that
`deploy/infra.sh` made, as a provider's token endpoint would issue them."""

import base64
import time

import jwt

from tests.support.infra import Infra


def access_token(infra: Infra, address: str, lifetime_seconds: int = 3600) -> str:
    key = base64.b64decode(infra.dovecot_oauth2_key.read_text())
    now = int(time.time())
    claims = {"sub": address, "email": address, "iat": now, "exp": now + lifetime_seconds}
    return jwt.encode(claims, key, algorithm="HS256")
