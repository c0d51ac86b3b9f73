"""Outbound requests to evaluation endpoints (``evaluation.outbound`` and ``EndpointGenerator``):
allowed by an allowlist, never to loopback / private / link-local / metadata addresses unless an
entry allows that exact host, checked after resolution on every try, connected to the checked
address only, no redirects, and no body of a refused reply shown.

The "internal service" is a real HTTP server on loopback that answers with a secret: a test fails
if the secret or a request ever reaches it where it must not."""

from __future__ import annotations

import doctest
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address

import pytest

from evaluation import outbound
from evaluation.generate import EndpointGenerator, GenerationSettings
from evaluation.outbound import OutboundPolicy, OutboundRefused, address_problem, parse_allowlist, parse_rule, parse_url
from tests.evaluation.runs_harness import ChatServer

SECRET = "root:x:0:0:SECRET-of-the-internal-service"
MESSAGES = [{"role": "user", "content": "Weather in Lyon?"}]
REAL_GETADDRINFO = socket.getaddrinfo
REAL_CONNECT = socket.socket.connect


def policy_of(*entries: str, private: bool = False) -> OutboundPolicy:
    return OutboundPolicy(tuple(parse_rule(e, private=private) for e in entries))


def ask(url: str, policy: OutboundPolicy, **settings):
    """One chat request through the generator; its Generation."""
    gen = GenerationSettings(**{"retries": 0, "retry_backoff": 0.0, "timeout": 5, **settings})
    [g] = EndpointGenerator(url, "m", gen, policy=policy).generate([(MESSAGES, [])])
    return g


@pytest.fixture
def internal():
    """The service an attacker is after: on loopback, answering every request with the secret."""
    with ChatServer(lambda body: {"content": SECRET}) as server:
        yield server


@pytest.fixture
def dns(monkeypatch):
    """Names answered from ``dns[name]``: a list of addresses, or a list of such lists taken one
    per lookup (the last repeats). Every other name is resolved as usual. ``dns.lookups[name]``."""

    class FakeDNS(dict):
        lookups: dict[str, int] = {}

    answers = FakeDNS()
    answers.lookups = {}

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        n = answers.lookups[host] = answers.lookups.get(host, 0) + 1
        given = answers[host]
        addresses = given[min(n, len(given)) - 1] if isinstance(given[0], list) else given
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port, 0, 0) if ":" in a else (a, port)) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


