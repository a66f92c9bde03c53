"""The upstream side of the wire: HTTP/1.1 as the proxy writes and reads it
itself (the default, --upstream-http 1.1) and libcurl's transfers
(--upstream-http 2). A TLS upstream (certificate verified, --upstream-ca,
http/1.1 offered in ALPN, connections reused; also through a CONNECT
proxy), a pooled connection the server
dropped (the request is sent again on a new one), and answer framings: 1xx
interim answers, chunked bodies cut anywhere, close-delimited bodies, garbage,
an answer cut short. Every case asserts both what the client got and what the
upstream received."""
import http.client
import json
import os
import socket
import ssl
import subprocess
import tempfile
import threading
import time

from gkm import KEYS, MODEL, TOKEN, Proxy, assert_no_keys, gen_body, test

GEN = "/v1beta/models/%s:generateContent" % MODEL
ANSWER = json.dumps({
    "candidates": [{"content": {"role": "model", "parts": [{"text": "wire ok"}]},
                    "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2,
                      "totalTokenCount": 5},
    "modelVersion": MODEL}).encode()


def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Listener:
    """A loopback listening socket whose connections each get a thread
    running self._serve(conn, n), n counting connections from 1."""

    def __init__(self):
        self.conns = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns += 1
                n = self.conns
            threading.Thread(target=self._serve, args=(c, n), daemon=True).start()

    def close(self):
        self.sock.close()


class TlsRelay(Listener):
    """TLS in front of the fake: accepts TLS on a loopback port, relays the
    plain bytes to the fake. Records each connection's ALPN choice."""

    def __init__(self, target_port, alpn):
        self.dir = tempfile.mkdtemp(prefix="gkm-tls-")
        self.cert = os.path.join(self.dir, "cert.pem")
        key = os.path.join(self.dir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", self.cert],
                       check=True, capture_output=True, timeout=30)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(self.cert, key)
        self.ctx.set_alpn_protocols(alpn)
        self.target = target_port
        self.alpn = []
        self.handshake_errors = 0
        super().__init__()

    def _serve(self, c, n):
        try:
            t = self.ctx.wrap_socket(c, server_side=True)
        except (ssl.SSLError, OSError):
            self.handshake_errors += 1
            c.close()
            return
        self.alpn.append(t.selected_alpn_protocol())
        u = socket.create_connection(("127.0.0.1", self.target))
        threading.Thread(target=pipe, args=(u, t), daemon=True).start()
        pipe(t, u)


class ConnectProxy(Listener):
    """An HTTP proxy that only tunnels (CONNECT host:port), as corporate
    proxies in front of Google do. Records each CONNECT target."""

    def __init__(self):
        self.targets = []
        super().__init__()

    def _serve(self, c, n):
        head, rest = read_head(c, b"")
        if head is None:
            c.close()
            return
        line = head.split(b"\r\n")[0].decode("latin-1").split(" ")
        if line[0] != "CONNECT":
            c.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            c.close()
            return
        self.targets.append(line[1])
        host, port = line[1].rsplit(":", 1)
        u = socket.create_connection((host, int(port)))
        c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        if rest:
            u.sendall(rest)
        threading.Thread(target=pipe, args=(u, c), daemon=True).start()
        pipe(c, u)


def read_head(conn, buf):
    while b"\r\n\r\n" not in buf:
        d = conn.recv(65536)
        if not d:
            return None, buf
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head, rest


class WireServer(Listener):
    """An upstream written at the byte level. answer(conn_no, nth, req)
    returns the bytes to send (None: close without answering) and whether
    to close afterwards. Records every request it reads."""

    def __init__(self, answer):
        self.answer = answer
        self.requests = []
        super().__init__()

    def _serve(self, c, conn_no):
        buf = b""
        nth = 0
        try:
            while True:
                head, buf = read_head(c, buf)
                if head is None:
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, version = lines[0].split(" ")
                hdrs = {}
                for l in lines[1:]:
                    k, v = l.split(":", 1)
                    hdrs.setdefault(k.strip().lower(), []).append(v.strip())
                n = int(hdrs.get("content-length", ["0"])[0])
                nth += 1
                req = {"conn": conn_no, "nth": nth, "method": method,
                       "target": target, "version": version,
                       "headers": hdrs, "body": None}
                if hdrs.get("x-case") == ["early"]:
                    # Refuse a large body at once, unread, and close hard.
                    with self.lock:
                        self.requests.append(req)
                    c.sendall(b"HTTP/1.1 413 Payload Too Large\r\n"
                              b"Content-Type: application/json\r\n"
                              b"Connection: close\r\nContent-Length: %d\r\n\r\n"
                              % len(TOO_LARGE) + TOO_LARGE)
                    return
                while len(buf) < n:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                req["body"], buf = buf[:n], buf[n:]
                with self.lock:
                    self.requests.append(req)
                out, close = self.answer(conn_no, nth, req)
                if out is None:
                    return
                for piece in (out if isinstance(out, list) else [out]):
                    c.sendall(piece)
                if close:
                    return
        except OSError:
            pass
        finally:
            c.close()


TOO_LARGE = json.dumps({"error": {"code": 413, "status": "FAILED_PRECONDITION",
                                   "message": "Request payload too large."}}).encode()


def ok_answer(extra=b""):
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + extra +
            b"Content-Length: %d\r\n\r\n" % len(ANSWER) + ANSWER)


