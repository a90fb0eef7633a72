"""The signature both shops put on a webhook (Shopify `X-Shopify-Hmac-Sha256`,
WooCommerce `X-WC-Webhook-Signature`), checked on the raw body before anything is parsed."""

from __future__ import annotations

import base64
import hashlib
import hmac


def signature_ok(body: bytes, header: str | None, secret: str) -> bool:
    """Both shops sign the raw body: base64(HMAC-SHA256(secret, body)). Constant time."""
    if not header or not secret:
        return False
    expected = base64.b64encode(hmac.digest(secret.encode(), body, hashlib.sha256)).decode()
    return hmac.compare_digest(expected.encode(), header.strip().encode())
