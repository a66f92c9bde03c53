"""True streaming (SSE and JSON-array framings arrive chunk by chunk),
client disconnects cancel the upstream transfer, backpressure keeps memory
bounded with a slow client, a mid-stream upstream drop reaches the client as
a truncated response, and SIGTERM drains requests in flight."""
import http.client
import json
import signal
import socket
import time

from gkm import (KEYS, MODEL, TOKEN, Proxy, gen_body, read_rest, read_until_cut,
                 run, test, wait_for)

STREAM_PATH = "/v1beta/models/%s:streamGenerateContent" % MODEL


def first_event(r):
    """Read (decoded) until the first complete SSE event; return its bytes
    and whatever else arrived with it."""
    got = b""
    while b"\n\n" not in got and b"\r\n\r\n" not in got:
        b = r.read1(65536)
        if not b:
            break
        got += b
    return got


def open_stream(px, query="?alt=sse", text="one two three four five six"):
    c = http.client.HTTPConnection("127.0.0.1", px.port, timeout=20)
    c.request("POST", STREAM_PATH + query, body=gen_body(text),
              headers={"x-goog-api-key": TOKEN, "Content-Type": "application/json"})
    return c, c.getresponse()


@test()
def sse_arrives_incrementally(fake):
    fake.config(stream={"chunks": 5, "chunk_delay_ms": 300})
    with Proxy(fake.url) as px:
        t0 = time.time()
        c, r = open_stream(px)
        assert r.status == 200
        assert r.getheader("Content-Type").startswith("text/event-stream")
        assert r.getheader("X-Accel-Buffering") == "no"
        first = first_event(r)
        t_first = time.time() - t0
        rest = read_rest(r)
        t_all = time.time() - t0
        c.close()
        assert first.startswith(b"data: "), first
        assert t_all >= 1.1, t_all
        assert t_first < t_all - 0.8, (t_first, t_all)
        events = [l for l in (first + rest).split(b"\r\n") if l.startswith(b"data: ")]
        assert len(events) == 5, events
        last = json.loads(events[-1][6:])
        assert last["candidates"][0]["finishReason"] == "STOP"
        assert fake.requests()[0]["query"] == "alt=sse"


@test()
def json_array_arrives_incrementally(fake):
    fake.config(stream={"chunks": 4, "chunk_delay_ms": 300})
    with Proxy(fake.url) as px:
        t0 = time.time()
        c, r = open_stream(px, query="")
        assert r.status == 200
        first = r.read1(65536)
        t_first = time.time() - t0
        rest = read_rest(r)
        t_all = time.time() - t0
        c.close()
        assert first.lstrip().startswith(b"["), first[:40]
        assert t_first < t_all - 0.6, (t_first, t_all)
        arr = json.loads(first + rest)
        assert len(arr) == 4 and arr[-1]["candidates"][0]["finishReason"] == "STOP"


@test()
def disconnect_mid_stream_cancels_upstream(fake):
    fake.config(stream={"chunks": 40, "chunk_delay_ms": 150})
    with Proxy(fake.url) as px:
        c, r = open_stream(px)
        assert r.status == 200
        assert first_event(r).startswith(b"data: ")
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()
        rec = wait_for(lambda: [q for q in fake.requests() if q.get("completed") is False],
                       timeout=4)
        assert rec, fake.requests()
        # Well before the 6 s the stream would have taken.
        assert px.generate()[0] == 200, "proxy keeps serving"
        assert wait_for(lambda: "client closed" in px.log(), timeout=3)


@test()
def disconnect_while_waiting_cancels_upstream(fake):
    fake.config(rules=[{"respond": "delay", "delay_ms": 4000, "times": 1}])
    with Proxy(fake.url) as px:
        s = socket.create_connection(("127.0.0.1", px.port))
        body = gen_body().encode()
        s.sendall(b"POST /v1beta/models/%s:generateContent HTTP/1.1\r\nHost: x\r\n"
                  b"x-goog-api-key: %s\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (MODEL.encode(), TOKEN.encode(),
                                                    len(body), body))
        time.sleep(0.5)
        s.close()
        rec = wait_for(lambda: [q for q in fake.requests() if q.get("completed") is False],
                       timeout=3)
        assert rec, fake.requests()
        assert wait_for(lambda: "client closed" in px.log(), timeout=3)
        assert px.generate()[0] == 200


