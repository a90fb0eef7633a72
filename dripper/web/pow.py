"""The signup's proof of work (DESIGN 13, `[signup] proof_of_work`): an ALTCHA challenge
(the `altcha` library's v1 scheme: find the number n with SHA-256(salt + n) = challenge,
the challenge signed with an HMAC), served by `serve` itself: no third party, no cookie.
A browser solves one in about a second (web/static/pow.js); a bot posting a thousand
addresses pays a thousand of them. A solution is accepted once (a replayed payload is
refused) and for 20 minutes.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

MAX_NUMBER = 50_000  # ~25,000 SHA-256 rounds on average in the browser
LIFETIME = 20 * 60  # seconds a challenge may be solved and posted in


class ProofOfWork:
    """Challenges made and solutions checked under one key; used solutions remembered
    until they expire (per process: `serve --workers N` checks each in the worker that
    got it, so a payload could be replayed at most once per worker)."""

    def __init__(self, secret: bytes) -> None:
        self._key = hashlib.sha256(b"dripper altcha v1" + secret).hexdigest()
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()

    def challenge(self) -> dict[str, Any]:
        import datetime

        from altcha.v1 import ChallengeOptions, create_challenge

        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=LIFETIME)
        options = ChallengeOptions(hmac_key=self._key, max_number=MAX_NUMBER, expires=expires)
        made = create_challenge(options)
        return dict(made.to_dict())

    def verify(self, payload: str) -> bool:
        """A genuine, unexpired solution never used before."""
        import base64
        import binascii
        import json

        from altcha.v1 import verify_solution

        if not payload or len(payload) > 2000:
            return False
        try:
            data = json.loads(base64.b64decode(payload, validate=True))
        except (ValueError, binascii.Error):
            return False
        if not isinstance(data, dict) or not isinstance(data.get("number"), int):
            return False
        ok, _error = verify_solution(payload, self._key, check_expires=True)
        if not ok:
            return False
        # Remembered by the challenge, not the salt: the library accepts a salt with or
        # without its closing "&", so the salt as sent could be replayed in its other form.
        key = str(data.get("challenge"))
        now = time.time()
        with self._lock:
            if key in self._used:
                return False
            if len(self._used) > 100_000:  # expired ones go first
                self._used = {s: t for s, t in self._used.items() if t > now}
            self._used[key] = now + LIFETIME
        return True