@pytest.fixture
def connects(monkeypatch):
    """Every address a socket of this process connects to; only loopback is really reachable here,
    anything else is refused at once (no test waits on the network)."""
    seen: list[tuple] = []

    def connect(sock, address):
        seen.append(address[:2])
        if not ip_address(address[0]).is_loopback:
            raise ConnectionRefusedError(111, "Connection refused")
        return REAL_CONNECT(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


def test_the_module_examples_hold():
    assert doctest.testmod(outbound).failed == 0


# --- reading URLs and entries ---------------------------------------------------------------------

@pytest.mark.parametrize("url, says", [
    ("ftp://gpu-box/v1", "http:// or https://"),
    ("localhost:8000", "http:// or https://"),
    ("http:///v1", "http:// or https://"),
    ("http://user:pw@gpu-box:8000/v1", "user name or password"),
    ("http://gpu-box@127.0.0.1:6379/", "user name or password"),
    ("http://127.0.0.1\\@gpu-box/v1", "backslashes"),
    ("http://gpu box/v1", "spaces"),
    ("http://2130706433/v1", "four decimal numbers"),  # 127.0.0.1 as one number
    ("http://0x7f.1/v1", "four decimal numbers"),
    ("http://127.1/v1", "four decimal numbers"),
    ("http://017700000001/v1", "four decimal numbers"),
    ("http://[fe80::1%25eth0]:8000/v1", "not a host name"),
    ("http://gpu-box:99999/v1", "port"),
    ("http://gpu-box:0/v1", "port"),
])
def test_an_endpoint_url_that_hides_where_it_goes_is_refused(url, says):
    with pytest.raises(OutboundRefused, match=says):
        parse_url(url)


def test_a_url_is_compared_in_one_spelling():
    t = parse_url("HTTPS://Model.Example.COM.:8443/v1/chat/completions")
    assert (t.scheme, t.host, t.port, t.path) == ("https", "model.example.com", 8443, "/v1/chat/completions")
    assert parse_url("http://[::FFFF:127.0.0.1]/v1").host == "::ffff:7f00:1"
    assert parse_url("http://gpu-box/v1").port == 80


@pytest.mark.parametrize("url, entries, allowed", [
    ("http://gpu-box:8000/v1", ["gpu-box:8000"], True),
    ("http://gpu-box:8001/v1", ["gpu-box:8000"], False),  # another port of the host
    ("http://gpu-box:8001/v1", ["gpu-box"], True),  # no port: any
    ("https://api.example.com/v1", ["*.example.com"], True),
    ("https://a.b.example.com/v1", ["*.example.com:443"], True),
    ("https://example.com/v1", ["*.example.com"], False),  # the wildcard is for subdomains
    ("https://evilexample.com/v1", ["*.example.com"], False),
    ("https://api.example.com.evil.net/v1", ["*.example.com"], False),
    ("http://[::1]:8000/v1", ["[::1]:8000"], True),
    ("http://169.254.169.254/latest/meta-data/", ["*.example.com", "gpu-box"], False),
])
def test_an_url_must_match_an_allowlist_entry(url, entries, allowed):
    policy = policy_of(*entries)
    if allowed:
        assert policy.allow(url).host
    else:
        with pytest.raises(OutboundRefused, match="is not on the endpoint allowlist"):
            policy.allow(url)


@pytest.mark.parametrize("text, private, says", [
    ("http://gpu-box:8000", False, "without a scheme"),
    ("gpu-box:port", False, "port must be a number"),
    ("*", False, "wildcard may only start"),
    ("*.com", False, "two labels"),
    ("gpu-*.example.com", False, "wildcard may only start"),
    ("*.example.com", True, "one exact host"),
    ("", False, "Give a host"),
])
def test_a_bad_allowlist_entry_says_what_is_wrong(text, private, says):
    with pytest.raises(ValueError, match=says):
        parse_rule(text, private=private)


def test_the_allowlist_setting_reads_hosts_ports_and_the_word_private():
    rules = parse_allowlist("vllm:8000 private,\n *.example.com:443 , [fd00::5]:8000 private")
    assert [(r.host, r.port, r.private) for r in rules] == [
        ("vllm", 8000, True), ("*.example.com", 443, False), ("fd00::5", 8000, True)]
    with pytest.raises(ValueError, match="'vllm:8000 public'"):
        parse_allowlist("vllm:8000 public")
    with pytest.raises(ValueError, match="one exact host"):
        parse_allowlist("*.example.com private")


# --- addresses ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("address, kind, allowable", [
    ("127.0.0.1", "a loopback address", True),
    ("127.8.9.10", "a loopback address", True),
    ("::1", "a loopback address", True),
    ("10.1.2.3", "a private address", True),
    ("172.16.5.4", "a private address", True),
    ("172.31.255.254", "a private address", True),
    ("192.168.1.10", "a private address", True),
    ("fd12:3456::1", "a private address", True),
    ("100.64.0.1", "a non-public address", True),  # carrier-grade NAT
    ("169.254.10.20", "a link-local address", True),
    ("fe80::1", "a link-local address", True),
    ("169.254.169.254", "a cloud metadata address", False),
    ("fd00:ec2::254", "a cloud metadata address", False),
    ("100.100.100.200", "a cloud metadata address", False),
    ("0.0.0.0", "an unspecified address", False),
    ("::", "an unspecified address", False),
    ("224.0.0.1", "a multicast address", False),
    ("ff02::1", "a multicast address", False),
    ("255.255.255.255", "a broadcast address", False),
    ("240.0.0.1", "a reserved address", False),
    ("::ffff:127.0.0.1", "a loopback address", True),  # IPv4-mapped IPv6
    ("::ffff:169.254.169.254", "a cloud metadata address", False),
    ("::ffff:10.0.0.1", "a private address", True),
    ("64:ff9b::a9fe:a9fe", "a cloud metadata address", False),  # NAT64 of 169.254.169.254
    ("2002:7f00:1::", "a loopback address", True),  # 6to4 of 127.0.0.1
    ("::127.0.0.1", "a loopback address", True),  # IPv4-compatible
])
def test_addresses_that_are_not_public_are_named(address, kind, allowable):
    assert address_problem(ip_address(address)) == (kind, allowable)


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.215.14", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address):
    assert address_problem(ip_address(address)) is None