@test(timeout=90)
def backpressure_bounds_memory(fake):
    size = 96 * 1024 * 1024
    fake.config(rules=[{"respond": "big", "bytes": size}])
    # Under AddressSanitizer, freed memory sits in a quarantine (256 MiB by
    # default) that would look like growth; keep it small for this test.
    asan = {"ASAN_OPTIONS": "quarantine_size_mb=1:detect_leaks=1"}
    with Proxy(fake.url, env_extra=asan) as px:
        base = px.rss_kib()
        c, r = open_stream(px)
        assert r.status == 200
        r.read1(100)
        time.sleep(2.0)  # a client that does not read
        rss_stalled = px.rss_kib()
        total = 0
        while True:
            b = r.read1(1 << 20)
            if not b:
                break
            total += len(b)
        c.close()
        assert total >= size, total
        # 96 MiB went through; the proxy held only a bounded window of it.
        assert rss_stalled - base < 16 * 1024, (base, rss_stalled)
        assert px.rss_kib() - base < 32 * 1024, (base, px.rss_kib())


@test()
def upstream_drop_mid_stream_truncates(fake):
    fake.config(stream={"chunks": 6, "chunk_delay_ms": 50},
                rules=[{"respond": "truncate", "after_chunks": 2, "times": 1}])
    with Proxy(fake.url) as px:
        c, r = open_stream(px)
        assert r.status == 200
        got, err = read_until_cut(r)
        c.close()
        assert got.count(b"data: ") == 2, got
        assert err is not None, "a cut stream must not look complete to the client"
        assert px.generate()[0] == 200


@test()
def sigterm_drains_in_flight(fake):
    fake.config(stream={"chunks": 5, "chunk_delay_ms": 300})
    with Proxy(fake.url, args=["--save-interval", "10s"]) as px:
        c, r = open_stream(px)
        assert r.status == 200
        px.proc.signal(signal.SIGTERM)
        body = r.read()
        c.close()
        assert body.count(b"data: ") == 5, body
        assert px.proc.wait(10) == 0
        # Counted and flushed at exit despite the long save interval.
        assert px.usage_json()["counts"] == {KEYS[0]: 1}
        assert "SIGTERM" in px.log()


@test()
def idle_upstream_times_out(fake):
    # --idle-timeout (our sweep, not curl's speed check): an answer whose
    # first byte never comes is a 504 after about the timeout, once per
    # key; a stream that stalls after its first event is cut, not ended.
    with Proxy(fake.url, keys=KEYS[:1],
               args=["--idle-timeout", "1s", "--server-retries", "0"]) as px:
        fake.config(rules=[{"respond": "delay", "delay_ms": 4000, "times": 1}])
        t0 = time.time()
        st, _, body = px.generate()
        took = time.time() - t0
        assert st == 504, (st, body)
        assert json.loads(body)["error"]["status"] == "DEADLINE_EXCEEDED"
        assert 0.9 <= took < 3.5, took
        assert "--idle-timeout" in px.log()

        fake.reset()
        fake.config(stream={"chunks": 3, "chunk_delay_ms": 3000})
        t0 = time.time()
        c, r = open_stream(px)
        assert r.status == 200
        got, err = read_until_cut(r)
        took = time.time() - t0
        c.close()
        assert got.count(b"data: ") == 1, got
        assert err is not None, "an idle-cut stream must not look complete"
        assert took < 3.0, took
        assert px.generate()[0] == 200


@test()
def slow_reader_is_not_idle(fake):
    # A paused transfer (the client does not read) is not an idle upstream:
    # with --idle-timeout 1s, a client that stalls for 2.5 s still gets the
    # whole answer.
    size = 24 * 1024 * 1024
    fake.config(rules=[{"respond": "big", "bytes": size}])
    with Proxy(fake.url, args=["--idle-timeout", "1s"]) as px:
        c, r = open_stream(px)
        assert r.status == 200
        r.read1(100)
        time.sleep(2.5)
        total = 100 + len(read_rest(r))
        c.close()
        assert total >= size, total


if __name__ == "__main__":
    run()
