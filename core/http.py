"""The client of an HTTP request as this deployment can know it.

Behind a reverse proxy, `REMOTE_ADDR` is the proxy. `X-Forwarded-For` names the client only
when the peer is one of `TRUSTED_PROXIES` (addresses or networks): anyone else could write any
address in it. Evidence, the audit log and rate limits all read the IP from here.
"""

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(proxy.strip(), strict=False) for proxy in proxies if proxy)


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _is_trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
    networks = _networks(tuple(settings.TRUSTED_PROXIES))
    return address is not None and any(address in network for network in networks)


def client_ip(request: HttpRequest) -> str | None:
    """The client's IP: the right-most `X-Forwarded-For` hop not added by a trusted proxy.

    Proxies append the address they received from, so the list is read from the right and
    trusted hops are skipped; the first untrusted one is the client. Without a trusted peer the
    header is ignored.
    """
    peer = _parse(request.META.get("REMOTE_ADDR", ""))
    if not _is_trusted(peer):
        return str(peer) if peer is not None else None
    hops = [_parse(hop) for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for hop in reversed(hops):
        if hop is None:
            break  # a malformed hop: nothing to its left can be trusted
        if not _is_trusted(hop):
            return str(hop)
    return str(peer)
