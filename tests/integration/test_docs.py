"""Documentation stays true: every option and environment variable the
binary accepts is documented in docs/configuration.md, the README's two
set-up commands exist, and the documented defaults match --help."""
import os
import re
import subprocess

from gkm import BIN, SDK_DIR, SOURCE_DIR, TOKEN, Proxy, ensure_sdk, run, test


def code_blocks(path, lang):
    with open(os.path.join(SOURCE_DIR, path)) as f:
        text = f.read()
    return re.findall(r"^```%s\n(.*?)^```" % lang, text, re.M | re.S)


def help_text():
    return subprocess.run([BIN, "--help"], capture_output=True, text=True,
                          timeout=10, check=True).stdout


@test()
def every_option_documented(fake):
    h = help_text()
    flags = re.findall(r"^  (--[a-z-]+)", h, re.M)
    envs = set(re.findall(r"\b(GKM_[A-Z_]+)\b", h))
    assert len(flags) >= 20 and len(envs) >= 18, (flags, envs)
    with open(os.path.join(SOURCE_DIR, "docs", "configuration.md")) as f:
        doc = f.read()
    rows = {m.group(1): m.group(0) for m in
            re.finditer(r"^\| `(--[a-z-]+)[^|]*\|.*$", doc, re.M)}
    missing = [f for f in flags if f not in rows]
    assert not missing, "undocumented options: %s" % missing
    extra = [f for f in rows if f not in flags]
    assert not extra, "documented options the binary lacks: %s" % extra
    for e in envs:
        assert "`%s`" % e in doc, "undocumented variable " + e
    # Defaults in the table agree with --help.
    for m in re.finditer(r"^  (--[a-z-]+).*?\n(?:      .*\n)*?      \[env (GKM_[A-Z_]+)(?:, default (\S+))?\]",
                         h, re.M):
        flag, env, default = m.groups()
        row = rows[flag]
        assert "`%s`" % env in row, (flag, env)
        if default:
            assert "`%s`" % default in row, (flag, default, row)


@test()
def readme_commands_exist(fake):
    with open(os.path.join(SOURCE_DIR, "README.md")) as f:
        readme = f.read()
    for cmd in ("./scripts/run.sh", "./scripts/test.sh"):
        assert cmd in readme
        assert os.access(os.path.join(SOURCE_DIR, cmd), os.X_OK), cmd
    with open(os.path.join(SOURCE_DIR, ".ci", "run")) as f:
        assert "scripts/test.sh" in f.read(), ".ci/run must run the README's test command"


@test(timeout=120)
def usage_examples_run(fake):
    """Every shell example of docs/usage.md and the README's curl example
    runs against the proxy (and the fake upstream) and gets a real answer."""
    blocks = [b for b in code_blocks("docs/usage.md", "sh") if "curl" in b]
    blocks += [b for b in code_blocks("README.md", "sh") if b.lstrip().startswith("curl")]
    assert len(blocks) >= 6, len(blocks)
    fake.config(stream={"chunks": 3})
    with Proxy(fake.url) as px:
        base = "http://127.0.0.1:%d" % px.port
        env = dict(os.environ, TOKEN=TOKEN, GKM=base)
        for b in blocks:
            script = b.replace("http://127.0.0.1:5000", base)
            r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script],
                               env=env, capture_output=True, text=True, timeout=30)
            assert r.returncode == 0, (b, r.stderr)
            assert r.stdout.strip(), ("no output", b)
            assert '"error"' not in r.stdout, (b, r.stdout[:500])
        assert len(fake.requests()) >= len(blocks)


@test(timeout=300)
def openai_js_example_runs(fake):
    """The OpenAI JavaScript example of docs/usage.md, as printed, against
    the proxy (the SDK from tests/sdk/package-lock.json)."""
    node = ensure_sdk()
    js = [b for b in code_blocks("docs/usage.md", "js") if 'from "openai"' in b]
    assert len(js) == 1, len(js)
    with Proxy(fake.url) as px:
        code = js[0].replace("http://127.0.0.1:5000", "http://127.0.0.1:%d" % px.port)
        path = os.path.join(SDK_DIR, "doc_example_%d.mjs" % os.getpid())
        try:
            with open(path, "w") as f:
                f.write(code)
            r = subprocess.run([node, path], capture_output=True, text=True, timeout=60)
        finally:
            os.unlink(path)
        assert r.returncode == 0, r.stderr
        assert "Hello" in r.stdout and "Count to five" in r.stdout, r.stdout


if __name__ == "__main__":
    run()