def check_request(req, port):
    """What every request upstream must look like."""
    assert req["version"] == "HTTP/1.1", req
    assert req["method"] == "POST", req
    assert req["target"] == GEN, req["target"]
    h = req["headers"]
    assert h["host"] == ["127.0.0.1:%d" % port], h.get("host")
    assert h["x-goog-api-key"][0] in KEYS, h
    assert "authorization" not in h and "key=" not in req["target"]
    assert TOKEN not in json.dumps({k: v for k, v in h.items()})
    assert h["accept-encoding"] == ["identity"], h
    if req["body"] is None:
        return  # refused unread (the "early" case)
    assert h["content-length"] == [str(len(req["body"]))], h
    assert json.loads(req["body"]) == json.loads(gen_body()), req["body"]


@test()
def tls_upstream_verified_and_reused(fake):
    for args, alpn, want in ((["--upstream-http", "1.1"], ["h2", "http/1.1"], "http/1.1"),
                             (["--upstream-http", "2"], ["http/1.1"], "http/1.1")):
        relay = TlsRelay(fake.port, alpn)
        url = "https://127.0.0.1:%d" % relay.port
        try:
            fake.clear()
            with Proxy(url, keys=KEYS[:2],
                       args=args + ["--upstream-ca", relay.cert]) as px:
                for i in range(4):
                    st, _, body = px.generate()
                    assert st == 200, (args, st, body)
                    assert b"candidates" in body
                # A stream over TLS arrives whole.
                fake.config(stream={"chunks": 4, "chunk_delay_ms": 20})
                st, h, body = px.request(
                    "POST", "/v1beta/models/%s:streamGenerateContent?alt=sse" % MODEL,
                    body=gen_body())
                assert st == 200, (st, body)
                events = [l for l in body.split(b"\r\n") if l.startswith(b"data: ")]
                assert len(events) == 4, body
                reqs = fake.requests()
                assert [r["key"] for r in reqs[:4]] == [KEYS[0], KEYS[1]] * 2
                assert_no_keys(body)
            # The 1.1 engine offers only http/1.1, even to a server that
            # prefers h2; sequential requests share one connection.
            assert relay.alpn and set(relay.alpn) == {want}, (args, relay.alpn)
            assert len(relay.alpn) == 1, (args, relay.alpn)
        finally:
            relay.close()
    # Without the CA the certificate is refused: nothing reaches the fake.
    relay = TlsRelay(fake.port, ["http/1.1"])
    try:
        fake.clear()
        with Proxy("https://127.0.0.1:%d" % relay.port, keys=KEYS[:1],
                   args=["--server-retries", "0"]) as px:
            st, _, body = px.generate()
            assert st == 502, (st, body)
            assert json.loads(body)["error"]["code"] == 502
            assert "certificate" in px.log().lower(), px.log()[-800:]
        assert fake.requests() == []
        assert relay.alpn == [] and relay.handshake_errors >= 1
    finally:
        relay.close()


