"""Bad input never crashes or wedges the proxy and gets Gemini-shaped
errors; real keys never reach a client or the log; the command line
contract (--help, --check, refusals, exit codes)."""
import json
import os
import socket
import subprocess
import tempfile
import time

from gkm import (BIN, KEYS, MODEL, TOKEN, Proxy, assert_no_keys, gen_body,
                 mask, raw, recv_all, run, test)


@test()
def garbage_and_half_sent_requests(fake):
    with Proxy(fake.url, args=["--client-timeout", "2s"]) as px:
        out = raw(px.port, b"\x00\x01\x02 garbage \xff\xfe\r\n\r\n")
        assert b"400" in out.split(b"\r\n")[0] or out == b"", out[:80]
        raw(px.port, b"GET /v1beta/models HTTP/1.1\r\nHost: x\r\n", read=False)
        raw(px.port, b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"con"
            % ("/v1beta/models/%s:generateContent" % MODEL).encode(), read=False)
        raw(px.port, b"GET / HTTP/1.1\r\n" + b"X-Long: " + b"a" * 200000 + b"\r\n\r\n")
        assert px.generate()[0] == 200
        # Malformed JSON goes upstream unchanged; its 400 comes back.
        st, _, body = px.request("POST", "/v1beta/models/%s:generateContent" % MODEL,
                                 body="{not json")
        assert st == 400 and json.loads(body)["error"]["code"] == 400
        assert px.proc.p.poll() is None


@test()
def oversized_body_413(fake):
    with Proxy(fake.url, args=["--max-body-size", "1M"]) as px:
        big = json.dumps({"contents": [{"parts": [{"text": "x" * (2 * 1024 * 1024)}]}]})
        try:
            st, h, body = px.request("POST", "/v1beta/models/%s:generateContent" % MODEL,
                                     body=big)
        except (ConnectionError, BrokenPipeError):
            raise AssertionError("expected a 413 answer, got a reset")
        assert st == 413, st
        err = json.loads(body)["error"]
        assert err["code"] == 413 and err["status"] == "INVALID_ARGUMENT", err
        assert "1048576 bytes" in err["message"] and "--max-body-size" in err["message"]
        # A chunked body is counted as it arrives.
        chunk = b"x" * 65536
        data = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20))
        out = raw(px.port, b"POST /v1beta/models/%s:generateContent HTTP/1.1\r\n"
                  b"Host: x\r\nx-goog-api-key: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
                  % (MODEL.encode(), TOKEN.encode()) + data + b"0\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 413 "), out[:80]
        assert json.loads(out.split(b"\r\n\r\n", 1)[1])["error"]["code"] == 413
        # A client that asks first (Expect: 100-continue) is refused before
        # it sends the body.
        s = socket.create_connection(("127.0.0.1", px.port), timeout=5)
        s.sendall(b"POST /v1beta/models/%s:generateContent HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: 5000000\r\nExpect: 100-continue\r\n\r\n" % MODEL.encode())
        head = s.recv(65536)
        s.close()
        assert head.startswith(b"HTTP/1.1 413 ") and b"Connection: close" in head, head[:200]
        assert fake.requests() == []
        assert px.generate()[0] == 200


def http_parts(out):
    """Split raw bytes holding back-to-back HTTP/1.1 answers with a
    Content-Length into (status, headers, body) tuples."""
    parts = []
    while out:
        head, _, rest = out.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            hdrs[k.strip().lower().decode()] = v.strip().decode()
        n = int(hdrs.get("content-length", "0"))
        parts.append((status, hdrs, rest[:n]))
        out = rest[n:]
    return parts


