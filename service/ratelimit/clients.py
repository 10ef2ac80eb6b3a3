"""Who the client is, for rate limits only: the address is hashed at once and never stored or logged.

Behind a proxy every connection comes from the proxy. The proxies are named by the operator
(``RUECKHALT_TRUSTED_PROXIES``); for a request from one of them, the client is the right-most address of
``X-Forwarded-For`` that is not itself a trusted proxy. Everything left of it was written by the client and
proves nothing (a flooder would put a new address there with every request), so it is never read.

IPv6 clients are keyed by their /64: a single home connection or phone gets a whole /64 and can use a new
address of it for every request.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# An entry of X-Forwarded-For longer than this is no address; it is keyed as it is, cut short.
_MAX_ENTRY = 64


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]  # "[2001:db8::1]:443"
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]  # "192.0.2.1:443"
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_key(address: Address | None, raw: str) -> str:
    """The text the limiter hashes: an IPv4 address, an IPv6 /64, or (not an address) the entry itself."""
    if address is None:
        return raw.strip()[:_MAX_ENTRY] or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


class ClientResolver:
    def __init__(self, trusted: Sequence[Network]) -> None:
        self._trusted = tuple(trusted)

    def trusted(self, address: Address | None) -> bool:
        return address is not None and any(address in network for network in self._trusted)

    def resolve(self, peer: str | None, forwarded_for: Iterable[str]) -> str:
        """The client's rate-limit key for a connection from ``peer`` with these X-Forwarded-For headers."""
        peer_address = _address(peer) if peer else None
        if not self.trusted(peer_address):
            return client_key(peer_address, peer or "unknown")
        hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
        for hop in reversed(hops):
            address = _address(hop)
            if not self.trusted(address):
                return client_key(address, hop)
        # Only trusted proxies in the chain (a health check of the proxy itself): the left-most one.
        if hops:
            return client_key(_address(hops[0]), hops[0])
        return client_key(peer_address, peer or "unknown")
