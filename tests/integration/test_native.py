"""Native Gemini passthrough: rotation order, client auth forms, what the
upstream receives (one credential, the real key, no client token), header
and query handling, requests without a model, non-429 errors relayed, and
reaching the upstream through an HTTP proxy."""
import base64
import gzip
import json
import subprocess
import time

from gkm import (BIN, KEYS, MODEL, TOKEN, Fake, Proxy, assert_no_keys, gen_body,
                 mask, raw, run, test)


@test()
def rotation_order(fake):
    with Proxy(fake.url, keys=KEYS[:3]) as px:
        for i in range(6):
            st, _, body = px.generate("round %d" % i)
            assert st == 200, (st, body)
            assert "round %d" % i in json.loads(body)["candidates"][0]["content"]["parts"][0]["text"]
        used = [r["key"] for r in fake.requests()]
        assert used == [KEYS[0], KEYS[1], KEYS[2]] * 2, [mask(k) for k in used]


@test()
def auth_forms(fake):
    with Proxy(fake.url) as px:
        for auth in ("header", "query", "bearer"):
            fake.clear()
            st, _, body = px.generate(auth=auth)
            assert st == 200, (auth, st, body)
            reqs = fake.requests()
            assert len(reqs) == 1
            r = reqs[0]
            # Exactly one credential upstream, the real key, as a header.
            assert r["auth"] == "header", r["auth"]
            assert r["key"] in KEYS[:3]
            assert "key=" not in r["query"], r["query"]
            assert "authorization" not in r["headers"]
            assert TOKEN not in json.dumps(r)
        fake.clear()
        for kw in ({"token": None}, {"token": "wrong-token"},
                   {"token": "wrong-token", "auth": "bearer"},
                   {"token": "wrong", "auth": "query"}):
            st, h, body = px.generate(**kw)
            assert st == 401, (kw, st)
            err = json.loads(body)["error"]
            assert err["code"] == 401 and err["status"] == "UNAUTHENTICATED"
            assert h["content-type"].startswith("application/json")
        # A valid header token plus a wrong query token is refused too.
        st, _, _ = px.request("POST", "/v1beta/models/%s:generateContent?key=bad" % MODEL,
                              body=gen_body())
        assert st == 401
        assert fake.requests() == [], "nothing may reach upstream unauthenticated"


@test()
def query_and_headers_forwarded(fake):
    with Proxy(fake.url) as px:
        st, _, _ = px.request(
            "POST", "/v1beta/models/%s:generateContent?alt=json&foo=bar%%20baz" % MODEL,
            body=gen_body(), auth="query",
            headers={"x-goog-api-client": "google-genai-sdk/1.0 gl-python/3.11",
                     "User-Agent": "it-test", "Cookie": "a=b",
                     "Connection": "keep-alive, X-Hop", "X-Hop": "secret",
                     "X-Server-Timeout": "600"})
        assert st == 200
        r = fake.requests()[0]
        assert r["query"] == "alt=json&foo=bar%20baz", r["query"]
        h = r["headers"]
        assert h.get("x-goog-api-client") == "google-genai-sdk/1.0 gl-python/3.11"
        assert h.get("user-agent") == "it-test"
        assert h.get("x-server-timeout") == "600"
        assert "cookie" not in h and "x-hop" not in h
        assert h.get("x-goog-api-key") == r["key"]
        assert json.loads(r["body"]) == json.loads(gen_body())
        assert "accept" not in h, h  # none sent, none added by libcurl
        fake.clear()
        st, _, _ = px.request("GET", "/v1beta/models",
                              headers={"Accept": "application/json"})
        assert st == 200
        assert fake.requests()[0]["headers"].get("accept") == "application/json"


@test()
def encoded_colon_and_no_model_paths(fake):
    with Proxy(fake.url, keys=KEYS[:2]) as px:
        st, _, body = px.request("POST", "/v1beta/models/%s%%3AgenerateContent" % MODEL,
                                 body=gen_body())
        assert st == 200, (st, body)
        assert fake.requests()[-1]["path"] == "/v1beta/models/%s:generateContent" % MODEL
        # Requests naming no model are rotated and forwarded too.
        fake.clear()
        for _ in range(2):
            st, _, body = px.request("GET", "/v1beta/models?pageSize=2")
            assert st == 200, (st, body)
            assert "models" in json.loads(body)
        keys = [r["key"] for r in fake.requests()]
        assert sorted(keys) == sorted(KEYS[:2]), [mask(k) for k in keys]
        assert fake.requests()[0]["query"] == "pageSize=2"


