"""Files and cachedContents key affinity: a file uploaded (resumable, through
the rewritten upload URL) or a cache created through the proxy is used with
the key that owns it, never another project's key; the fake upstream
enforces ownership (403 for any other project) like Google does."""
import http.client
import json
from urllib.parse import urlsplit

from gkm import KEYS, MODEL, TOKEN, Proxy, assert_no_keys, run, test

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


def upload(px, data=PNG, mime="image/png"):
    """The SDK's resumable upload, through the proxy: start (with the token),
    then the bytes to the returned URL (no credential). Returns (start
    headers, final status, final headers, final body)."""
    st, h, body = px.request(
        "POST", "/upload/v1beta/files", body=json.dumps({"file": {"displayName": "cat.png"}}),
        headers={"X-Goog-Upload-Protocol": "resumable",
                 "X-Goog-Upload-Command": "start",
                 "X-Goog-Upload-Header-Content-Length": str(len(data)),
                 "X-Goog-Upload-Header-Content-Type": mime})
    assert st == 200, (st, body)
    url = h["x-goog-upload-url"]
    u = urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
    c.request("POST", u.path + "?" + u.query, body=data,
              headers={"X-Goog-Upload-Command": "upload, finalize",
                       "X-Goog-Upload-Offset": "0",
                       "Content-Length": str(len(data))})
    r = c.getresponse()
    out = r.read()
    c.close()
    return h, r.status, {k.lower(): v for k, v in r.getheaders()}, out


def start_upload(px, **kw):
    """Only the start of a 3-byte resumable upload: (status, headers, body)."""
    return px.request(
        "POST", "/upload/v1beta/files", body=json.dumps({"file": {}}),
        headers={"X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
                 "X-Goog-Upload-Header-Content-Length": "3",
                 "X-Goog-Upload-Header-Content-Type": "text/plain"}, **kw)


def uploaded_file(px):
    """Upload PNG through px and return the file resource."""
    h, st, fh, out = upload(px)
    assert st == 200, (st, out)
    return json.loads(out)["file"]


def gen_with(fields):
    body = {"contents": [{"role": "user", "parts": [{"text": "describe"}]}]}
    body.update(fields)
    return json.dumps(body)


@test()
def uploaded_file_sticks_to_its_key(fake):
    with Proxy(fake.url, keys=KEYS[:3], args=["--log-level", "debug"]) as px:
        px.generate()  # move the rotation: the upload starts on KEYS[1]
        fake.clear()
        h, st, fh, out = upload(px)
        url = h["x-goog-upload-url"]
        # The upload URL points at the proxy and carries no key.
        assert url.startswith("http://127.0.0.1:%d/upload/v1beta/files?upload_id=" % px.port), url
        assert "key=" not in url, url
        assert st == 200, (st, out)
        assert fh.get("x-goog-upload-status") == "final", fh
        f = json.loads(out)["file"]
        owner = fake.requests()[0]["key"]
        assert owner == KEYS[1]
        recs = fake.requests()
        assert [r["path"] for r in recs] == ["/upload/v1beta/files"] * 2, recs
        assert recs[1]["body_size"] == len(PNG)
        # The bytes go upstream without any key: the upload id is the
        # credential, as at Google.
        assert recs[1]["auth"] == "none" and not recs[1]["key"], recs[1]

        # Every later use goes to the owner, whatever the rotation says.
        fake.clear()
        part = {"fileData": {"mimeType": "image/png", "fileUri": f["uri"]}}
        for _ in range(4):
            body = json.dumps({"contents": [{"role": "user", "parts": [
                {"text": "what is this"}, part]}]})
            st, _, out = px.request("POST", "/v1beta/models/%s:generateContent" % MODEL,
                                    body=body)
            assert st == 200, (st, out)
            st, _, out = px.request("GET", "/v1beta/" + f["name"])
            assert st == 200, (st, out)
            assert json.loads(out)["name"] == f["name"]
        assert {r["key"] for r in fake.requests()} == {owner}
        # The OpenAI endpoint too: a file part with the file's name.
        fake.clear()
        for _ in range(3):
            chat = {"model": MODEL, "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this"},
                {"type": "file", "file": {"file_id": f["name"], "filename": "cat.png"}}]}]}
            st, _, out = px.request("POST", "/v1/chat/completions", body=json.dumps(chat),
                                    auth="bearer")
            assert st == 200, (st, out)
        assert {r["key"] for r in fake.requests()} == {owner}
        # Requests that name no file still rotate over all keys.
        fake.clear()
        for _ in range(3):
            assert px.generate()[0] == 200
        assert {r["key"] for r in fake.requests()} == set(KEYS[:3])
        assert f["name"] + " belongs to key ..." + owner[-4:] in px.log()
        assert_no_keys(px.log())


