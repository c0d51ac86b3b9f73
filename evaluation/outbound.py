"""Outbound requests to evaluation endpoints: allowed, not assumed (pure; no Django).

An evaluation posts to an OpenAI-compatible server a lead names by URL. Left open, that is a
server-side request forgery with the reply readable: the cloud metadata service, Redis on
127.0.0.1:6379, anything on the private network. So a request goes out only when:

1. the URL is plain ``http(s)://host[:port]/path``: no user name or password, no odd IPv4
   spellings (``0x7f.1``, ``2130706433``), no whitespace or backslashes (:func:`parse_url`);
2. its host (and port) match an entry of the allowlist an admin keeps (:class:`AllowRule`,
   ``host``, ``host:port`` or ``*.example.com``);
3. every address the host resolves to is public, unless the entry names that exact host and
   allows private addresses (a vLLM server on the internal network, on loopback in tests).
   Unspecified, multicast, broadcast, reserved and cloud-metadata addresses are never allowed;
   IPv4 inside IPv6 (``::ffff:127.0.0.1``, 6to4, Teredo, NAT64) is judged by the IPv4 address;
4. the connection goes to an address that was checked, resolved afresh for every connection,
   never again by the HTTP client (no DNS rebinding between the check and the connect);
5. a redirect is not followed, and the body of a reply that is not 2xx is never read: the caller
   sees the status (:func:`describe_status`).

>>> policy = OutboundPolicy((parse_rule("gpu-box:8000", private=True), parse_rule("*.example.com")))
>>> policy.allow("http://GPU-box:8000/v1").host
'gpu-box'
>>> policy.allow("http://169.254.169.254/latest/meta-data/")
Traceback (most recent call last):
...
evaluation.outbound.OutboundRefused: 169.254.169.254 is not on the endpoint allowlist; an admin adds it under Admin › Allowed endpoints.
>>> address_problem(ip_address("::ffff:127.0.0.1"))
('a loopback address', True)
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
from dataclasses import dataclass
from http import HTTPStatus
from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_address
from typing import Iterable
from urllib.parse import urlsplit

SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_REPLY_BYTES = 64 * 1024 * 1024  # a chat completion is kilobytes; more is a misbehaving server
URL_HINT = "Give the server base URL with http:// or https:// (e.g. http://localhost:8000/v1)."
WHERE_TO_ALLOW = "an admin adds it under Admin › Allowed endpoints"

# Instance metadata services (AWS / GCP / Azure / OpenStack, AWS over IPv6, ECS task credentials,
# Alibaba): never an endpoint, whatever an allowlist entry says.
METADATA_ADDRESSES = frozenset(ip_address(a) for a in (
    "169.254.169.254", "fd00:ec2::254", "169.254.170.2", "169.254.170.23", "100.100.100.200"))
_NAT64 = IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = IPv6Network("::/96")
_BROADCAST = IPv4Address("255.255.255.255")
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)")
_HOST_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?")

IPAddress = IPv4Address | IPv6Address


class OutboundRefused(Exception):
    """A request the policy does not allow; the message is for the user (it names the host)."""


class BadReply(OSError):
    """The server's answer is not a usable HTTP reply; the message never quotes what it sent."""