@test()
def recycled_upstream_handles_carry_nothing_over(fake):
    # Upstream transfers reuse configured curl handles (one at a time here,
    # so always the same one): each request must go out with its own method,
    # body and headers, nothing left from the one before. The proxy asks for
    # no compression (the client's Accept-Encoding is not forwarded) and
    # sends no "Expect: 100-continue".
    with Proxy(fake.url, keys=KEYS[:1]) as px:
        big = json.dumps({"contents": [{"role": "user", "parts": [
            {"text": "x" * (1100 * 1024)}]}]})
        steps = [("POST", "/v1beta/models/%s:generateContent" % MODEL, gen_body("one")),
                 ("DELETE", "/v1beta/files/abc123", None),
                 ("GET", "/v1beta/models?pageSize=1#fragment", None),
                 ("HEAD", "/v1beta/models", None),
                 ("PATCH", "/v1beta/cachedContents/c1?updateMask=ttl", '{"ttl":"60s"}'),
                 ("POST", "/v1beta/models/%s:countTokens" % MODEL, big),
                 ("GET", "/v1beta/models/%s" % MODEL, None)]
        for method, path, body in steps:
            fake.clear()
            st, _, _ = px.request(method, path, body=body,
                                  headers={"Accept-Encoding": "gzip"})
            reqs = fake.requests()
            assert len(reqs) == 1, (method, path, st, reqs)
            r = reqs[0]
            assert r["method"] == method, (method, r["method"])
            assert r["path"] == path.split("?")[0].split("#")[0], (path, r["path"])
            assert r["query"] == (path.split("?")[1].split("#")[0] if "?" in path else ""), r["query"]
            assert r["body_size"] == len(body or ""), (method, r["body_size"])
            if body:
                assert r["body"] == body
            h = r["headers"]
            assert h.get("accept-encoding") == "identity", h
            assert "expect" not in h, h
            assert h.get("x-goog-api-key") == KEYS[0]
            if body is None:
                assert "content-length" not in h or h["content-length"] == "0", h


@test()
def path_and_query_bytes_kept(fake):
    # Path and query reach the upstream byte for byte (only "%3A" in the
    # path is decoded to ':' and the proxy's key= removed): percent-encodings
    # keep their case, reserved characters stay as they are.
    with Proxy(fake.url, keys=KEYS[:1]) as px:
        for path, want_path, query in [
                ("/v1beta/files/a%2Fb%C3%A9?name=%2F%3a&x=a%20b+c",
                 "/v1beta/files/a%2Fb%C3%A9", "name=%2F%3a&x=a%20b+c"),
                ("/v1beta/files/x~y!$&'()*+,;=@?alt=sse",
                 "/v1beta/files/x~y!$&'()*+,;=@", "alt=sse"),
                ("/v1beta/models/%s%%3AgenerateContent?key=%s&alt=json" % (MODEL, TOKEN),
                 "/v1beta/models/%s:generateContent" % MODEL, "alt=json")]:
            fake.clear()
            st, _, body = px.request("GET", path)
            r = fake.requests()[-1]
            assert (r["raw_path"], r["query"]) == (want_path, query), (path, r["raw_path"], r["query"])
        # Bytes a request target may not hold (http.client would refuse to
        # send them, so they go over a raw socket) reach the upstream
        # percent-encoded, in the path and in the query; a long target too.
        long_name = "a" * 700
        for sent, want_path, query in [
                (b"/v1beta/files/caf\xc3\xa9|{x}?q=\xc3\xa9^\"y\"`",
                 "/v1beta/files/caf%C3%A9%7C%7Bx%7D", "q=%C3%A9%5E%22y%22%60"),
                (("/v1beta/files/%s?x=%s" % (long_name, long_name)).encode(),
                 "/v1beta/files/" + long_name, "x=" + long_name)]:
            fake.clear()
            got = raw(px.port, b"GET " + sent + b" HTTP/1.1\r\nHost: x\r\nx-goog-api-key: " +
                      TOKEN.encode() + b"\r\nConnection: close\r\n\r\n")
            head = got.split(b"\r\n")[0]
            reqs = fake.requests()
            assert len(reqs) == 1, (sent, head, reqs)
            assert (reqs[0]["raw_path"], reqs[0]["query"]) == (want_path, query), (sent, reqs[0])


