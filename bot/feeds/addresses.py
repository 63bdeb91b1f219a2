"""Where a fetch may go: a redirect or an item's link (an article page, a sitemap entry) that
leads to a private, loopback, link-local or otherwise non-public address is refused, judged on
the address the host name resolves to, so that a feed cannot make the bot reach the machine
it runs on, its network or a cloud metadata service (169.254.169.254).

A feed URL the operator configured is trusted as given (its redirects are not);
`[fetch] allow_private = true` lifts the rule (a bot that reads an intranet, the tests).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket


class PrivateAddress(Exception):
    """The target resolves to an address the bot does not fetch from."""


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def check_public(host: str, port: int | None) -> None:
    """PrivateAddress unless every address `host` resolves to is public."""
    name = host.strip("[]")
    try:
        addresses = [name] if _is_literal(name) else [
            info[4][0] for info in await asyncio.get_running_loop().getaddrinfo(
                name, port or 443, type=socket.SOCK_STREAM)]
    except socket.gaierror:
        return  # not resolvable: the fetch itself fails with its own readable error
    for address in addresses:
        if not is_public(str(address)):
            raise PrivateAddress(f"{host} is a private or local address ({address}): refused "
                                 f"(set [fetch] allow_private = true to allow it)")


def _is_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    return True
