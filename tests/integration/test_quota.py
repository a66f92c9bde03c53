"""Quota intelligence and key health through the real binary: each upstream
error is treated for what it is (per-minute cooldown, per-day bench,
limit 0, invalid keys disabled, overload retried elsewhere, request errors
passed through once), waiting for a cooldown, Retry-After values, keys of
one project benched together, state across restarts, and the `usage` and
`keys check` commands."""
import json
import os
import signal
import subprocess
import time

from gkm import (BIN, KEYS, MODEL, Proxy, assert_no_keys, mask, run, test,
                 wait_for)

FAST = ["--server-backoff", "50ms", "--server-backoff-max", "100ms",
        "--save-interval", "100ms"]


def used(fake):
    return [r["key"] for r in fake.requests()]


@test()
def per_minute_cooldown_then_reuse(fake):
    with Proxy(fake.url, keys=KEYS[:2], args=FAST) as px:
        fake.config(rules=[{"key": KEYS[0], "respond": "quota_minute",
                            "retry_delay": "1.5s", "times": 1}])
        assert px.generate()[0] == 200
        assert used(fake) == [KEYS[0], KEYS[1]]
        fake.clear()
        for _ in range(3):
            assert px.generate()[0] == 200
        assert used(fake) == [KEYS[1]] * 3, "cooling key skipped"
        assert "per-minute" in px.log()
        time.sleep(1.7)
        fake.clear()
        for _ in range(2):
            assert px.generate()[0] == 200
        assert KEYS[0] in used(fake), "back after the cooldown"


@test()
def project_shares_quota(fake):
    text = "%s project=p1\n%s project=p1\n%s\n" % (KEYS[0], KEYS[1], KEYS[2])
    with Proxy(fake.url, key_text=text, args=FAST) as px:
        fake.config(rules=[{"key": KEYS[0], "respond": "quota_day", "times": 1}])
        assert px.generate()[0] == 200
        # The whole project is out for the model: no request to KEYS[1].
        assert used(fake) == [KEYS[0], KEYS[2]], [mask(k) for k in used(fake)]
        fake.clear()
        for _ in range(3):
            assert px.generate()[0] == 200
        assert used(fake) == [KEYS[2]] * 3
        fake.clear()
        assert px.generate(model="gemini-2.5-pro")[0] == 200


@test()
def limit_zero_benched_for_model(fake):
    with Proxy(fake.url, keys=KEYS[:2], args=FAST) as px:
        fake.config(rules=[{"respond": "quota_zero", "model": "gemini-2.5-pro"}])
        st, h, body = px.generate(model="gemini-2.5-pro")
        assert st == 503, (st, body)
        assert "no quota" in json.loads(body)["error"]["message"]
        assert "retry-after" not in h
        assert px.generate()[0] == 200, "other models unaffected"


@test()
def invalid_key_disabled_and_persisted(fake):
    fake.config(keys={KEYS[0]: {"state": "invalid"}})
    with Proxy(fake.url, keys=KEYS[:2], args=FAST) as px:
        assert px.generate()[0] == 200
        assert used(fake) == [KEYS[0], KEYS[1]]
        fake.clear()
        for m in (MODEL, "gemini-2.5-pro", MODEL):
            assert px.generate(model=m)[0] == 200
        assert KEYS[0] not in used(fake), "disabled for every model"
        assert px.stop() == 0
        u = px.usage_json()
        assert {"key": KEYS[0], "model": None, "until": None,
                "reason": "key_invalid"} in u["gkm"]["benches"], u["gkm"]
        workdir = px.dir
    fake.clear()
    with Proxy(fake.url, keys=KEYS[:2], workdir=workdir, args=FAST) as px:
        for _ in range(2):
            assert px.generate()[0] == 200
        assert KEYS[0] not in used(fake), "still disabled after restart"
        # The key is fixed (billing, a new key of the same name...): SIGHUP
        # re-reads key.txt and lifts the "until reload" benches.
        fake.config(keys={})
        px.proc.signal(signal.SIGHUP)
        assert wait_for(lambda: "back in rotation" in px.log(), timeout=3), px.log()
        fake.clear()
        for _ in range(2):
            assert px.generate()[0] == 200
        assert KEYS[0] in used(fake)
        # A changed key set is reported, not half-applied.
        with open(px.keyfile, "a") as f:
            f.write(KEYS[5] + "\n")
        px.proc.signal(signal.SIGHUP)
        assert wait_for(lambda: "restart the proxy" in px.log(), timeout=3)
        assert px.generate()[0] == 200 and px.proc.p.poll() is None