@test()
def upload_id_is_the_only_credential(fake):
    with Proxy(fake.url, keys=KEYS[:2]) as px:
        # An upload_id the proxy never handed out needs the token.
        st, _, body = px.request("POST", "/upload/v1beta/files?upload_id=forged&upload_protocol=resumable",
                                 body=b"x", token=None,
                                 headers={"X-Goog-Upload-Command": "upload, finalize",
                                          "X-Goog-Upload-Offset": "0"})
        assert st == 401, (st, body)
        assert fake.requests() == []
        # A real upload id opens the upload endpoint only, nothing else.
        st, h, body = start_upload(px)
        assert st == 200, (st, body)
        q = urlsplit(h["x-goog-upload-url"]).query
        for path in ("/upload/v1beta/models/%s:generateContent?" % MODEL,
                     "/v1beta/models/%s:generateContent?" % MODEL,
                     "/upload/v1beta/files/x?", "/v1beta/files?",
                     "/upload/v1be%2Fta/files?"):
            st, _, body = px.request("POST", path + q, body=b"{}", token=None,
                                     headers={"X-Goog-Upload-Command": "upload"})
            assert st == 401, (path, st, body)
        # ... and only for byte requests: not another start, not without a
        # command, not for GET, not with a second upload_id.
        for method, query, cmd in (("POST", q, "start"), ("POST", q, None),
                                   ("GET", q, "query"),
                                   ("POST", q + "&upload_id=other", "upload")):
            hdrs = {"X-Goog-Upload-Command": cmd} if cmd else {}
            st, _, body = px.request(method, "/upload/v1beta/files?" + query,
                                     body=b"{}", token=None, headers=hdrs)
            assert st == 401, (method, query, cmd, st, body)
        fake.clear()
        # A key= in the upstream's upload URL (start with ?key=) never
        # reaches the client.
        st, h, body = start_upload(px, auth="query")
        assert st == 200, (st, body)
        assert "key=" not in h["x-goog-upload-url"], h
        assert_no_keys(json.dumps(h))
        # --public-url names the proxy for clients behind a reverse proxy.
    with Proxy(fake.url, keys=KEYS[:2], args=["--public-url", "https://gkm.example.org/"]) as px:
        st, h, body = start_upload(px)
        assert st == 200, (st, body)
        assert h["x-goog-upload-url"].startswith(
            "https://gkm.example.org/upload/v1beta/files?upload_id="), h


@test()
def cached_content_sticks_and_owner_limits_are_reported(fake):
    with Proxy(fake.url, keys=KEYS[:3]) as px:
        px.generate()
        px.generate()  # the cache is created with KEYS[2]
        fake.clear()
        create = {"model": "models/" + MODEL, "ttl": "600s",
                  "contents": [{"role": "user", "parts": [{"text": "a long shared context " * 20}]}]}
        st, _, out = px.request("POST", "/v1beta/cachedContents", body=json.dumps(create))
        assert st == 200, (st, out)
        name = json.loads(out)["name"]
        owner = fake.requests()[0]["key"]
        assert owner == KEYS[2]
        fake.clear()
        for _ in range(4):
            st, _, out = px.request("POST", "/v1beta/models/%s:generateContent" % MODEL,
                                    body=gen_with({"cachedContent": name}))
            assert st == 200, (st, out)
            assert json.loads(out)["usageMetadata"].get("cachedContentTokenCount", 0) > 0
        assert {r["key"] for r in fake.requests()} == {owner}

        # The owner hits its per-minute quota: the answer names the cache
        # and the owner; no other project's key is tried.
        fake.clear()
        fake.config(rules=[{"key": owner, "respond": "quota_minute"}])
        st, h, out = px.request("POST", "/v1beta/models/%s:generateContent" % MODEL,
                                body=gen_with({"cachedContent": name}))
        assert st == 429, (st, out)
        msg = json.loads(out)["error"]["message"]
        assert name in msg and owner[-4:] in msg, msg
        assert "retry-after" in h
        assert {r["key"] for r in fake.requests()} == {owner}
        assert_no_keys(out)
        # Other requests still work on the other keys.
        fake.config(rules=[])
        assert px.generate()[0] == 200

        # Deleting the cache forgets it.
        st, _, out = px.request("DELETE", "/v1beta/" + name)
        assert st == 200, (st, out)


@test()
def projects_share_their_files(fake):
    # Keys of one project (key.txt: project=NAME) can all use its files:
    # when the owner key itself fails (an invalid key: benched key-wide),
    # its project sibling serves; the other project's key is never tried.
    # (A quota 429 benches the whole project, siblings included.)
    fake.config(keys={KEYS[0]: {"project": "p1"}, KEYS[1]: {"project": "p2"},
                      KEYS[2]: {"project": "p1"}})
    text = "%s project=p1\n%s project=p2\n%s project=p1\n" % (KEYS[0], KEYS[1], KEYS[2])
    with Proxy(fake.url, key_text=text) as px:
        f = uploaded_file(px)
        fake.clear()
        fake.config(keys={KEYS[0]: {"project": "p1"}, KEYS[1]: {"project": "p2"},
                          KEYS[2]: {"project": "p1"}},
                    rules=[{"key": KEYS[0], "respond": "invalid_key", "times": 1}])
        part = {"fileData": {"mimeType": "image/png", "fileUri": f["uri"]}}
        body = json.dumps({"contents": [{"role": "user", "parts": [{"text": "x"}, part]}]})
        st, _, out = px.request("POST", "/v1beta/models/%s:generateContent" % MODEL, body=body)
        assert st == 200, (st, out)
        assert [r["key"] for r in fake.requests()] == [KEYS[0], KEYS[2]]