# --- URLs and hosts ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """A URL the policy has read: ``host`` normalised (lower case, IDNA, no brackets), ``port``
    explicit, ``path`` with its query (what goes on the request line)."""

    scheme: str
    host: str
    port: int
    path: str

    @property
    def is_ip(self) -> bool:
        return _as_ip(self.host) is not None

    @property
    def authority(self) -> str:
        """``host:port`` as the user reads it (an IPv6 host in brackets).

        >>> Target("http", "::1", 8000, "/").authority
        '[::1]:8000'
        """
        return f"{_bracketed(self.host)}:{self.port}"


def parse_url(url: str) -> Target:
    """The parts of an endpoint URL, or :class:`OutboundRefused` saying what is wrong with it.

    >>> parse_url("https://Model.Example.com./v1/chat/completions?x=1")
    Target(scheme='https', host='model.example.com', port=443, path='/v1/chat/completions?x=1')
    >>> parse_url("http://user:pw@gpu-box:8000/v1")
    Traceback (most recent call last):
    ...
    evaluation.outbound.OutboundRefused: A user name or password in the URL is not accepted.
    """
    text = (url or "").strip()
    if not text:
        raise OutboundRefused(URL_HINT)
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 or ch == "\\" for ch in text):
        raise OutboundRefused("The URL contains spaces, control characters or backslashes.")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES or not parts.netloc:
        raise OutboundRefused(URL_HINT)
    if "@" in parts.netloc:
        raise OutboundRefused("A user name or password in the URL is not accepted.")
    try:
        port = parts.port
    except ValueError:
        raise OutboundRefused("The port must be a number from 1 to 65535.") from None
    if port == 0:
        raise OutboundRefused("The port must be a number from 1 to 65535.")
    if not parts.hostname:
        raise OutboundRefused("The URL has no host.")
    host = normalize_host(parts.hostname)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme=scheme, host=host, port=port or DEFAULT_PORTS[scheme], path=path)


def normalize_host(host: str) -> str:
    """A host name in the one spelling rules are compared in, or :class:`OutboundRefused`.

    >>> normalize_host("[::FFFF:7f00:1]"), normalize_host("Bücher.example.")
    ('::ffff:7f00:1', 'xn--bcher-kva.example')
    >>> normalize_host("0x7f.1")
    Traceback (most recent call last):
    ...
    evaluation.outbound.OutboundRefused: Write an IPv4 address as four decimal numbers (e.g. 10.0.0.5), not 0x7f.1.
    """
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if "%" in host:  # an IPv6 zone (fe80::1%eth0) or percent-encoding: neither names an endpoint
        raise OutboundRefused(f"{host} is not a host name or an IP address.")
    ip = _as_ip(host)
    if ip is not None:
        return str(ip)
    host = host.rstrip(".")
    labels = host.split(".")
    if all(_NUMERIC_LABEL.fullmatch(label) for label in labels):  # inet_aton would read these as IPv4
        raise OutboundRefused(f"Write an IPv4 address as four decimal numbers (e.g. 10.0.0.5), not {host}.")
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise OutboundRefused(f"{host} is not a valid host name.") from None
    if len(ascii_host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in ascii_host.split(".")):
        raise OutboundRefused(f"{host} is not a valid host name.")
    return ascii_host


def _as_ip(host: str) -> IPAddress | None:
    try:
        return ip_address(host)
    except ValueError:
        return None


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# --- addresses -----------------------------------------------------------------------------------

def embedded_ipv4(ip: IPAddress) -> IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo's client, NAT64, compatible).

    >>> str(embedded_ipv4(ip_address("64:ff9b::a00:1")))
    '10.0.0.1'
    """
    if not isinstance(ip, IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(ip: IPAddress) -> tuple[str, bool] | None:
    """None for a public address; else what the address is, and whether an allowlist entry that
    allows private addresses can allow it (loopback, private, link-local: yes; metadata,
    unspecified, multicast, broadcast, reserved: never).

    >>> address_problem(ip_address("8.8.8.8")) is None
    True
    >>> address_problem(ip_address("169.254.169.254")), address_problem(ip_address("10.1.2.3"))
    (('a cloud metadata address', False), ('a private address', True))
    """
    inner = embedded_ipv4(ip)
    if inner is not None:
        problem = address_problem(inner)
        if problem or ip.ipv4_mapped is not None or ip in _IPV4_COMPATIBLE:  # these reach the IPv4 address
            return problem
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address", False
    if ip.is_unspecified:
        return "an unspecified address", False
    if ip.is_multicast:
        return "a multicast address", False
    if ip == _BROADCAST:
        return "a broadcast address", False
    if ip.is_loopback:
        return "a loopback address", True
    if ip.is_link_local:
        return "a link-local address", True
    if ip.is_reserved:
        return "a reserved address", False
    if ip.is_private:
        return "a private address", True
    if not ip.is_global:  # shared address space (100.64.0.0/10) and the like
        return "a non-public address", True
    return None


# --- the allowlist ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class AllowRule:
    """One allowlist entry: an exact host or ``*.suffix``, any port or one, and whether the host
    may resolve to loopback / private / link-local addresses (exact hosts only)."""

    host: str
    port: int | None = None
    private: bool = False

    @property
    def wildcard(self) -> bool:
        return self.host.startswith("*.")

    def matches(self, target: Target) -> bool:
        if self.port is not None and self.port != target.port:
            return False
        if self.wildcard:
            return not target.is_ip and target.host.endswith(self.host[1:])
        return self.host == target.host

    def __str__(self) -> str:
        host = _bracketed(self.host)
        return f"{host}:{self.port}" if self.port is not None else host

    def to_dict(self) -> dict:
        return {"host": self.host, "port": self.port, "private": self.private}


def parse_rule(text: str, *, private: bool = False) -> AllowRule:
    """An allowlist entry from ``host``, ``host:port``, ``*.example.com[:port]``, ``10.0.0.5:8000``
    or ``[::1]:8000``; ValueError saying what is wrong.

    >>> parse_rule("[::1]:8000", private=True)
    AllowRule(host='::1', port=8000, private=True)
    >>> parse_rule("*.example.com", private=True)
    Traceback (most recent call last):
    ...
    ValueError: Private addresses can be allowed for one exact host, not for *.example.com.
    """
    text = (text or "").strip().lower()
    if not text:
        raise ValueError("Give a host, host:port or *.domain.")
    if "://" in text or "/" in text or "@" in text:
        raise ValueError(f"Give a host or host:port (e.g. gpu-box:8000), without a scheme or path: {text}")
    host, port = text, None
    bracketed = re.fullmatch(r"\[([^\]]+)\](?::(\d*))?", text)
    if bracketed:
        host, port_text = bracketed.group(1), bracketed.group(2)
        if port_text is not None:
            port = _port(port_text, text)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        port = _port(port_text, text)
    wildcard = host.startswith("*.")
    if "*" in (host[2:] if wildcard else host):
        raise ValueError(f"A wildcard may only start a host name (*.example.com): {text}")
    try:
        host = ("*." + normalize_host(host[2:])) if wildcard else normalize_host(host)
    except OutboundRefused as exc:
        raise ValueError(str(exc)) from None
    if wildcard and ("." not in host[2:] or _as_ip(host[2:]) is not None):
        raise ValueError(f"A wildcard needs a domain of two labels or more (*.example.com): {text}")
    if wildcard and private:
        raise ValueError(f"Private addresses can be allowed for one exact host, not for {host}.")
    return AllowRule(host=host, port=port, private=private)


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"The port must be a number from 1 to 65535: {entry}")
    return int(text)