@test()
def tls_through_a_connect_proxy(fake):
    # Through a proxy that only tunnels, as corporate proxies in front of
    # Google do. With the HTTP/1.1 engine the bytes go through libcurl's
    # tunnel and TLS (curl_easy_send/recv), not to the socket: a request,
    # a stream, and connections reused inside the tunnel. (The relay's
    # fake speaks HTTP/1.1 only, so it offers h2 only to the engine that
    # must refuse it.)
    for engine, alpn in (("1.1", ["h2", "http/1.1"]), ("2", ["http/1.1"])):
        relay = TlsRelay(fake.port, alpn)
        px_ = ConnectProxy()
        try:
            fake.clear()
            with Proxy("https://127.0.0.1:%d" % relay.port, keys=KEYS[:1],
                       args=["--upstream-ca", relay.cert, "--upstream-http", engine,
                             "--upstream-proxy", px_.url]) as px:
                for _ in range(3):
                    st, _, body = px.generate()
                    assert st == 200, (engine, st, body)
                fake.config(stream={"chunks": 3, "chunk_delay_ms": 20})
                st, _, body = px.request(
                    "POST", "/v1beta/models/%s:streamGenerateContent?alt=sse" % MODEL,
                    body=gen_body())
                assert st == 200, (engine, st, body)
                assert len([l for l in body.split(b"\r\n") if l.startswith(b"data: ")]) == 3
            assert px_.targets == ["127.0.0.1:%d" % relay.port], (engine, px_.targets)
            assert relay.alpn == ["http/1.1"], (engine, relay.alpn)
            assert [r["key"] for r in fake.requests()] == [KEYS[0]] * 4
        finally:
            relay.close()
            px_.close()


@test()
def dropped_pooled_connection_retried(fake):
    # The server answers the first request on each connection and drops
    # the connection when a second one arrives on it: the proxy sends that
    # request again on a new connection (with no retry of its own allowed),
    # and the client never sees the drop.
    srv = WireServer(lambda conn, nth, req: (ok_answer(), False) if nth == 1
                     else (None, True))
    try:
        with Proxy(srv.url, keys=KEYS[:1], args=["--server-retries", "0"]) as px:
            for i in range(3):
                st, _, body = px.generate()
                assert st == 200, (i, st, body)
                assert json.loads(body)["candidates"][0]["content"]["parts"][0]["text"] == "wire ok"
        reqs = srv.requests
        assert [(r["conn"], r["nth"]) for r in reqs] == \
            [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1)], [(r["conn"], r["nth"]) for r in reqs]
        for r in reqs:
            check_request(r, srv.port)
    finally:
        srv.close()


@test()
def idle_connections_expire(fake):
    # --upstream-keepalive: a connection idle for longer is not reused (a
    # NAT may have dropped it silently); 0 means a new one every time.
    srv = WireServer(lambda conn, nth, req: (ok_answer(), False))
    try:
        for engine, keep, pause, want in (
                ("1.1", "1s", 1.3, [1, 1, 2]),
                ("2", "1s", 2.3, [3, 3, 4]),  # libcurl counts whole seconds
                ("1.1", "0", 0, [5, 6, 7]),
                ("2", "0", 0, [8, 9, 10])):
            n0 = len(srv.requests)
            with Proxy(srv.url, keys=KEYS[:1],
                       args=["--upstream-http", engine,
                             "--upstream-keepalive", keep]) as px:
                for i in range(3):
                    if i == 2:
                        time.sleep(pause)
                    st, _, body = px.generate()
                    assert st == 200, (engine, keep, st, body)
            got = [r["conn"] for r in srv.requests[n0:]]
            assert got == want, (engine, keep, got)
    finally:
        srv.close()