@test()
def http_protocol_edges(fake):
    gen = ("/v1beta/models/%s:generateContent" % MODEL).encode()
    with Proxy(fake.url, args=["--client-timeout", "2s", "--max-header-size", "8K"]) as px:
        # Every refusal is a JSON error in Gemini's shape, then a close.
        cases = [
            (b"\x00\x01\x02 garbage \xff\xfe\r\n\r\n", 400),
            (b"GET /v1beta/models HTTP/1.1\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n", 431),
            (b"GET /v1beta/models HTTP/1.1\r\n" + b"X-A: b\r\n" * 300 + b"\r\n", 431),
            (b"TRACE /v1beta/models HTTP/1.1\r\nHost: x\r\n\r\n", 405),
            (b"POST %s HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" % gen, 400),
            # Blanks the parser skips count against the limit too.
            (b"GET /v1beta/models HTTP/1.1\r\nX-A:" + b" " * 20000 + b"v\r\n\r\n", 431),
        ]
        for data, want in cases:
            out = raw(px.port, data)
            (st, h, body), = http_parts(out)
            assert st == want and h.get("connection") == "close", (want, out[:200])
            assert json.loads(body)["error"]["code"] == want, body
        assert fake.requests() == []

        # Pipelined requests are answered in order on one connection; a
        # chunked request body reaches the upstream decoded.
        one = gen_body("pipelined")
        req = (b"POST %s HTTP/1.1\r\nHost: x\r\nx-goog-api-key: %s\r\nContent-Length: %d\r\n\r\n"
               % (gen, TOKEN.encode(), len(one)) + one.encode())
        chunked = (b"POST %s HTTP/1.1\r\nHost: x\r\nx-goog-api-key: %s\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n" % (gen, TOKEN.encode())
                   + b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n"
                   % (10, one[:10].encode(), len(one) - 10, one[10:].encode()))
        last = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        out = raw(px.port, req + chunked + req + last)
        parts = http_parts(out)
        assert [p[0] for p in parts] == [200, 200, 200, 200], [p[:2] for p in parts]
        ids = [p[1]["x-request-id"] for p in parts[:3]]
        assert ids == sorted(ids) and len(set(ids)) == 3, ids
        assert parts[3][1].get("connection") == "close"
        reqs = fake.requests()
        assert len(reqs) == 3 and all(r["body"] == one for r in reqs), reqs
        assert all(r["headers"].get("content-length") == str(len(one)) for r in reqs)
        assert all("transfer-encoding" not in r["headers"] for r in reqs)

        # Trailers after a chunked body are dropped (they once corrupted
        # the header index); garbage after a HEAD request gets a full 400.
        out = raw(px.port, b"POST %s HTTP/1.1\r\nHost: x\r\nx-goog-api-key: %s\r\n"
                  b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n%x\r\n%s\r\n0\r\n"
                  b"X-Trailer: %s\r\n\r\n" % (gen, TOKEN.encode(), len(one), one.encode(), b"t" * 300))
        (st, h, body), = http_parts(out)
        assert st == 200 and h.get("x-request-id"), out[:300]
        assert "x-trailer" not in fake.requests()[-1]["headers"]
        out = raw(px.port, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n\x01bad\r\n\r\n")
        first, _, rest = out.partition(b"\r\n\r\n")
        (st, h, body), = http_parts(rest)
        assert first.startswith(b"HTTP/1.1 200") and st == 400, out
        assert json.loads(body)["error"]["code"] == 400

        # A client that stops sending (half-close) still gets the answers
        # that are ready (one still waiting for the upstream is cancelled,
        # as a client that left).
        s = socket.create_connection(("127.0.0.1", px.port), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
        s.shutdown(socket.SHUT_WR)
        got = recv_all(s)
        s.close()
        assert got.count(b"HTTP/1.1 200") == 2, got[:200]

        # HTTP/1.0: answered, then closed; HEAD: headers only.
        out = raw(px.port, b"GET /healthz HTTP/1.0\r\n\r\n")
        assert out.startswith(b"HTTP/1.0 200 ") and b"Connection: close" in out, out
        out = raw(px.port, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n", timeout=1)
        (st, h, body), = http_parts(out)
        assert st == 200 and h["content-length"] == "16" and out.endswith(b"\r\n\r\n"), out

        # Expect: 100-continue gets its interim answer, then the real one.
        s = socket.create_connection(("127.0.0.1", px.port), timeout=5)
        s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nx-goog-api-key: %s\r\nContent-Length: %d\r\n"
                  b"Expect: 100-continue\r\n\r\n" % (gen, TOKEN.encode(), len(one)))
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(one.encode())
        assert s.recv(65536).startswith(b"HTTP/1.1 200 ")

        # An idle keep-alive connection is closed after --client-timeout.
        t0 = time.monotonic()
        s.settimeout(6)
        assert s.recv(100) == b""
        assert 1.5 < time.monotonic() - t0 < 4.5, time.monotonic() - t0
        s.close()
        assert px.generate()[0] == 200
        assert px.proc.p.poll() is None


@test(timeout=120)
def mutated_requests_never_break_the_server(fake):
    # Valid requests cut short, bytes flipped, inserted or dropped, sent
    # whole or in small pieces: every one gets an answer or a close, and
    # the proxy keeps serving (this runs under ASan+UBSan too).
    import random
    rnd = random.Random(20261127)
    gen = ("/v1beta/models/%s:generateContent" % MODEL).encode()
    one = gen_body("mutant").encode()
    seeds = [
        b"POST %s HTTP/1.1\r\nHost: x\r\nx-goog-api-key: %s\r\nContent-Length: %d\r\n\r\n%s"
        % (gen, TOKEN.encode(), len(one), one),
        b"POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"%x\r\n%s\r\n0\r\n\r\n" % (gen, TOKEN.encode(), len(one), one),
        b"GET /v1beta/models?key=%s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % TOKEN.encode(),
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
        b"Content-Length: 60\r\n\r\n{\"model\":\"gemini-2.5-flash\",\"messages\":[{\"role\":\"user\"}]}"
        % TOKEN.encode(),
    ]
    with Proxy(fake.url, args=["--client-timeout", "1s"]) as px:
        for i in range(400):
            m = bytearray(rnd.choice(seeds))
            for _ in range(rnd.randint(1, 4)):
                if not m:
                    break
                op = rnd.randrange(4)
                pos = rnd.randrange(len(m))
                if op == 0:
                    m[pos] = rnd.randrange(256)
                elif op == 1:
                    m[pos:pos] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 8)))
                elif op == 2:
                    del m[pos:pos + rnd.randint(1, 8)]
                else:
                    m = m[:pos]
            s = socket.create_connection(("127.0.0.1", px.port), timeout=3)
            try:
                if not m:
                    pass
                elif i % 3 == 0:
                    for j in range(0, len(m), 7):
                        s.sendall(bytes(m[j:j + 7]))
                else:
                    s.sendall(bytes(m) * rnd.randint(1, 2))
                if i % 25:  # else: wait for --client-timeout to close it
                    s.shutdown(socket.SHUT_WR)
                while s.recv(65536):
                    pass
            except (ConnectionError, socket.timeout):
                pass
            finally:
                s.close()
        assert px.proc.p.poll() is None
        assert px.generate()[0] == 200
        assert_no_keys(px.log())