def parse_allowlist(text: str) -> list[AllowRule]:
    """The ``STUDIO_ENDPOINT_ALLOWLIST`` setting: entries separated by commas or new lines, each
    ``HOST[:PORT]``, followed by the word ``private`` where that host may resolve to private
    addresses. ValueError names the entry at fault.

    >>> [str(r) + (" private" if r.private else "") for r in parse_allowlist("vllm:8000 private, *.example.com")]
    ['vllm:8000 private', '*.example.com']
    """
    rules = []
    for entry in re.split(r"[,\n]", text or ""):
        words = entry.split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and words[1].lower() != "private"):
            raise ValueError(f"{entry.strip()!r}: write HOST[:PORT], optionally followed by the word private")
        try:
            rules.append(parse_rule(words[0], private=len(words) == 2))
        except ValueError as exc:
            raise ValueError(f"{entry.strip()!r}: {exc}") from None
    return rules


@dataclass(frozen=True)
class OutboundPolicy:
    """The allowlist a request is checked against. The empty policy allows nothing."""

    rules: tuple[AllowRule, ...] = ()

    @classmethod
    def from_list(cls, rules: Iterable[dict]) -> "OutboundPolicy":
        """From the job file (``to_list``'s output)."""
        return cls(tuple(AllowRule(host=r["host"], port=r.get("port"), private=bool(r.get("private")))
                         for r in rules))

    def to_list(self) -> list[dict]:
        return [r.to_dict() for r in self.rules]

    def allow(self, url: str) -> Target:
        """The URL's target when an entry allows it; else :class:`OutboundRefused`."""
        target = parse_url(url)
        if not any(r.matches(target) for r in self.rules):
            shown = target.authority if target.port != DEFAULT_PORTS[target.scheme] else _bracketed(target.host)
            raise OutboundRefused(f"{shown} is not on the endpoint allowlist; {WHERE_TO_ALLOW}.")
        return target

    def private_allowed(self, target: Target) -> bool:
        return any(r.private and not r.wildcard and r.matches(target) for r in self.rules)

    def check_address(self, target: Target, address: str) -> None:
        """:class:`OutboundRefused` unless ``target`` may connect to ``address``."""
        problem = address_problem(ip_address(address.split("%")[0]))
        if problem is None:
            return
        kind, allowable = problem
        said = "is" if target.is_ip else f"resolves to {address},"
        if not allowable:
            raise OutboundRefused(f"{_bracketed(target.host)} {said} {kind}, which is never allowed.")
        if not self.private_allowed(target):
            raise OutboundRefused(f"{_bracketed(target.host)} {said} {kind}; private addresses are refused unless "
                                  f"an admin allows them for {target.authority} on the endpoint allowlist.")

    def resolve(self, target: Target) -> list[str]:
        """The addresses ``target`` may connect to: every address its host resolves to, checked
        (one refused address refuses the host). ``socket.gaierror`` when it does not resolve."""
        if target.is_ip:
            addresses = [target.host]
        else:
            infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
            addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            self.check_address(target, address)
        return addresses


