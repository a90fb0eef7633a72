"""The signup's proof of work (web/pow.py): a solved challenge is accepted once, in any
spelling of its salt; a forged, unsolved or expired one never."""

from __future__ import annotations

import base64
import hashlib
import json

from dripper.web.pow import ProofOfWork


def solved(pow_: ProofOfWork) -> dict[str, object]:
    c = pow_.challenge()
    salt = str(c["salt"])
    number = next(
        n
        for n in range(int(c["maxNumber"]) + 1)
        if hashlib.sha256(f"{salt}{n}".encode()).hexdigest() == c["challenge"]
    )
    return {k: c[k] for k in ("algorithm", "challenge", "salt", "signature")} | {"number": number}


def encoded(data: dict[str, object]) -> str:
    return base64.b64encode(json.dumps(data).encode()).decode()


def test_a_solution_counts_once_in_any_spelling() -> None:
    """Accepted the first time; refused again, and refused with the salt's closing `&`
    taken off (the library accepts both spellings: the challenge is what is remembered)."""
    pow_ = ProofOfWork(b"k" * 32)
    data = solved(pow_)
    assert pow_.verify(encoded(data))
    assert not pow_.verify(encoded(data))
    assert not pow_.verify(encoded({**data, "salt": str(data["salt"]).rstrip("&")}))


def test_forged_and_unsolved_are_refused() -> None:
    """A wrong number, another key's challenge, garbage: refused."""
    pow_ = ProofOfWork(b"k" * 32)
    data = solved(pow_)
    assert not pow_.verify(encoded({**data, "number": int(str(data["number"])) + 1}))
    assert not ProofOfWork(b"other" * 8).verify(encoded(data))
    assert not pow_.verify("not base64 !")
    assert not pow_.verify("")