def framed(conn, nth, req):
    t = req["headers"].get("x-case", [""])[0]
    if t == "interim":
        return ([b"HTTP/1.1 100 Continue\r\n\r\n",
                 b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n",
                 ok_answer(b"X-Upstream: final \t \r\nX-Empty:   \r\n")], False)
    if t == "chunked":
        # Chunks cut at every awkward place, an extension, a trailer.
        raw = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n")
        body = ANSWER
        a, b = body[:7], body[7:]
        raw += b"%x;ext=1\r\n" % len(a) + a + b"\r\n"
        raw += b"%x\r\n" % len(b) + b + b"\r\n0\r\nX-Trailer: t\r\n\r\n"
        return ([raw[i:i + 5] for i in range(0, len(raw), 5)], False)
    if t == "close":
        return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Connection: close\r\n\r\n" + ANSWER, True)
    if t in ("nobody204", "nobody304"):
        code = int(t[6:])
        return (b"HTTP/1.1 %d X\r\nContent-Length: 10\r\nETag: \"e\"\r\n\r\n" % code,
                False)
    if t == "garbage":
        return (b"SPDY/3 what is this\r\n\r\n", True)
    if t == "short":
        return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % (len(ANSWER) + 50) + ANSWER, True)
    if t == "leaky":
        # An error that quotes the key, sent in pieces.
        key = req["headers"]["x-goog-api-key"][0]
        err = json.dumps({"error": {"code": 500, "status": "INTERNAL",
                                    "message": "internal error for " + key}}).encode()
        raw = (b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % len(err) + err)
        return ([raw[i:i + 3] for i in range(0, len(raw), 3)], False)
    return (ok_answer(), False)


@test()
def answer_framings(fake):
    srv = WireServer(framed)
    try:
        for engine in ("1.1", "2"):
            with Proxy(srv.url, keys=KEYS[:1],
                       args=["--server-retries", "0", "--upstream-http", engine]) as px:
                for case in ("interim", "chunked", "close", "plain"):
                    st, h, body = px.request("POST", GEN, body=gen_body(),
                                             headers={"X-Case": case})
                    assert st == 200, (engine, case, st, body)
                    assert json.loads(body) == json.loads(ANSWER), (engine, case, body)
                    if case == "interim":
                        # Blanks around values are not part of them.
                        assert h.get("x-upstream") == "final", h
                        assert h.get("x-empty") in ("", None), h
                    if case == "chunked":
                        assert "x-trailer" not in h, h
                # An answer that comes while the request body is still
                # going out (the server refuses it unread and closes) is
                # the outcome, not a connection error.
                big = json.dumps({"contents": [{"role": "user", "parts": [
                    {"text": "x" * (24 << 20)}]}]})
                st, _, body = px.request("POST", GEN, body=big,
                                         headers={"X-Case": "early"})
                assert st == 413, (engine, st, body[:300])
                assert json.loads(body)["error"]["code"] == 413
                # 204 and 304 have no body, whatever Content-Length says.
                for code in (204, 304):
                    st, _, body = px.request("POST", GEN, body=gen_body(),
                                             headers={"X-Case": "nobody%d" % code})
                    assert st == code and body == b"", (engine, code, st, body)
                for case in ("garbage",):
                    st, _, body = px.request("POST", GEN, body=gen_body(),
                                             headers={"X-Case": case})
                    assert st == 502, (engine, case, st, body)
                    assert json.loads(body)["error"]["code"] == 502
                # An answer cut short never reaches the client as complete.
                c = http.client.HTTPConnection("127.0.0.1", px.port, timeout=10)
                c.request("POST", GEN, body=gen_body(),
                          headers={"x-goog-api-key": TOKEN, "X-Case": "short",
                                   "Content-Type": "application/json"})
                try:
                    r = c.getresponse()
                    got = r.read()
                    complete = r.status == 200 and json.loads(got) == json.loads(ANSWER) \
                        and r.getheader("content-length") == str(len(ANSWER) + 50)
                    assert not complete, (r.status, got)
                except (http.client.IncompleteRead, ConnectionError):
                    pass
                finally:
                    c.close()
                st, _, body = px.request("POST", GEN, body=gen_body(),
                                         headers={"X-Case": "leaky"})
                assert st == 500, (st, body)
                assert "internal error for" in json.loads(body)["error"]["message"]
                assert_no_keys(body)
                assert_no_keys(px.log())
                # Still serving after all of it.
                st, _, _ = px.generate()
                assert st == 200
        for r in srv.requests:
            check_request(r, srv.port)
    finally:
        srv.close()


if __name__ == "__main__":
    from gkm import run
    run()