@test()
def keys_never_leak(fake):
    # Google quotes the key in some errors; whatever reaches the client or
    # the log shows it masked.
    with Proxy(fake.url, keys=KEYS[:2], args=["--log-level", "debug",
                                               "--max-attempts", "1"]) as px:
        fake.config(rules=[{"key": KEYS[0], "respond": "suspended", "times": 1},
                           {"key": KEYS[1], "respond": "status", "status": 400, "times": 1,
                            "body": {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                               "message": "Bad field near 'api_key:%s'" % KEYS[1]}}}])
        st, h, body = px.generate()
        assert st == 403, (st, body)
        msg = json.loads(body)["error"]["message"]
        assert mask(KEYS[0]) in msg, msg
        assert_no_keys(body)
        assert_no_keys(json.dumps(h))
        st, h, body = px.generate()
        assert st == 400, (st, body)
        assert mask(KEYS[1]) in json.loads(body)["error"]["message"]
        assert_no_keys(body)
        for _ in range(3):
            st, h, body = px.request("GET", "/v1beta/models")
            assert_no_keys(body)
        assert_no_keys(px.log())
        assert_no_keys(px.proc.output())
        assert TOKEN not in px.log()


def run_bin(args, cwd=None, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([BIN] + args, cwd=cwd, env=e, capture_output=True,
                          text=True, timeout=20)


@test()
def command_line_contract(fake):
    r = run_bin(["--help"])
    assert r.returncode == 0 and "--listen" in r.stdout and "GKM_LISTEN" in r.stdout
    r = run_bin(["--version"])
    assert r.returncode == 0 and "gemini-key-manager" in r.stdout
    d = tempfile.mkdtemp(prefix="gkm-it-")
    r = run_bin(["--check"], cwd=d)
    assert r.returncode != 0 and "key.txt" in r.stderr, r.stderr
    with open(os.path.join(d, "key.txt"), "w") as f:
        f.write("# comment\n\n  %s  \n%s project=p1\n%s\n" % (KEYS[0], KEYS[1], KEYS[0]))
    r = run_bin(["--check"], cwd=d)
    assert r.returncode == 0, r.stderr
    assert "2 key(s)" in r.stdout and mask(KEYS[0]) in r.stdout
    assert_no_keys(r.stdout + r.stderr)
    r = run_bin(["--check", "--listen", "0.0.0.0:5000"], cwd=d)
    assert r.returncode != 0 and "default token" in r.stderr, r.stderr
    r = run_bin(["--check", "--listen", "0.0.0.0:5000"], cwd=d,
                env={"GKM_TOKEN": "a-long-secret-token"})
    assert r.returncode == 0, r.stderr
    r = run_bin(["--check", "--listen", "[::1]:5000", "--token", "t1"], cwd=d)
    assert r.returncode == 0, r.stderr
    r = run_bin(["--check", "--reset-timezone", "Mars/Olympus"], cwd=d)
    assert r.returncode != 0 and "Mars/Olympus" in r.stderr
    r = run_bin(["--bogus"], cwd=d)
    assert r.returncode != 0 and "--bogus" in r.stderr
    # Flags win over the environment.
    r = run_bin(["--check", "--upstream", "http://127.0.0.1:1"], cwd=d,
                env={"GKM_UPSTREAM": "http://127.0.0.1:2"})
    assert "http://127.0.0.1:1" in r.stdout
    empty = tempfile.mkdtemp(prefix="gkm-it-")
    open(os.path.join(empty, "key.txt"), "w").close()
    r = run_bin([], cwd=empty)
    assert r.returncode != 0 and "key.txt" in r.stderr and "no keys" in r.stderr, r.stderr


@test()
def upstream_unreachable_502(fake):
    with Proxy("http://127.0.0.1:9", args=["--connect-timeout", "2s"]) as px:
        st, _, body = px.generate()
        assert st == 502, (st, body)
        assert json.loads(body)["error"]["code"] == 502
        assert px.proc.p.poll() is None


if __name__ == "__main__":
    run()
