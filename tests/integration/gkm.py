"""Integration-test harness: starts the real proxy binary and the fake Gemini
upstream on loopback ephemeral ports, and gives tests small helpers.

Every process is started by us, tracked by pid, and killed in teardown.
Every test is bounded in time (SIGALRM). The runner prints a closing line
"N passed, M failed" and exits non-zero on failure.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

BIN = os.path.abspath(os.environ.get("GKM_BIN", "build/gemini-key-manager"))
FAKE = os.path.abspath(os.environ.get("GKM_FAKE", "build/fake-gemini"))
SOURCE_DIR = os.environ.get("GKM_SOURCE_DIR", os.getcwd())

# Google-style test keys (AIza + 35 chars), so pattern redaction applies.
KEYS = ["AIzaSyA%s%02d" % ("x" * 30, i) for i in range(1, 10)]
assert all(len(k) == 39 for k in KEYS)
TOKEN = "PLACEHOLDER_GEMINI_TOKEN"
MODEL = "gemini-2.5-flash"
GEN_PATH = "/v1beta/models/%s:generateContent" % MODEL


def mask(key):
    return "..." + key[-4:]


def gen_body(text="hello there"):
    return json.dumps({"contents": [{"role": "user", "parts": [{"text": text}]}]})


class Proc:
    """A child process whose output is collected by a thread."""

    def __init__(self, argv, cwd=None, env=None, ready_re=None, timeout=10):
        self.argv = argv
        self.lines = []
        self.lock = threading.Lock()
        self.p = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.ready = threading.Event()
        self.match = None
        self.ready_re = re.compile(ready_re) if ready_re else None
        self.t = threading.Thread(target=self._reader, daemon=True)
        self.t.start()
        if self.ready_re is not None:
            if not self.ready.wait(timeout):
                self.kill()
                raise RuntimeError("%s did not start: %s" % (argv[0], self.output()))

    def _reader(self):
        for raw in self.p.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.lock:
                self.lines.append(line)
            if self.ready_re is not None and self.match is None:
                m = self.ready_re.search(line)
                if m:
                    self.match = m
                    self.ready.set()
        self.ready.set()

    def output(self):
        with self.lock:
            return "\n".join(self.lines)

    def signal(self, sig):
        if self.p.poll() is None:
            self.p.send_signal(sig)

    def wait(self, timeout=10):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(5)
        self.t.join(2)


class Fake:
    def __init__(self, port=0):
        self.proc = Proc([FAKE, "--listen", "127.0.0.1:%d" % port, "--quiet"],
                         ready_re=r"LISTENING 127\.0\.0\.1:(\d+)")
        self.port = int(self.proc.match.group(1))
        self.url = "http://127.0.0.1:%d" % self.port

    def _call(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        data = json.dumps(body) if body is not None else None
        c.request(method, path, body=data,
                  headers={"Content-Type": "application/json"} if data else {})
        r = c.getresponse()
        out = r.read()
        c.close()
        assert r.status == 200, (method, path, r.status, out)
        return json.loads(out) if out else None

    def config(self, **cfg):
        return self._call("POST", "/_fake/config", cfg)

    def reset(self):
        return self._call("POST", "/_fake/reset", {})

    def requests(self):
        return self._call("GET", "/_fake/requests")["requests"]

    def clear(self):
        return self._call("DELETE", "/_fake/requests")

    def stop(self):
        self.proc.kill()


class Proxy:
    def __init__(self, fake_url, keys=KEYS[:3], args=(), workdir=None,
                 key_text=None, env_extra=None, expect_start=True):
        self.dir = workdir or tempfile.mkdtemp(prefix="gkm-it-")
        self.keyfile = os.path.join(self.dir, "key.txt")
        self.usage = os.path.join(self.dir, "key_usage.txt")
        self.logfile = os.path.join(self.dir, "proxy.log")
        if key_text is None:
            key_text = "".join(k + "\n" for k in keys)
        if key_text is not False:
            with open(self.keyfile, "w") as f:
                f.write(key_text)
        argv = [BIN, "--listen", "127.0.0.1:0", "--upstream", fake_url,
                "--log-file", self.logfile] + list(args)
        env = dict(os.environ)
        env.update(env_extra or {})
        self.proc = Proc(argv, cwd=self.dir, env=env,
                         ready_re=r"listening on http://127\.0\.0\.1:(\d+)" if expect_start else None)
        if expect_start:
            if self.proc.match is None:
                raise RuntimeError("proxy did not start:\n" + self.proc.output())
            self.port = int(self.proc.match.group(1))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.kill()

    def request(self, method, path, body=None, headers=None, token=TOKEN,
                auth="header", timeout=20):
        h = dict(headers or {})
        if token is not None:
            if auth == "header":
                h["x-goog-api-key"] = token
            elif auth == "bearer":
                h["Authorization"] = "Bearer " + token
            elif auth == "query":
                path += ("&" if "?" in path else "?") + "key=" + token
        if body is not None and "Content-Type" not in h:
            h["Content-Type"] = "application/json"
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data

    def generate(self, text="hello there", model=MODEL, **kw):
        return self.request("POST", "/v1beta/models/%s:generateContent" % model,
                            body=gen_body(text), **kw)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        self.proc.signal(sig)
        rc = self.proc.wait(timeout)
        self.proc.kill()
        return rc

    def log(self):
        try:
            with open(self.logfile, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def usage_json(self):
        return self.usage_json_at(self.usage)

    def usage_json_at(self, path):
        with open(path) as f:
            return json.load(f)

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.p.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


SDK_DIR = os.path.join(SOURCE_DIR, "tests", "sdk")


def ensure_sdk():
    """node, with the OpenAI SDK of tests/sdk/package-lock.json installed."""
    import shutil
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "node and npm are required (scripts/deps.sh --test installs them)"
    if not os.path.isdir(os.path.join(SDK_DIR, "node_modules", "openai")):
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=SDK_DIR, check=True,
                       timeout=240, stdout=subprocess.DEVNULL)
    return node


def recv_all(s):
    """Everything the peer sends on socket s until it closes (or, with a
    timeout set on s, until it stays silent that long)."""
    out = []
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out.append(b)
    except socket.timeout:
        pass
    return b"".join(out)


def raw(port, data, read=True, timeout=5):
    """Send bytes as they are on a new connection; what comes back."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = recv_all(s) if read else b""
    s.close()
    return out


