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
                 mask, run, test)


def raw(port, data, read=True, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = b""
    if read:
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
        except socket.timeout:
            pass
    s.close()
    return out


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
            st, _, body = px.request("POST", "/v1beta/models/%s:generateContent" % MODEL,
                                     body=big)
            # libevent 2.1 answers an over-cap body itself, before any
            # handler runs: the status is right, the body is its own short
            # HTML page (documented in docs/troubleshooting.md).
            assert st == 413, st
        except (ConnectionError, BrokenPipeError):
            raise AssertionError("expected a 413 answer, got a reset")
        assert fake.requests() == []
        assert px.generate()[0] == 200


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