@test()
def compressed_answers_decoded(fake):
    # The proxy asks for "identity" (every answer is read for keys and
    # usage); an upstream that compresses anyway is decoded, so the client
    # gets plain JSON with the key still masked and usage still counted,
    # and a body that does not decode is a failed attempt (502), never
    # relayed as it came.
    answer = {"candidates": [{"content": {"role": "model", "parts": [
        {"text": "leak " + KEYS[0]}]}, "finishReason": "STOP"}],
              "usageMetadata": {"promptTokenCount": 11, "candidatesTokenCount": 7,
                                "totalTokenCount": 18}}
    gz = base64.b64encode(gzip.compress(json.dumps(answer).encode())).decode()
    with Proxy(fake.url, keys=KEYS[:1], args=["--server-retries", "0"]) as px:
        fake.config(rules=[{"respond": "status", "status": 200, "times": 1,
                            "headers": {"Content-Encoding": "gzip",
                                        "Content-Type": "application/json"},
                            "body_b64": gz}])
        st, h, body = px.generate()
        assert st == 200, (st, body)
        assert "content-encoding" not in h, h
        got = json.loads(body)
        assert got["usageMetadata"]["candidatesTokenCount"] == 7
        assert_no_keys(body.decode())
        assert "leak ...%s" % KEYS[0][-4:] in got["candidates"][0]["content"]["parts"][0]["text"]
        assert fake.requests()[-1]["headers"].get("accept-encoding") == "identity"
        fake.config(rules=[{"respond": "status", "status": 200, "times": 1,
                            "headers": {"Content-Encoding": "gzip"},
                            "body": "not really gzip"}])
        st, h, body = px.generate()
        assert st == 502, (st, body)
        assert json.loads(body)["error"]["code"] == 502
        assert b"not really gzip" not in body
        st, _, body = px.generate()
        assert st == 200, (st, body)


@test()
def errors_relayed_without_benching(fake):
    # With server retries off, a 500 comes back as it is; a request-caused
    # 400 always does. Neither benches the key.
    with Proxy(fake.url, keys=KEYS[:2], args=["--server-retries", "0"]) as px:
        fake.config(rules=[{"key": KEYS[0], "respond": "server_error", "times": 1},
                           {"key": KEYS[1], "respond": "bad_request", "times": 1}])
        st, _, body = px.generate()
        assert st == 500, st
        assert json.loads(body)["error"]["status"] == "INTERNAL"
        st, _, body = px.generate()
        assert st == 400, st
        st1, _, _ = px.generate()
        st2, _, _ = px.generate()
        assert (st1, st2) == (200, 200)
        assert [r["key"] for r in fake.requests()] == [KEYS[0], KEYS[1]] * 2


@test()
def unknown_paths_and_health(fake):
    with Proxy(fake.url) as px:
        st, _, body = px.request("GET", "/nope")
        assert st == 404 and json.loads(body)["error"]["code"] == 404
        st, _, body = px.request("GET", "/healthz", token=None)
        assert st == 200 and json.loads(body)["status"] == "ok"
        st, _, body = px.request("GET", "/v1beta/../admin")
        assert st in (400, 404), st
        assert fake.requests() == []


@test()
def usage_counted_per_key_and_model(fake):
    with Proxy(fake.url, keys=KEYS[:2], args=["--save-interval", "100ms"]) as px:
        for _ in range(3):
            assert px.generate()[0] == 200
        assert px.generate(model="gemini-2.5-pro")[0] == 200
        assert px.request("GET", "/v1beta/models")[0] == 200
        assert px.stop() == 0
        u = px.usage_json()
        expect_total, expect_model = {}, {}
        for r in fake.requests():
            expect_total[r["key"]] = expect_total.get(r["key"], 0) + 1
            if r.get("model"):
                m = expect_model.setdefault(r["key"], {})
                m[r["model"]] = m.get(r["model"], 0) + 1
        assert sum(expect_total.values()) == 5
        assert u["counts"] == expect_total, u["counts"]
        assert u["model_counts"] == expect_model, u["model_counts"]
        assert u["exhausted_keys"] == {}
        log = px.log()
        assert_no_keys(log)
        assert mask(KEYS[0]) in log