# --- requests --------------------------------------------------------------------------------------

@dataclass
class Reply:
    """A reply's status; the body only of a 2xx reply (the body of any other is never read)."""

    status: int
    body: bytes = b""
    retry_after: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def describe_status(status: int) -> str:
    """A non-2xx status as the user reads it: the code and its standard phrase, not the server's.

    >>> describe_status(302)
    'HTTP 302 Found (redirects are not followed)'
    """
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    text = f"HTTP {status} {phrase}".strip()
    return text + " (redirects are not followed)" if 300 <= status < 400 else text


def post(policy: OutboundPolicy, url: str, body: bytes, headers: dict[str, str], *, timeout: float,
         max_bytes: int = MAX_REPLY_BYTES, context: ssl.SSLContext | None = None) -> Reply:
    """POST ``body`` to ``url`` under ``policy``: checked, resolved and checked again now, connected
    to a checked address only, redirects not followed. :class:`OutboundRefused` when the policy
    refuses it; ``OSError`` (:class:`BadReply` among them) when the network or the server fails."""
    target = policy.allow(url)
    addresses = policy.resolve(target)
    conn, error = None, None
    for address in addresses:  # as socket.create_connection does, but over checked addresses only
        candidate = pinned_connection(target, address, timeout, context=context)
        try:
            candidate.connect()
        except OSError as exc:
            candidate.close()
            error = exc
            continue
        conn = candidate
        break
    if conn is None:
        raise error or OSError(f"{target.host} has no address")
    try:
        conn.request("POST", target.path, body=body, headers=headers)
        resp = conn.getresponse()
        reply = Reply(status=resp.status, retry_after=resp.getheader("Retry-After"))
        if reply.ok:
            data = resp.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise BadReply(f"the reply is larger than {max_bytes // (1024 * 1024)} MiB")
            reply.body = data
        return reply
    except http.client.RemoteDisconnected:
        raise BadReply("the server closed the connection without a reply") from None
    except http.client.HTTPException as exc:  # BadStatusLine and others quote what the server sent
        raise BadReply(f"the reply is not valid HTTP ({type(exc).__name__})") from None
    finally:
        conn.close()


def pinned_connection(target: Target, address: str, timeout: float, *,
                      context: ssl.SSLContext | None = None) -> http.client.HTTPConnection:
    """An HTTP(S) connection to ``target`` that connects to ``address`` and nowhere else: the Host
    header, TLS SNI and certificate check still use ``target.host``."""
    if target.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            target.host, target.port, timeout=timeout, context=context or ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout)

    # http.client opens its socket through this attribute (``connect`` calls it with the host it
    # was given, which it would resolve again); pointing it at the checked address pins the connect.
    def connect_to_checked(_address, timeout=timeout, source_address=None):
        return _connect(address, target.port, timeout)

    conn._create_connection = connect_to_checked  # type: ignore[attr-defined]
    return conn


def _connect(address: str, port: int, timeout) -> socket.socket:
    """A TCP connection to a numeric address (no name resolution at all)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if isinstance(timeout, (int, float)):
            sock.settimeout(timeout)
        sock.connect((address, port))
    except BaseException:
        sock.close()
        raise
    return sock