# --- requests ------------------------------------------------------------------------------------------

def test_a_url_off_the_allowlist_is_refused_before_any_request(internal):
    with pytest.raises(OutboundRefused, match="not on the endpoint allowlist"):
        EndpointGenerator(internal.url, "m", GenerationSettings())  # no policy: nothing is allowed
    with pytest.raises(OutboundRefused, match="not on the endpoint allowlist"):
        EndpointGenerator(internal.url, "m", GenerationSettings(), policy=policy_of("gpu-box:8000"))
    assert internal.requests == []


@pytest.mark.parametrize("host, entry, said", [
    ("127.0.0.1", "127.0.0.1", "127.0.0.1 is a loopback address"),
    ("localhost", "localhost", "localhost resolves to 127.0.0.1, a loopback address"),  # /etc/hosts
    ("[::1]", "[::1]", "[::1] is a loopback address"),
    ("[::ffff:127.0.0.1]", "[::ffff:127.0.0.1]", "is a loopback address"),
    ("model.example.com", "*.example.com", "model.example.com resolves to 127.0.0.1, a loopback address"),
    ("mapped.example.com", "*.example.com", "resolves to ::ffff:127.0.0.1, a loopback address"),
    ("mixed.example.com", "*.example.com", "resolves to 127.0.0.1, a loopback address"),
])
def test_an_allowed_name_that_leads_to_loopback_is_refused_after_resolution(internal, dns, connects, host, entry,
                                                                           said):
    dns["model.example.com"] = ["127.0.0.1"]
    dns["mapped.example.com"] = ["::ffff:127.0.0.1"]
    dns["mixed.example.com"] = ["93.184.215.14", "127.0.0.1"]  # one bad address refuses the host
    g = ask(f"http://{host}:{internal.port}/v1", policy_of(entry), retries=2)
    assert g.error.startswith("the request failed after 1 try: refused: ")  # a refusal is not retried
    assert said in g.error and "private addresses are refused unless an admin allows them" in g.error
    assert connects == [] and internal.requests == [] and SECRET not in g.error and g.text == ""


@pytest.mark.parametrize("url", [
    "http://10.1.2.3:8000/v1", "http://172.16.0.5/v1", "http://192.168.1.10:8000/v1",
    "http://100.64.0.1/v1", "http://[fd12::1]:8000/v1", "http://169.254.10.20/v1",
])
def test_private_ranges_are_refused_without_connecting(connects, url):
    target = parse_url(url)
    g = ask(url, policy_of(target.authority))
    assert "refused: " in g.error and ("private" in g.error or "link-local" in g.error)
    assert connects == []


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://100.100.100.200/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "http://0.0.0.0:{port}/v1",  # on Linux this reaches loopback
])
def test_metadata_and_unspecified_addresses_stay_refused_even_where_private_ones_are_allowed(internal, connects,
                                                                                           url):
    url = url.format(port=internal.port)
    g = ask(url, policy_of(parse_url(url).authority, private=True))
    assert "which is never allowed" in g.error
    assert connects == [] and internal.requests == []


def test_an_entry_that_allows_private_addresses_reaches_that_host_and_port_only(internal):
    with ChatServer(lambda body: {"content": "the model's answer"}) as allowed:
        policy = policy_of(f"127.0.0.1:{allowed.port}", private=True)
        g = ask(allowed.url, policy)
        assert g.error == "" and g.text == "the model's answer" and len(allowed.requests) == 1
    with pytest.raises(OutboundRefused, match="not on the endpoint allowlist"):
        ask(internal.url, policy)  # the same host, another port
    assert internal.requests == []