def assert_no_keys(blob, keys=KEYS):
    if isinstance(blob, bytes):
        blob = blob.decode("utf-8", "replace")
    for k in keys:
        assert k not in blob, "a real key leaked: %s" % mask(k)


def read_rest(r):
    """Everything left of a streamed http.client response, as it arrives."""
    out = []  # joined once: += on bytes copies everything so far each time
    while True:
        b = r.read1(65536)
        if not b:
            return b"".join(out)
        out.append(b)


def read_until_cut(r):
    """(bytes, error) of a streamed response that may be cut: error is the
    IncompleteRead or connection error that ended it, or None for a clean
    end."""
    got = b""
    try:
        while True:
            b = r.read1(65536)
            if not b:
                return got, None
            got += b
    except (http.client.IncompleteRead, ConnectionError) as e:
        return got, e


def slow_disk_env(fsync_ms):
    """Environment for a proxy whose every fsync takes fsync_ms: the test
    shim tests/shim/slow_fsync.c preloaded (built without sanitizers, so
    ASan's check that it comes first in the library list is switched
    off)."""
    shim = os.path.abspath(os.environ.get("GKM_SLOWFSYNC", "build/libgkm_slowfsync.so"))
    assert os.path.exists(shim), shim
    return {"LD_PRELOAD": shim, "GKM_TEST_FSYNC_MS": str(fsync_ms),
            "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"}


def wait_for(pred, timeout=5.0, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


_TESTS = []


def test(timeout=60):
    def deco(fn):
        _TESTS.append((fn, timeout))
        return fn
    return deco


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout("test timed out")


def run(fixture_factory=None):
    """Run the registered tests. fixture_factory() -> (fake) shared fake."""
    signal.signal(signal.SIGALRM, _alarm)
    only = sys.argv[1:]
    passed = failed = 0
    # Every temporary directory of this run (proxies' working directories,
    # key and usage files) goes under one parent, removed at the end unless
    # a test failed (then it is kept for a look and its path printed).
    parent = tempfile.mkdtemp(prefix="gkm-it-run-")
    tempfile.tempdir = parent
    fake = Fake()
    try:
        for fn, timeout in _TESTS:
            if only and fn.__name__ not in only:
                continue
            fake.reset()
            signal.alarm(timeout)
            t0 = time.time()
            try:
                fn(fake)
                passed += 1
                print("PASS %s (%.2fs)" % (fn.__name__, time.time() - t0), flush=True)
            except BaseException:
                failed += 1
                print("FAIL %s" % fn.__name__, flush=True)
                traceback.print_exc()
            finally:
                signal.alarm(0)
    finally:
        fake.stop()
        tempfile.tempdir = None
        if failed:
            print("temporary files kept in %s" % parent, flush=True)
        else:
            shutil.rmtree(parent, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)
