"""A webhook step's POST (DESIGN 16): to allowed hosts only, never a private address by
surprise (no SSRF), signed, bounded in time and in the answer read.

The host must be listed in `[webhooks] allowed_hosts`. Its name is resolved here, and every
address it resolves to must be public, or itself listed: a listed name that resolves to
127.0.0.1 (a DNS rebinding, a typo in /etc/hosts) is refused unless 127.0.0.1 is listed
too. The request then goes to the address that was checked, not to a second lookup, with
the name kept for the Host header and for TLS (SNI and the certificate's check). A redirect
is never followed: it is a failure naming where it pointed. Plain http is only for a listed
loopback address (a receiver on the same machine).

The answer, mapped to the SMTP-like outcomes the delivery policy judges: 2xx sent; 408,
429, 5xx, a timeout or a refused connection deferred (retried on `[sending] retry`, failed
after `give_up_after`); a redirect, another 4xx or a refused host failed at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

import httpx

from dripper.campaigns.personal import host_problem
from dripper.engine.delivery import Outcome, OutcomeKind

SIGNATURE = "X-Dripper-Signature"  # hex HMAC-SHA256 of the body with [webhooks] secret_env
DELIVERY = "X-Dripper-Delivery"  # the same on every retry of one step: the receiver's key

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]


def signature(secret: str, body: bytes) -> str:
    """What `X-Dripper-Signature` carries: hex HMAC-SHA256 of the exact body bytes."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