@test()
def overload_retried_on_another_key(fake):
    with Proxy(fake.url, keys=KEYS[:2], args=FAST) as px:
        fake.config(rules=[{"key": KEYS[0], "respond": "overloaded", "times": 1}])
        assert px.generate()[0] == 200
        assert used(fake) == [KEYS[0], KEYS[1]]
        fake.clear()
        assert px.generate()[0] == 200 and px.generate()[0] == 200
        assert KEYS[0] in used(fake), "overload does not bench the key"
        # Every attempt overloaded: bounded retries, then the 503 itself.
        fake.config(rules=[{"respond": "overloaded"}])
        fake.clear()
        st, _, body = px.generate()
        assert st == 503 and json.loads(body)["error"]["status"] == "UNAVAILABLE"
        assert len(fake.requests()) == 4, "1 try + --server-retries 3"


@test()
def request_error_passed_through_once(fake):
    with Proxy(fake.url, keys=KEYS[:3], args=FAST) as px:
        fake.config(rules=[{"respond": "bad_request"}])
        st, _, body = px.generate()
        assert st == 400, st
        assert "Unknown name" in json.loads(body)["error"]["message"]
        assert len(fake.requests()) == 1
        fake.config(rules=[])
        assert px.generate()[0] == 200


@test()
def waits_for_cooldown(fake):
    with Proxy(fake.url, keys=KEYS[:1], args=FAST + ["--max-wait", "5s"]) as px:
        fake.config(rules=[{"respond": "quota_minute", "retry_delay": "1s", "times": 1}])
        t0 = time.time()
        st, _, body = px.generate()
        dt = time.time() - t0
        assert st == 200, (st, body)
        assert 0.9 <= dt < 4, dt
        assert used(fake) == [KEYS[0], KEYS[0]]


@test()
def disconnect_while_waiting_or_backing_off(fake):
    # A client that leaves while its request waits for a cooldown or for a
    # retry backoff: the wait is cancelled, nothing more goes upstream, the
    # proxy keeps serving.
    import socket
    body = b'{"contents":[{"parts":[{"text":"hi"}]}]}'
    req = (b"POST /v1beta/models/%s:generateContent HTTP/1.1\r\nHost: x\r\n"
           b"x-goog-api-key: PLACEHOLDER_GEMINI_TOKEN\r\nContent-Length: %d\r\n\r\n%s"
           % (MODEL.encode(), len(body), body))
    with Proxy(fake.url, keys=KEYS[:1],
               args=FAST + ["--max-wait", "10s", "--server-backoff", "3s",
                            "--server-backoff-max", "3s"]) as px:
        for rule in ({"respond": "quota_minute", "retry_delay": "5s", "times": 1},
                     {"respond": "overloaded", "times": 1}):
            fake.config(rules=[rule])
            fake.clear()
            s = socket.create_connection(("127.0.0.1", px.port))
            s.sendall(req)
            time.sleep(0.6)
            s.close()
            assert wait_for(lambda: "client closed" in px.log(), timeout=3)
            time.sleep(0.2)
            assert len(fake.requests()) == 1, fake.requests()
            fake.config(rules=[])
            if rule["respond"] == "quota_minute":
                time.sleep(5)  # let the cooldown end before the next case
            assert px.generate()[0] == 200
            open(px.logfile, "w").close()
        assert px.stop() == 0


