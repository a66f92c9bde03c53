#!/usr/bin/env python3
"""Open N concurrent streaming requests against a URL and hold them until
they finish, sampling the RSS and CPU time of the given server pids.

usage: streams.py URL N TOKEN PID[,PID...] [gemini|openai]
Prints one JSON line: {"ok": n_ok, "peak_rss_kib": .., "cpu_s": ..,
"first_chunk_ms_p50": .., "seconds": ..}
"""
import asyncio
import json
import sys
import time
from urllib.parse import urlsplit


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    import os
    hz = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / hz


async def one(host, port, path, key, firsts, kind, sem):
    if kind == "openai":
        body = (b'{"model":"gemini-2.5-flash","stream":true,'
                b'"messages":[{"role":"user","content":"stream benchmark"}]}')
        auth = b"Authorization: Bearer %s" % key.encode()
    else:
        body = b'{"contents":[{"role":"user","parts":[{"text":"stream benchmark"}]}]}'
        auth = b"x-goog-api-key: %s" % key.encode()
    async with sem:  # at most 200 connects in flight: no SYN flood
        t0 = time.monotonic()
        r, w = await asyncio.open_connection(host, port)
        w.write(b"POST %s HTTP/1.1\r\nHost: %s\r\n%s\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n"
                b"Connection: close\r\n\r\n%s"
                % (path.encode(), host.encode(), auth, len(body), body))
        await w.drain()
    got_first = False
    n = 0
    while True:
        b = await r.read(65536)
        if not b:
            break
        n += len(b)
        if not got_first and b"data: " in b:
            firsts.append((time.monotonic() - t0) * 1000)
            got_first = True
    w.close()
    return n


async def main():
    url, n, key, pids = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    kind = sys.argv[5] if len(sys.argv) > 5 else "gemini"
    pids = [int(p) for p in pids.split(",")]
    u = urlsplit(url)
    path = u.path + ("?" + u.query if u.query else "")
    firsts = []
    cpu0 = sum(cpu_s(p) for p in pids)
    t0 = time.monotonic()
    peak = 0
    sem = asyncio.Semaphore(200)  # connect in waves to avoid SYN floods

    async def guarded():
        return await one(u.hostname, u.port, path, key, firsts, kind, sem)

    tasks = [asyncio.create_task(guarded()) for _ in range(n)]
    while not all(t.done() for t in tasks):
        peak = max(peak, sum(rss_kib(p) for p in pids))
        await asyncio.sleep(0.2)
    res = [t.result() for t in tasks if not t.exception()]
    cpu = sum(cpu_s(p) for p in pids) - cpu0
    firsts.sort()
    print(json.dumps({
        "ok": sum(1 for x in res if x > 0),
        "peak_rss_kib": peak,
        "cpu_s": round(cpu, 3),
        "first_chunk_ms_p50": round(firsts[len(firsts) // 2], 1) if firsts else None,
        "seconds": round(time.monotonic() - t0, 2),
    }))


asyncio.run(main())