async def system_resolve(host: str, port: int) -> list[str]:
    """The addresses the machine's resolver gives for `host`."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# Never reached unless listed, whatever `is_global` says of them: special-purpose ranges
# (IETF protocol assignments, benchmarking, documentation, shared, reserved, multicast).
BLOCKED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
        "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
        "::/96", "::1/128", "100::/64", "2001:db8::/32", "fc00::/7", "fe80::/10", "ff00::/8",
    )
)  # fmt: skip
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries and reaches: IPv4-mapped (::ffff:a.b.c.d),
    IPv4-compatible (::a.b.c.d), 6to4 (2002::/16), Teredo's client, NAT64 (64:ff9b::)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in net for net in NAT64) or int(address) >> 32 == 0:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _reachable(address: Address) -> bool:
    """Public, not special-purpose, and so is any IPv4 address it carries."""
    inner = embedded_ipv4(address)
    if inner is not None and not _reachable(inner):
        return False
    if any(address in net for net in BLOCKED if net.version == address.version):
        return False
    return address.is_global and not address.is_multicast


def address_problem(host: str, addresses: Sequence[str], allowed: Sequence[str]) -> str | None:
    """Whether every address `host` resolved to may be reached: public, or listed."""
    if not addresses:
        return f"refused: {host} resolves to no address"
    for text in addresses:
        try:
            address: Address = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            return f"refused: {host} resolves to {text!r}, not an address"
        mapped = getattr(address, "ipv4_mapped", None)
        if mapped is not None:
            address = mapped  # ::ffff:127.0.0.1 is 127.0.0.1
        if str(address) in allowed or _reachable(address):
            continue
        kind = (
            "loopback"
            if address.is_loopback
            else "link-local"
            if address.is_link_local
            else "private"
            if address.is_private
            else "not public"
        )
        return (
            f"refused: {host} resolves to {address} ({kind}), which is not listed in "
            "[webhooks] allowed_hosts"
        )
    return None


class WebhookClient:
    """POSTs webhook steps' bodies; one client (and its connections) per daemon."""

    def __init__(
        self,
        *,
        allowed_hosts: Sequence[str],
        secret: str | None,
        secret_env: str,
        timeout: float,
        max_answer: int,
        resolve: Resolver = system_resolve,
        simulated: bool = False,
    ) -> None:
        """`simulated`: nothing is ever posted (`dripper simulate`): every step "goes"."""
        self.allowed = tuple(allowed_hosts)
        self.secret = secret
        self.secret_env = secret_env
        self.timeout = timeout
        self.max_answer = max_answer
        self.resolve = resolve
        self.simulated = simulated
        # One client (and connection pool) per host name: a pool is keyed by the address
        # connected to, so two names on one address must never share a connection whose
        # TLS was checked for the other.
        self._clients: dict[str, httpx.AsyncClient] = {}

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    async def post(self, url: str, body: bytes, *, delivery: str, step: str) -> Outcome:
        """POST `body` (JSON) to `url`: the outcome, never an exception."""
        if self.simulated:
            return Outcome(OutcomeKind.SENT, reply="simulated: not posted")
        wrong = host_problem(url, self.allowed)
        if wrong is not None:
            return Outcome(OutcomeKind.FAILED, reply=f"refused: {wrong}")
        if not self.secret:
            return Outcome(
                OutcomeKind.DEFERRED,
                reply=f"not signed: set the environment variable {self.secret_env}",
            )
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = await asyncio.wait_for(self.resolve(host, port), self.timeout)
        except (OSError, TimeoutError) as exc:
            return Outcome(OutcomeKind.DEFERRED, reply=f"could not resolve {host}: {exc}")
        wrong = address_problem(host, addresses, self.allowed)
        if wrong is not None:
            return Outcome(OutcomeKind.FAILED, reply=wrong)
        # The request goes to the address just checked; the name stays in Host and SNI.
        chosen = ipaddress.ip_address(addresses[0].split("%", 1)[0])
        shown = f"[{chosen}]" if chosen.version == 6 else str(chosen)
        target = urlunsplit((parts.scheme, f"{shown}:{port}", parts.path or "/", parts.query, ""))
        headers = {
            "Host": parts.netloc.rsplit("@", 1)[-1],
            "Content-Type": "application/json",
            "User-Agent": "dripper-webhook",
            SIGNATURE: signature(self.secret, body),
            DELIVERY: delivery,
            "X-Dripper-Step": step,
        }
        try:
            return await asyncio.wait_for(self._exchange(target, host, body, headers), self.timeout)
        except TimeoutError:
            return Outcome(OutcomeKind.DEFERRED, reply=f"no answer within {self.timeout:g}s")
        except Exception as exc:  # the receiver's or the network's doing: retried, said
            return Outcome(OutcomeKind.DEFERRED, reply=f"{type(exc).__name__}: {exc}"[:300])

    async def _exchange(
        self, target: str, host: str, body: bytes, headers: dict[str, str]
    ) -> Outcome:
        client = self._clients.get(host)
        if client is None:
            # trust_env=False: no proxy from the environment, whose host was never checked.
            client = self._clients[host] = httpx.AsyncClient(
                follow_redirects=False, trust_env=False, timeout=self.timeout
            )
        request = client.build_request(
            "POST", target, content=body, headers=headers, extensions={"sni_hostname": host}
        )
        response = await client.send(request, stream=True)
        try:
            answer = bytearray()
            async for chunk in response.aiter_raw():
                answer += chunk[: self.max_answer + 1 - len(answer)]
                if len(answer) > self.max_answer:
                    break  # the rest is not read: a huge answer costs nothing
        finally:
            await response.aclose()
        said = bytes(answer[: self.max_answer]).decode("utf-8", "replace").strip()
        said = " ".join(said.split())[:200]
        code = response.status_code
        if 200 <= code < 300:
            return Outcome(OutcomeKind.SENT, code, None, said)
        if 300 <= code < 400:
            where = response.headers.get("location", "")[:200]
            return Outcome(OutcomeKind.FAILED, code, None, f"redirect to {where} not followed")
        if code in (408, 429) or code >= 500:
            return Outcome(OutcomeKind.DEFERRED, code, None, said or "server error")
        return Outcome(OutcomeKind.FAILED, code, None, said or "refused by the receiver")
