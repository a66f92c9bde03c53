"""Compatibility the way a new user checks it: the official OpenAI
JavaScript SDK (npm `openai`, pinned in tests/sdk/package-lock.json) pointed
at the proxy for chat, streaming, tools, models, embeddings and errors."""
import os
import subprocess

from gkm import KEYS, SDK_DIR, TOKEN, Proxy, ensure_sdk, run, test

@test(timeout=300)
def openai_js_sdk(fake):
    node = ensure_sdk()
    # Chunks 400 ms apart with keep-alive comments every 150 ms: the SDK
    # must take SSE comments in its stride.
    fake.config(stream={"chunks": 4, "chunk_delay_ms": 400})
    with Proxy(fake.url, args=["--sse-keepalive", "150ms"]) as px:
        r = subprocess.run([node, os.path.join(SDK_DIR, "openai_sdk.mjs"),
                            "http://127.0.0.1:%d/v1" % px.port, TOKEN],
                           capture_output=True, text=True, timeout=120)
        print(r.stdout)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "all ok" in r.stdout
        keys = {q["key"] for q in fake.requests()}
        assert keys <= set(KEYS[:3]) and len(keys) > 1, "requests rotated over the pool"


if __name__ == "__main__":
    run()