def test_the_connection_goes_to_the_address_that_was_checked(dns, connects):
    """The HTTP client does not resolve the name again: a DNS answer that changes after the check
    (rebinding) is never connected to."""
    with ChatServer(lambda body: {"content": "pinned"}) as server:
        dns["vllm.internal.example"] = [["127.0.0.1"], ["10.255.255.1"]]
        g = ask(f"http://vllm.internal.example:{server.port}/v1",
                policy_of(f"vllm.internal.example:{server.port}", private=True))
    assert g.text == "pinned" and dns.lookups == {"vllm.internal.example": 1}
    assert connects == [("127.0.0.1", server.port)]
    assert server.requests[0]["host"] == f"vllm.internal.example:{server.port}"  # the name, not the address


def test_every_try_resolves_and_checks_again_so_a_rebound_name_is_refused(internal, dns, connects):
    """Try 1: the name is public and the connect fails; try 2: it now points at loopback: refused,
    never connected, where a client resolving on its own would have reached the internal service."""
    dns["rebind.example.com"] = [["93.184.215.14"], ["127.0.0.1"]]
    g = ask(f"http://rebind.example.com:{internal.port}/v1", policy_of("*.example.com"), retries=3)
    assert dns.lookups == {"rebind.example.com": 2}
    assert connects == [("93.184.215.14", internal.port)]
    assert "after 2 tries: refused: rebind.example.com resolves to 127.0.0.1, a loopback address" in g.error
    assert internal.requests == [] and SECRET not in g.error


class _Redirector:
    """A server on loopback that answers every POST with ``status`` and a Location elsewhere."""

    def __init__(self, status: int, location: str):
        hits = self.hits = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hits.append(self.path)
                body = f"Moved to {location}: {SECRET}".encode()
                self.send_response(status)
                self.send_header("Location", location)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("status, phrase", [(302, "Found"), (307, "Temporary Redirect"), (308, "Permanent Redirect")])
def test_a_redirect_from_an_allowed_server_is_not_followed(internal, status, phrase):
    server = _Redirector(status, f"http://127.0.0.1:{internal.port}/v1/chat/completions")
    try:
        g = ask(f"http://127.0.0.1:{server.port}/v1", policy_of(f"127.0.0.1:{server.port}", private=True), retries=2)
    finally:
        server.close()
    assert g.error == f"the request failed after 1 try: HTTP {status} {phrase} (redirects are not followed)"
    assert len(server.hits) == 1 and internal.requests == [] and SECRET not in g.error


def _raw_server(reply: bytes):
    """A TCP server on loopback that answers every connection with ``reply`` (not HTTP: Redis-like)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)

    def serve():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    return sock


@pytest.mark.parametrize("status, text, says", [
    (401, f'{{"error": "{SECRET}"}}', "HTTP 401 Unauthorized"),
    (404, SECRET, "HTTP 404 Not Found"),
    (503, SECRET, "HTTP 503 Service Unavailable"),
    (200, f"+PONG {SECRET}", "the reply is not JSON"),
    (200, f'{{"data": "{SECRET}"}}', "the reply has no choices[0].message"),
])
def test_a_reply_that_is_not_a_completion_shows_its_status_not_its_body(status, text, says):
    with ChatServer(lambda body: (status, text)) as server:
        g = ask(server.url, server.policy)
    assert says in g.error and SECRET not in g.error and g.text == "" and g.message is None


def test_a_server_that_does_not_speak_http_is_not_quoted():
    sock = _raw_server(f"-ERR unknown command 'POST', {SECRET}\r\n".encode())
    try:
        port = sock.getsockname()[1]
        g = ask(f"http://127.0.0.1:{port}/v1", policy_of(f"127.0.0.1:{port}", private=True))
    finally:
        sock.close()
    assert "the reply is not valid HTTP" in g.error and SECRET not in g.error and "ERR" not in g.error