@test()
def upstream_restart_drops_idle_connections(fake):
    # The proxy keeps upstream connections open between requests; when the
    # upstream closes them (restart, idle timeout) the next request must
    # still work, and the proxy must not spin on the dead socket.
    other = Fake()
    port = other.port
    with Proxy(other.url) as px:
        assert px.generate()[0] == 200
        other.stop()
        time.sleep(0.3)
        other = Fake(port=port)
        try:
            for _ in range(3):
                assert px.generate()[0] == 200
            with open("/proc/%d/stat" % px.proc.p.pid) as f:
                ticks0 = sum(map(int, f.read().rsplit(")", 1)[1].split()[11:13]))
            time.sleep(1.0)
            with open("/proc/%d/stat" % px.proc.p.pid) as f:
                ticks1 = sum(map(int, f.read().rsplit(")", 1)[1].split()[11:13]))
            assert ticks1 - ticks0 < 20, "idle proxy uses CPU: %d ticks" % (ticks1 - ticks0)
        finally:
            other.stop()


@test()
def upstream_through_a_proxy(fake):
    # --upstream-proxy: the upstream name need not resolve here, the proxy
    # (the fake, which routes absolute-form requests by their path) does
    # the rest. Without it the same configuration cannot reach anything;
    # the environment's http_proxy applies unless --upstream-proxy none.
    nowhere = "http://upstream.invalid"
    with Proxy(nowhere, keys=KEYS[:1], args=["--upstream-proxy", fake.url]) as px:
        st, _, body = px.generate()
        assert st == 200, (st, body)
        assert fake.requests()[-1]["key"] == KEYS[0]
    env = {"http_proxy": fake.url}
    with Proxy(nowhere, keys=KEYS[:1], env_extra=env) as px:
        assert px.generate()[0] == 200
    with Proxy(nowhere, keys=KEYS[:1], env_extra=env,
               args=["--upstream-proxy", "none", "--server-retries", "0"]) as px:
        st, _, body = px.generate()
        assert st == 502, (st, body)
    # The environment is read once at start, by curl's rules: all_proxy is
    # the fallback, no_proxy names exceptions, and HTTP_PROXY (upper case)
    # is ignored for http:// as curl ignores it (a CGI request's Proxy:
    # header would set it).
    n = len(fake.requests())
    for env, want in (({"all_proxy": fake.url}, 200),
                      ({"ALL_PROXY": fake.url}, 200),
                      ({"HTTP_PROXY": fake.url}, 502),
                      ({"http_proxy": fake.url, "no_proxy": "upstream.invalid"}, 502),
                      ({"all_proxy": fake.url, "NO_PROXY": "*"}, 502)):
        with Proxy(nowhere, keys=KEYS[:1], env_extra=env,
                   args=["--server-retries", "0"]) as px:
            st, _, body = px.generate()
            assert st == want, (env, st, body)
    assert len(fake.requests()) == n + 2, "only the proxied cases reach the fake"
    # Credentials in the proxy URL are never printed by --check.
    out = subprocess.run([BIN, "--check", "--upstream-proxy",
                          "http://user:s3cret@127.0.0.1:3128"],
                         cwd=px.dir, capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out
    assert "upstream proxy  http://***@127.0.0.1:3128" in out.stdout, out.stdout
    assert "s3cret" not in out.stdout + out.stderr
    # `keys check` takes the same route.
    r = subprocess.run([BIN, "keys", "check", "--json", "--upstream", nowhere,
                        "--upstream-proxy", fake.url],
                       cwd=px.dir, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert json.loads(r.stdout)["summary"]["valid"] == 1, r.stdout
    bad = subprocess.run([BIN, "--check", "--upstream-proxy", "ftp://x"],
                         cwd=px.dir, capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2 and "--upstream-proxy" in bad.stderr, bad


if __name__ == "__main__":
    run()