@test()
def retry_after_values(fake):
    with Proxy(fake.url, keys=KEYS[:1], args=FAST + ["--max-wait", "0"]) as px:
        fake.config(rules=[{"respond": "quota_minute", "retry_delay": "30s", "times": 1}])
        st, h, body = px.generate()
        assert st == 429, (st, body)
        assert 28 <= int(h["retry-after"]) <= 31, h
        err = json.loads(body)["error"]
        assert err["status"] == "RESOURCE_EXHAUSTED" and "quota_minute" in err["message"]
        st, h, _ = px.generate()
        assert st == 429 and int(h["retry-after"]) <= 31
        # A per-day quota is a 503 until the reset.
        st, h, body = px.generate(model="gemini-2.5-pro")
        assert st == 200
        fake.config(rules=[{"respond": "quota_day"}])
        st, h, body = px.generate(model="gemini-2.5-pro")
        assert st == 503 and 60 < int(h["retry-after"]) <= 25 * 3600


@test()
def usage_and_keys_check_commands(fake):
    fake.config(keys={KEYS[2]: {"state": "suspended"}})
    with Proxy(fake.url, keys=KEYS[:3], args=FAST) as px:
        fake.config(keys={KEYS[2]: {"state": "suspended"}},
                    rules=[{"key": KEYS[1], "respond": "quota_minute", "times": 1}])
        for _ in range(4):
            assert px.generate("count these five words")[0] == 200
        assert px.stop() == 0
        u = px.usage_json()
        stats = u["gkm"]["stats"]
        assert stats[KEYS[0]][MODEL]["prompt_tokens"] > 0, stats
        env = dict(os.environ)
        r = subprocess.run([BIN, "usage", "--json"], cwd=px.dir, capture_output=True,
                           text=True, timeout=20, env=env)
        assert r.returncode == 0, r.stderr
        rep = json.loads(r.stdout)
        by = {k["key"]: k for k in rep["keys"]}
        assert by[mask(KEYS[0])]["requests"] >= 2
        assert by[mask(KEYS[0])]["prompt_tokens"] > 0
        assert by[mask(KEYS[2])]["state"]["status"] == "disabled"
        assert by[mask(KEYS[1])]["errors"]["by_class"].get("quota_minute") == 1
        assert_no_keys(r.stdout)
        r = subprocess.run([BIN, "usage"], cwd=px.dir, capture_output=True, text=True,
                           timeout=20)
        assert r.returncode == 0 and "TOTAL" in r.stdout and "key_suspended" in r.stdout, r.stdout
        r = subprocess.run([BIN, "keys", "check", "--json", "--upstream", fake.url],
                           cwd=px.dir, capture_output=True, text=True, timeout=30)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        rep = json.loads(r.stdout)
        verdicts = {k["key"]: k["verdict"] for k in rep["keys"]}
        assert verdicts == {mask(KEYS[0]): "valid", mask(KEYS[1]): "valid",
                            mask(KEYS[2]): "suspended"}, verdicts
        assert rep["summary"]["valid"] == 2 and rep["summary"]["suspended"] == 1
        assert_no_keys(r.stdout + r.stderr)


@test()
def stream_errors_counted(fake):
    fake.config(stream={"chunks": 4},
                rules=[{"respond": "stream_error_event", "after_chunks": 1, "times": 1}])
    with Proxy(fake.url, keys=KEYS[:1], args=FAST) as px:
        st, _, body = px.request("POST", "/v1beta/models/%s:streamGenerateContent?alt=sse" % MODEL,
                                 body=json.dumps({"contents": [{"parts": [{"text": "a b c d e f"}]}]}))
        assert st == 200 and b'"error"' in body
        assert wait_for(lambda: "error inside a 200 answer" in px.log(), timeout=3)
        assert px.stop() == 0
        errs = px.usage_json()["gkm"]["stats"][KEYS[0]][MODEL]["errors"]
        assert sum(errs.values()) == 1, errs


if __name__ == "__main__":
    run()