@test()
def unknown_owner_is_found_by_trying(fake):
    # A file the proxy did not see uploaded (here: through another proxy
    # with its own usage file, like another replica) is found by trying
    # keys of other projects on Google's 403; the owner is remembered and
    # used from then on, and no key is benched.
    with Proxy(fake.url, keys=KEYS[:4]) as px:
        f = uploaded_file(px)  # owned by KEYS[0]
    with Proxy(fake.url, keys=KEYS[:4]) as px:
        px.generate()
        px.generate()  # the rotation now points at KEYS[2]
        fake.clear()
        part = {"fileData": {"mimeType": "image/png", "fileUri": f["uri"]}}
        body = json.dumps({"contents": [{"role": "user", "parts": [{"text": "x"}, part]}]})
        st, _, out = px.request("POST", "/v1beta/models/%s:generateContent" % MODEL, body=body)
        assert st == 200, (st, out)
        keys = [r["key"] for r in fake.requests()]
        assert keys[-1] == KEYS[0] and keys[:-1] and KEYS[0] not in keys[:-1], keys
        assert "found by trying" in px.log()
        fake.clear()
        for _ in range(3):
            st, _, out = px.request("POST", "/v1beta/models/%s:generateContent" % MODEL,
                                    body=body)
            assert st == 200, (st, out)
        assert [r["key"] for r in fake.requests()] == [KEYS[0]] * 3
        # Nobody was benched for it: plain requests rotate over all keys.
        fake.clear()
        for _ in range(4):
            assert px.generate()[0] == 200
        assert {r["key"] for r in fake.requests()} == set(KEYS[:4])
        # A file no key can reach: every project is tried once, then
        # Google's 403 is relayed.
        fake.clear()
        body = json.dumps({"contents": [{"role": "user", "parts": [
            {"text": "x"}, {"fileData": {"mimeType": "image/png",
                                         "fileUri": "files/doesnotexist"}}]}]})
        st, _, out = px.request("POST", "/v1beta/models/%s:generateContent" % MODEL, body=body)
        assert st == 403, (st, out)
        assert sorted(r["key"] for r in fake.requests()) == sorted(KEYS[:4])


@test()
def owners_survive_a_restart(fake):
    # Owners are saved in key_usage.txt ("gkm.owners"): after a restart the
    # first use of the file goes straight to its owner.
    with Proxy(fake.url, keys=KEYS[:3]) as px:
        px.generate()  # the upload starts on KEYS[1]
        f = uploaded_file(px)
        assert px.stop() == 0
        owners = px.usage_json()["gkm"]["owners"]
        assert [(o["name"], o["key"]) for o in owners] == [(f["name"], KEYS[1])], owners
        workdir = px.dir
    with Proxy(fake.url, keys=KEYS[:3], workdir=workdir) as px:
        fake.clear()
        part = {"fileData": {"mimeType": "image/png", "fileUri": f["uri"]}}
        body = json.dumps({"contents": [{"role": "user", "parts": [{"text": "x"}, part]}]})
        st, _, out = px.request("POST", "/v1beta/models/%s:generateContent" % MODEL, body=body)
        assert st == 200, (st, out)
        assert [r["key"] for r in fake.requests()] == [KEYS[1]]


@test()
def a_wrong_owner_is_corrected(fake):
    # A remembered owner that Google refuses (here: planted in the usage
    # file) is forgotten and the real one found by trying.
    with Proxy(fake.url, keys=KEYS[:3]) as px:
        f = uploaded_file(px)  # owned by KEYS[0]
        assert px.stop() == 0
        usage = px.usage_json()
        usage["gkm"]["owners"] = [{"name": f["name"], "key": KEYS[2],
                                   "until": 4102444800000}]
        with open(px.usage, "w") as fh2:
            json.dump(usage, fh2)
        workdir = px.dir
    with Proxy(fake.url, keys=KEYS[:3], workdir=workdir) as px:
        fake.clear()
        st, _, out = px.request("GET", "/v1beta/" + f["name"])
        assert st == 200, (st, out)
        assert [r["key"] for r in fake.requests()][0] == KEYS[2]
        assert fake.requests()[-1]["key"] == KEYS[0]
        assert "does not belong to key ..." + KEYS[2][-4:] in px.log()
        fake.clear()
        st, _, out = px.request("GET", "/v1beta/" + f["name"])
        assert st == 200 and [r["key"] for r in fake.requests()] == [KEYS[0]]


if __name__ == "__main__":
    run()
