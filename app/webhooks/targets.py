"""Where a webhook may be sent: the URL's form, and the addresses it is sent to.

A webhook is a URL an admin types and a worker inside the service's network calls: without these rules it
would let whoever registers one reach the service's own network (server-side request forgery). So:

- the URL is `http://` or `https://`, with a host, no username or password, at most MAX_URL characters;
- the host is resolved once (`getaddrinfo`, in a thread, within the timeout) and **every** address it resolves
  to must be allowed, else the target is refused; the request then connects to those addresses only (the
  next one only when the connection to one fails; the URL's host goes in the `Host` header, and for https in
  the TLS SNI and the certificate check), so a second lookup that answers differently (DNS rebinding) is
  never made;
- refused always: unspecified (`0.0.0.0`, `::`), link-local (`169.254.0.0/16` — the cloud metadata service —
  and `fe80::/10`), the cloud metadata addresses named in METADATA, multicast, reserved and broadcast;
- loopback (`127.0.0.0/8`, `::1`) only with `IKL_WEBHOOK_ALLOW_LOOPBACK`;
- any other address that is not globally routable (private `10/8`, `172.16/12`, `192.168/16`, `fc00::/7`, shared
  `100.64/10`, documentation and benchmarking ranges, …) only with `IKL_WEBHOOK_ALLOW_PRIVATE`;
- IPv6 forms that carry an IPv4 address (`::ffff:a.b.c.d`, 6to4, Teredo, NAT64 `64:ff9b::/96`) are judged by it.

The rules run when a webhook is registered or changed (a 400 naming the reason) and again before every
delivery (a failed attempt naming it).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from app.errors import ValidationFailed
from app.settings import Settings

MAX_URL = 2048
IP = ipaddress.IPv4Address | ipaddress.IPv6Address
# cloud metadata services outside link-local: AWS over IPv6, Alibaba Cloud, Azure's wire server
METADATA = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200",
                                                        "168.63.129.16"))
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class TargetRefused(Exception):
    """The URL, or an address its host resolves to, may not be called (`code`, and why in the message)."""

    def __init__(self, message: str, code: str = "WEBHOOK_TARGET_REFUSED"):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Target:
    """A checked URL and the addresses to connect to (every one allowed; tried in order, the next only when
    the connection to one fails)."""

    url: str     # as registered
    scheme: str
    host: str    # the URL's host (no brackets), for the Host header and the TLS SNI
    port: int
    ips: tuple[IP, ...]

    @property
    def ip(self) -> IP:
        return self.ips[0]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def pinned_url(self, ip: IP | None = None) -> str:
        """The URL with its host replaced by an address (the first by default): what is connected to."""
        ip = ip or self.ip
        parts = urlsplit(self.url)
        host = f"[{ip}]" if ip.version == 6 else str(ip)
        return urlunsplit((self.scheme, f"{host}:{self.port}", parts.path or "/", parts.query, ""))


def check_form(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL of the allowed form, else TargetRefused."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise TargetRefused(f"The URL must be 1 to {MAX_URL} characters", "INVALID_URL")
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        raise TargetRefused("The URL has spaces or control characters", "INVALID_URL")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetRefused("The URL is not valid", "INVALID_URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise TargetRefused("Only http:// and https:// URLs can be webhooks", "INVALID_URL")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("A webhook URL may not carry a username or password (sign with the secret instead)",
                            "INVALID_URL")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise TargetRefused("The URL has no host", "INVALID_URL")
    return scheme, host, port or (443 if scheme == "https" else 80)


def _embedded_v4(ip: IP) -> ipaddress.IPv4Address | None:
    if ip.version != 6:
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal(ip: IP, settings: Settings) -> str | None:
    """Why `ip` may not be called under `settings` (None: it may)."""
    inner = _embedded_v4(ip)
    if inner is not None:  # judged by the IPv4 address it carries
        return refusal(inner, settings)
    if ip in METADATA:
        return f"{ip} is a cloud metadata address"
    if ip.is_unspecified:
        return f"{ip} is the unspecified address"
    if ip.is_link_local:
        return f"{ip} is link-local (the cloud metadata service lives there)"
    if ip.is_loopback:  # before `is_reserved`: ::1 lies in the reserved ::/8
        return None if settings.webhook_allow_loopback else \
            f"{ip} is loopback (this machine; IKL_WEBHOOK_ALLOW_LOOPBACK allows it)"
    if ip.is_multicast or ip.is_reserved or (ip.version == 4 and ip == ipaddress.IPv4Address("255.255.255.255")):
        return f"{ip} is a multicast, broadcast or reserved address"
    if not ip.is_global:
        return None if settings.webhook_allow_private else \
            f"{ip} is a private or non-public address (IKL_WEBHOOK_ALLOW_PRIVATE allows it)"
    return None


async def _addresses(host: str, port: int, timeout: float) -> list[IP]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
    except (OSError, UnicodeError, asyncio.TimeoutError) as exc:
        raise TargetRefused(f"The host {host!r} does not resolve ({type(exc).__name__})",
                            "WEBHOOK_TARGET_UNRESOLVABLE") from None
    out: list[IP] = []
    for family, *_, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            ip = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
            if ip not in out:
                out.append(ip)
    if not out:
        raise TargetRefused(f"The host {host!r} has no IPv4 or IPv6 address", "WEBHOOK_TARGET_UNRESOLVABLE")
    return out


async def resolve(url: str, settings: Settings) -> Target:
    """The URL checked and its host resolved once: the address to connect to, else TargetRefused (a host with
    any refused address is refused)."""
    scheme, host, port = check_form(url)
    addresses = await _addresses(host, port, settings.webhook_timeout_seconds)
    for ip in addresses:
        if why := refusal(ip, settings):
            raise TargetRefused(f"This webhook target is not allowed: {why}"
                                + ("" if str(ip) == host else f" ({host} resolves to it)"))
    return Target(url=url, scheme=scheme, host=host, port=port, ips=tuple(addresses))


async def checked(url: str, settings: Settings, *, field: str = "url") -> Target:
    """`resolve`, with a refusal as a 400 naming `field` (registration)."""
    try:
        return await resolve(url, settings)
    except TargetRefused as exc:
        raise ValidationFailed(str(exc), {"field": field}, code=exc.code) from None
