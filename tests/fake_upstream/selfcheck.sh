#!/usr/bin/env bash
# Self-check for the fake Gemini upstream.
#
#   tests/fake_upstream/selfcheck.sh [path/to/fake-gemini]
#
# Starts the fake on an ephemeral loopback port, exercises the Gemini
# surface and the /_fake control API with curl (framing, auth, rules) and a
# python3 block (disconnects, truncation, big streams, files, limits...),
# then stops it with SIGTERM and requires a clean exit (under ASan/UBSan
# that includes "no leaks, no reports").
set -u

BIN=${1:-${GKM_FAKE:-}}
if [ -z "$BIN" ]; then
  here=$(cd "$(dirname "$0")/../.." && pwd)
  BIN=$here/build-fake/fake-gemini
fi
[ -x "$BIN" ] || { echo "selfcheck: no fake-gemini binary at $BIN" >&2; exit 2; }

tmp=$(mktemp -d)
"$BIN" --listen 127.0.0.1:0 >"$tmp/out" 2>"$tmp/err" &
pid=$!
cleanup() {
  if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

port=
for _ in $(seq 1 100); do
  if grep -q '^LISTENING ' "$tmp/out" 2>/dev/null; then
    port=$(sed -n 's/^LISTENING 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/out")
    break
  fi
  sleep 0.05
done
[ -n "$port" ] || { echo "selfcheck: fake did not print LISTENING" >&2; cat "$tmp/err" >&2; exit 1; }
[ "$(wc -l <"$tmp/out")" -eq 1 ] || { echo "selfcheck: stdout must be one line" >&2; exit 1; }

B=http://127.0.0.1:$port
K=AIzaSelfCheckKey000001
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { # check "description" command...
  local d=$1
  shift
  if "$@" >/dev/null 2>&1; then ok; else bad "$d"; fi
}

gen() { # gen KEY PATH-SUFFIX BODY -> writes $tmp/body, prints status
  curl -s -o "$tmp/body" -w '%{http_code}' -X POST \
    "$B/v1beta/models/gemini-2.5-flash:$2" -H "x-goog-api-key: $1" \
    -H 'Content-Type: application/json' -d "$3"
}
BODY='{"contents":[{"role":"user","parts":[{"text":"hello fake world"}]}]}'

# ---------------------------------------------------------------- curl checks
check "health" sh -c "curl -sf $B/_fake/health | grep -qx '{\"ok\":true}'"
check "config accepted" sh -c "curl -sf -X POST $B/_fake/config -d '{\"rules\":[{\"key\":\"AIzaQuotaDayKey0001\",\"respond\":\"quota_day\"}]}' | grep -q '\"ok\":true'"
check "bad config rejected" sh -c "test \$(curl -s -o /dev/null -w '%{http_code}' -X POST $B/_fake/config -d '{\"rules\":[{\"respond\":\"nope\"}]}') = 400"
check "config still applied after a rejected one" sh -c "curl -sf $B/_fake/config | grep -q AIzaQuotaDayKey0001"

st=$(gen $K generateContent "$BODY")
check "generate 200" test "$st" = 200
check "generate echo text" grep -q '"text": "echo: hello fake world"' "$tmp/body"
check "generate finishReason" grep -q '"finishReason": "STOP"' "$tmp/body"
check "generate usage identity" python3 -c '
import json,sys; u=json.load(open(sys.argv[1]))["usageMetadata"]
assert u["totalTokenCount"]==u["promptTokenCount"]+u["candidatesTokenCount"]' "$tmp/body"

st=$(gen $K 'streamGenerateContent?alt=sse' "$BODY")
check "sse 200" test "$st" = 200
check "sse three data events" test "$(grep -c '^data: {' "$tmp/body")" = 3
check "sse CRLF framing" python3 -c '
import sys; d=open(sys.argv[1],"rb").read()
ev=d.split(b"\r\n\r\n"); assert ev[-1]==b"" and len(ev)==4, ev
assert all(e.startswith(b"data: {") and b"\n" not in e for e in ev[:-1])' "$tmp/body"
check "sse finishReason only last" python3 -c '
import sys,json; d=open(sys.argv[1],"rb").read().split(b"\r\n\r\n")[:-1]
o=[json.loads(e[6:]) for e in d]
assert [("finishReason" in x["candidates"][0]) for x in o]==[False,False,True]
assert "".join(x["candidates"][0]["content"]["parts"][0]["text"] for x in o)=="echo: hello fake world"
c=[x["usageMetadata"]["candidatesTokenCount"] for x in o]; assert c==sorted(c)' "$tmp/body"

st=$(gen $K streamGenerateContent "$BODY")
check "array 200" test "$st" = 200
check "array framing" python3 -c '
import sys,json; d=open(sys.argv[1],"rb").read()
assert d.startswith(b"[{") and d.endswith(b"}]") and d.count(b"},\r\n{")==2, d[:50]
assert len(json.loads(d))==3' "$tmp/body"

st=$(gen AIzaQuotaDayKey0001 generateContent "$BODY")
check "quota_day rule 429" test "$st" = 429
check "quota_day PerDay id" grep -q 'GenerateRequestsPerDayPerProjectPerModel-FreeTier' "$tmp/body"
check "quota_day model dimension" grep -q '"model": "gemini-2.5-flash"' "$tmp/body"
st=$(gen $K generateContent "$BODY")
check "rule only for its key" test "$st" = 200

check "requests recorded" python3 -c '
import json,sys,urllib.request
r=json.load(urllib.request.urlopen(sys.argv[1]+"/_fake/requests"))["requests"]
assert len(r)==5, len(r)
a=r[0]; assert a["method"]=="POST" and a["path"]=="/v1beta/models/gemini-2.5-flash:generateContent"
assert a["query"]=="" and a["key"]==sys.argv[2] and a["auth"]=="header" and a["model"]=="gemini-2.5-flash"
assert a["status"]==200 and a["completed"] is True and a["bytes_sent"]>0
assert a["headers"]["x-goog-api-key"]==sys.argv[2] and "hello fake world" in a["body"]
assert r[1]["query"]=="alt=sse" and r[3]["status"]==429 and r[3]["key"]=="AIzaQuotaDayKey0001"' "$B" "$K"
check "delete records" sh -c "curl -sf -X DELETE $B/_fake/requests >/dev/null && curl -sf $B/_fake/requests | grep -qx '{\"requests\":\[\]}'"

# ---------------------------------------------------------------- python checks
python3 - "$B" <<'PYEOF'
import http.client, json, socket, sys, time, urllib.request

B = sys.argv[1]
HOST, PORT = B.split("//")[1].split(":")
PORT = int(PORT)
K = "AIzaSelfCheckKey000001"
fails = []
npass = 0

def check(desc, cond):
    global npass
    if cond:
        npass += 1
    else:
        fails.append(desc)
        print("FAIL:", desc, file=sys.stderr)

def req(method, path, body=None, headers=None, raw=False):
    c = http.client.HTTPConnection(HOST, PORT, timeout=30)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    if raw:
        return r.status, r, data
    try:
        return r.status, r, json.loads(data) if data else None
    except ValueError:
        return r.status, r, data

def ctl(path, body=None, method="POST"):
    return req(method, "/_fake/" + path, body)[2]

def G(model="gemini-2.5-flash", method="generateContent", key=K, body=None,
      query="", headers=None, raw=False):
    h = {"x-goog-api-key": key} if key else {}
    h.update(headers or {})
    return req("POST", "/v1beta/models/%s:%s%s" % (model, method, query),
               body if body is not None else
               {"contents": [{"role": "user", "parts": [{"text": "hi there"}]}]},
               h, raw)

def emsg(b):
    if isinstance(b, list):
        b = b[0]
    return b["error"]["message"]

def records():
    return ctl("requests", method="GET")["requests"]

def sse_events(data):
    return [json.loads(e[6:]) for e in data.split(b"\r\n\r\n") if e.startswith(b"data: ")]

def raw_http(path, body, headers, read_timeout=5.0):
    """Raw socket request; returns (bytes, closed_by_server)."""
    s = socket.create_connection((HOST, PORT))
    b = json.dumps(body).encode()
    hs = "".join("%s: %s\r\n" % kv for kv in headers.items())
    s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n"
               % (path, hs, len(b))).encode() + b)
    s.settimeout(read_timeout)
    out = b""
    closed = False
    try:
        while True:
            d = s.recv(65536)
            if not d:
                closed = True
                break
            out += d
    except socket.timeout:
        pass
    s.close()
    return out, closed

ctl("reset")

# --- generation details
st, _, b = G(body={"contents": [{"parts": [{"text": "think please"}]}],
                   "generationConfig": {"thinkingConfig": {"includeThoughts": True}}})
parts = b["candidates"][0]["content"]["parts"]
u = b["usageMetadata"]
check("includeThoughts: thought part first", parts[0].get("thought") is True and parts[1]["text"] == "echo: think please")
check("includeThoughts: usage identity", u["totalTokenCount"] == u["promptTokenCount"] + u["candidatesTokenCount"] + u["thoughtsTokenCount"])
tools = [{"functionDeclarations": [{"name": "get_weather", "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}}}]}]
st, _, b = G(body={"contents": [{"role": "user", "parts": [{"text": "please call tool now"}]}], "tools": tools})
p = b["candidates"][0]["content"]["parts"][0]
check("function call part", p.get("functionCall", {}).get("name") == "get_weather" and p.get("thoughtSignature"))
check("function call finish", b["candidates"][0]["finishReason"] == "STOP" and "finishMessage" in b["candidates"][0])
sig = p["thoughtSignature"]
hist = {"contents": [{"role": "user", "parts": [{"text": "please call tool now"}]},
                     {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {}}}]},
                     {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": 1}}}]}],
        "tools": tools}
st, _, b = G(model="gemini-3-pro-preview", body=hist)
check("gemini-3 missing thought signature -> 400", st == 400 and "thought_signature" in emsg(b))
hist["contents"][1]["parts"][0]["thoughtSignature"] = sig
st, _, b = G(model="gemini-3-pro-preview", body=hist)
check("gemini-3 with issued signature -> 200", st == 200 and "functionResponse:get_weather" in b["candidates"][0]["content"]["parts"][0]["text"])
hist["contents"][1]["parts"][0]["thoughtSignature"] = "bm90IG91cnM="
st, _, b = G(model="gemini-3-pro-preview", body=hist)
check("gemini-3 forged signature -> 400", st == 400)
hist["contents"][2]["parts"] = []
st, _, b = G(body=hist)
check("function response count mismatch -> 400", st == 400 and "function response parts" in emsg(b))

# --- validation
st, _, b = G(body={"contents": [{"parts": [{"text": "x"}]}], "foo": 1})
check("unknown top-level field", st == 400 and emsg(b) == 'Invalid JSON payload received. Unknown name "foo": Cannot find field.')
st, _, b = G(body={"contents": [{"parts": [{"text": "x"}]}], "tools": [{"functionDeclarations": [{"name": "f", "strict": True}]}]})
check("unknown nested field path", st == 400 and "at 'tools[0].function_declarations[0]'" in emsg(b))
st, _, b = G(body={"contents": [{"parts": [{"text": "x"}]}], "system_instruction": {"parts": [{"text": "s"}]},
                   "generation_config": {"max_output_tokens": 5}})
check("snake_case accepted", st == 200)
st, _, b = G(body="{not json")
check("malformed JSON", st == 400 and emsg(b).startswith("Invalid JSON payload received."))
st, _, b = G(body={"contents": [{"role": "system", "parts": [{"text": "x"}]}]})
check("bad role", st == 400)
st, _, b = G(body={"contents": [{"role": "user", "parts": [{"text": "a"}]}, {"role": "user", "parts": [{"text": "b"}]}]})
check("non-alternating", st == 400 and "alternate" in emsg(b))
st, _, b = G(body={"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"thinkingConfig": {"thinkingBudget": 10, "thinkingLevel": "LOW"}}})
check("thinkingBudget+thinkingLevel", st == 400)
st, _, b = G(model="gpt-4o")
check("unknown model 404", st == 404 and emsg(b).startswith("models/gpt-4o is not found for API version v1beta"))
ctl("config", {"validation": {"alternation": False}})
st, _, b = G(body={"contents": [{"role": "user", "parts": [{"text": "a"}]}, {"role": "user", "parts": [{"text": "b"}]}]})
check("validation switch", st == 200)

# --- auth
st, _, b = G(key=None, headers={"Authorization": "Bearer " + K})
check("bearer on native -> 401", st == 401 and b["error"]["status"] == "UNAUTHENTICATED")
st, _, b = G(query="?key=" + K)
check("header+query -> 400 multiple", st == 400 and "Multiple authentication credentials" in emsg(b))
st, _, b = G(key=None)
check("no credential -> 403", st == 403 and emsg(b).startswith("Method doesn't allow unregistered callers"))
st, _, b = G(key=None, query="?key=" + K + "&alt=json")
check("query key accepted", st == 200)
st, _, b = G(key="not-a-key")
check("malformed key -> 400 API_KEY_INVALID", st == 400 and b["error"]["details"][0]["reason"] == "API_KEY_INVALID")
SUS = "AIzaSuspendedKey0000001"
ctl("config", {"keys": {SUS: {"state": "suspended", "project": "p9"},
                        "AIzaLeakedKey00000001": {"state": "leaked"},
                        "AIzaBlockedKey0000001": {"state": "blocked"},
                        "AIzaInvalidKey0000001": {"state": "invalid"}}})
st, _, b = G(key=SUS)
check("suspended key quotes the key", st == 403 and ("'api_key:%s'" % SUS) in emsg(b)
      and any(d.get("message", "").find(SUS) >= 0 for d in b["error"]["details"]))
st, _, b = G(key="AIzaLeakedKey00000001")
check("leaked key", st == 403 and "reported as leaked" in emsg(b))
st, _, b = G(key="AIzaBlockedKey0000001", method="streamGenerateContent", query="?alt=sse")
check("blocked key", st == 403 and b["error"]["details"][0]["reason"] == "API_KEY_SERVICE_BLOCKED" and "StreamGenerateContent" in emsg(b))
st, _, b = G(key="AIzaInvalidKey0000001")
check("invalid key state", st == 400)
ctl("config", {"default_key_state": "invalid"})
check("default_key_state", G()[0] == 400)

# --- rules
ctl("config", {"rules": [
    {"key": "AIzaRuleKey00000000001", "respond": "quota_minute", "retry_delay": "17s", "times": 2},
    {"model": "gemini-2.5-pro", "respond": "quota_zero"},
    {"path_contains": "countTokens", "respond": "overloaded"},
    {"key": "AIzaRuleKey00000000002", "respond": "status", "status": 418, "body": {"x": 1}, "headers": {"X-Test": "yes"}},
    {"key": "AIzaRuleKey00000000003", "respond": "quota_bare"},
    {"key": "AIzaRuleKey00000000004", "respond": "suspended"},
    {"key": "AIzaRuleKey00000000005", "respond": "delay", "delay_ms": 300},
    {"key": "AIzaRuleKey00000000006", "respond": "server_error", "delay_ms": 200},
]})
st, _, b = G(key="AIzaRuleKey00000000001")
check("quota_minute retry delay", st == 429 and "Please retry in 17s." in emsg(b)
      and any(d.get("retryDelay") == "17s" for d in b["error"]["details"]))
check("quota_minute PerMinute", "PerMinute" in json.dumps(b))
G(key="AIzaRuleKey00000000001")
check("rule times exhausted", G(key="AIzaRuleKey00000000001")[0] == 200)
st, _, b = G(model="gemini-2.5-pro")
check("quota_zero", st == 429 and "limit: 0" in emsg(b) and '"quotaValue": "0"' in json.dumps(b, indent=1).replace('"quotaValue": "0"', '"quotaValue": "0"'))
check("path_contains rule", G(method="countTokens")[0] == 503)
st, r, b = G(key="AIzaRuleKey00000000002")
check("status rule", st == 418 and b == {"x": 1} and r.getheader("X-Test") == "yes")
st, _, b = G(key="AIzaRuleKey00000000003")
check("quota_bare", st == 429 and b == {"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}})
st, _, b = G(key="AIzaRuleKey00000000004")
check("suspended rule quotes key", st == 403 and "api_key:AIzaRuleKey00000000004" in emsg(b))
t0 = time.time(); st, _, b = G(key="AIzaRuleKey00000000005"); dt = time.time() - t0
check("delay rule", st == 200 and dt >= 0.28)
t0 = time.time(); st, _, b = G(key="AIzaRuleKey00000000006"); dt = time.time() - t0
check("error rule with delay_ms", st == 500 and dt >= 0.18)
check("rules listing", len(ctl("rules", method="GET")["rules"]) == 7)

# --- limits (shared by the keys of one project)
ctl("reset")
ctl("config", {"keys": {"AIzaProjA000000000001": {"project": "A"}, "AIzaProjA000000000002": {"project": "A"}},
               "limits": {"gemini-2.5-flash": {"rpm": 2}, "*": {"rpd": 1}}})
s1 = G(key="AIzaProjA000000000001")[0]; s2 = G(key="AIzaProjA000000000002")[0]
st, _, b = G(key="AIzaProjA000000000001")
check("rpm shared per project", (s1, s2, st) == (200, 200, 429) and "PerMinute" in json.dumps(b))
rd = [d["retryDelay"] for d in b["error"]["details"] if "retryDelay" in d]
check("rpm retryDelay to next minute", rd and 1 <= int(rd[0][:-1]) <= 60)
check("other project unaffected", G(key="AIzaOtherProject00001")[0] == 200)
s1 = G(key="AIzaProjA000000000001", model="gemini-2.5-pro")[0]
st, _, b = G(key="AIzaProjA000000000002", model="gemini-2.5-pro")
check("rpd via *", s1 == 200 and st == 429 and "PerDay" in json.dumps(b))

# --- stream faults
ctl("reset")
ctl("config", {"stream": {"chunks": 4}, "rules": [
    {"key": "AIzaStreamErr00000001", "respond": "stream_error_event", "after_chunks": 2},
    {"key": "AIzaStreamTail0000001", "respond": "stream_error_tail", "after_chunks": 1},
    {"key": "AIzaTruncate000000001", "respond": "truncate", "after_chunks": 2},
    {"key": "AIzaBlockedPrompt0001", "respond": "blocked_prompt"},
    {"key": "AIzaMaxTokens00000001", "respond": "max_tokens_empty"},
    {"key": "AIzaOverloaded000001", "respond": "overloaded"}]})
st, _, d = G(key="AIzaStreamErr00000001", method="streamGenerateContent", query="?alt=sse", raw=True)
ev = sse_events(d)
check("stream_error_event", st == 200 and len(ev) == 3 and ev[-1]["error"]["code"] == 503
      and all("finishReason" not in e["candidates"][0] for e in ev[:2]))
st, _, d = G(key="AIzaStreamTail0000001", method="streamGenerateContent", query="?alt=sse", raw=True)
check("stream_error_tail", st == 200 and len(sse_events(d)) == 1 and json.loads(d.split(b"\r\n\r\n")[-1])["error"]["status"] == "UNAVAILABLE")
out, closed = raw_http("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", {"contents": [{"parts": [{"text": "a b c d"}]}]},
                       {"x-goog-api-key": "AIzaTruncate000000001"})
check("truncate closes without terminator", closed and out.count(b"data: ") == 2 and not out.endswith(b"0\r\n\r\n") and b"finishReason" not in out)
out, closed = raw_http("/v1beta/models/gemini-2.5-flash:generateContent", {"contents": [{"parts": [{"text": "a b c d"}]}]},
                       {"x-goog-api-key": "AIzaTruncate000000001"})
hdr, _, body = out.partition(b"\r\n\r\n")
cl = int([l.split(b":")[1] for l in hdr.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
check("truncate non-stream short body", closed and len(body) < cl)
st, _, b = G(key="AIzaBlockedPrompt0001")
check("blocked_prompt", st == 200 and b["promptFeedback"]["blockReason"] == "SAFETY" and "candidates" not in b)
st, _, b = G(key="AIzaMaxTokens00000001")
c = b["candidates"][0]
check("max_tokens_empty", c["finishReason"] == "MAX_TOKENS" and "parts" not in c["content"])
st, _, b = G(key="AIzaOverloaded000001", method="streamGenerateContent", query="?alt=sse")
check("error before stream is plain JSON", st == 503 and b["error"]["status"] == "UNAVAILABLE")
ctl("config", {"array_errors": True, "rules": [{"respond": "overloaded"}]})
st, _, b = G(method="streamGenerateContent")
check("array_errors wraps JSON-array mode", st == 503 and isinstance(b, list))

# --- big, produced lazily
ctl("reset")
ctl("config", {"rules": [{"respond": "big", "bytes": 3000000}]})
st, r, d = G(method="streamGenerateContent", query="?alt=sse", raw=True)
ev = sse_events(d)
txt = "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in ev)
check("big sse", st == 200 and len(txt) == 3000000 and ev[-1]["candidates"][0]["finishReason"] == "STOP")
st, r, d = G(method="streamGenerateContent", raw=True)
arr = json.loads(d)
check("big array", st == 200 and sum(len(e["candidates"][0]["content"]["parts"][0]["text"]) for e in arr) == 3000000)
st, r, d = G(raw=True)
o = json.loads(d)
check("big non-stream", st == 200 and int(r.getheader("Content-Length")) == len(d)
      and len(o["candidates"][0]["content"]["parts"][0]["text"]) == 3000000)

# --- disconnects
ctl("reset")
ctl("config", {"stream": {"chunks": 10, "chunk_delay_ms": 150},
               "rules": [{"key": "AIzaDelayed0000000001", "respond": "delay", "delay_ms": 3000}]})
s = socket.create_connection((HOST, PORT))
bd = json.dumps({"contents": [{"parts": [{"text": "one two three four five six seven eight nine ten"}]}]}).encode()
s.sendall(b"POST /v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse HTTP/1.1\r\nHost: x\r\nx-goog-api-key: "
          + K.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(bd) + bd)
got = b""
while got.count(b"data: ") < 2:
    got += s.recv(65536)
s.close()
time.sleep(0.6)
rec = records()[-1]
st_ = ctl("stats", method="GET")
check("mid-stream disconnect recorded", rec["completed"] is False and 0 < rec["bytes_sent"] and rec["status"] == 200)
check("mid-stream disconnect freed job", st_["active_jobs"] == 0)
s = socket.create_connection((HOST, PORT))
s.sendall(b"POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\nx-goog-api-key: AIzaDelayed0000000001\r\nContent-Length: %d\r\n\r\n" % len(bd) + bd)
time.sleep(0.2)
s.close()
time.sleep(0.3)
rec = records()[-1]
check("disconnect during delay detected early", rec["completed"] is False and rec["bytes_sent"] == 0
      and ctl("stats", method="GET")["active_jobs"] == 0)

# --- keep-alive across streamed and plain responses
ctl("reset")
c = http.client.HTTPConnection(HOST, PORT, timeout=10)
okc = 0
for i in range(6):
    path = "/v1beta/models/gemini-2.5-flash:" + ("streamGenerateContent?alt=sse" if i % 2 else "generateContent")
    c.request("POST", path, body=json.dumps({"contents": [{"parts": [{"text": "k %d" % i}]}]}), headers={"x-goog-api-key": K})
    r = c.getresponse(); r.read()
    okc += r.status == 200
c.close()
check("keep-alive reuse", okc == 6)

# --- countTokens, embeddings, models
st, _, b = G(method="countTokens", body={"contents": [{"parts": [{"text": "a b c"}]}]})
check("countTokens contents", st == 200 and b["totalTokens"] == 3)
st, _, b = G(method="countTokens", body={"generateContentRequest": {"model": "models/gemini-2.5-flash", "contents": [{"parts": [{"text": "a b"}]}], "systemInstruction": {"parts": [{"text": "c"}]}}})
check("countTokens generateContentRequest", st == 200 and b["totalTokens"] == 3)
st, _, b = G(model="gemini-embedding-001", method="embedContent", body={"content": {"parts": [{"text": "hi"}]}, "outputDimensionality": 5})
check("embedContent dims", st == 200 and len(b["embedding"]["values"]) == 5)
st, _, b = G(model="gemini-embedding-001", method="embedContent", body={"content": {"parts": [{"text": "hi"}]}})
check("embedContent default dims", st == 200 and len(b["embedding"]["values"]) == 8)
one = {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "x"}]}}
st, _, b = G(model="gemini-embedding-001", method="batchEmbedContents", body={"requests": [one] * 3})
check("batchEmbedContents", st == 200 and len(b["embeddings"]) == 3)
st, _, b = G(model="gemini-embedding-001", method="batchEmbedContents", body={"requests": [one] * 101})
check("batchEmbedContents >100", st == 400 and "at most 100 requests" in emsg(b))
st, _, b = req("GET", "/v1beta/models?pageSize=2", headers={"x-goog-api-key": K})
names = [m["name"] for m in b["models"]]
tok = b.get("nextPageToken")
while tok:
    _, _, b2 = req("GET", "/v1beta/models?pageSize=2&pageToken=" + tok, headers={"x-goog-api-key": K})
    names += [m["name"] for m in b2["models"]]
    tok = b2.get("nextPageToken")
_, _, ball = req("GET", "/v1beta/models", headers={"x-goog-api-key": K})
check("models paging", len(names) == len(ball["models"]) >= 5 and "nextPageToken" not in ball)
st, _, b = req("GET", "/v1beta/models/gemini-2.5-flash", headers={"x-goog-api-key": K})
check("models get", st == 200 and b["name"] == "models/gemini-2.5-flash")
st, _, b = req("GET", "/v1/models/gemini-2.5-flash", headers={"x-goog-api-key": K})
check("v1 surface", st == 200)

# --- files with project ownership
ctl("config", {"keys": {"AIzaFilesA00000000001": {"project": "FA"}, "AIzaFilesA00000000002": {"project": "FA"},
                        "AIzaFilesB00000000001": {"project": "FB"}}})
st, r, _ = req("POST", "/upload/v1beta/files", {"file": {"displayName": "cat.png"}},
               {"x-goog-api-key": "AIzaFilesA00000000001", "X-Goog-Upload-Protocol": "resumable",
                "X-Goog-Upload-Command": "start", "X-Goog-Upload-Header-Content-Type": "image/png",
                "X-Goog-Upload-Header-Content-Length": "10"})
url = r.getheader("x-goog-upload-url") or ""
check("upload start", st == 200 and r.getheader("x-goog-upload-status") == "active" and url.startswith(B + "/upload/v1beta/files?upload_id="))
path = url[len(B):]
st, r, b = req("POST", path, b"0123456789", {"Content-Type": "image/png", "X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"})
f = (b or {}).get("file", {})
check("upload finalize", st == 200 and r.getheader("x-goog-upload-status") == "final" and f.get("sizeBytes") == "10" and f.get("mimeType") == "image/png")
fid = f.get("name", "files/x")
st, _, b = req("GET", "/v1beta/" + fid, headers={"x-goog-api-key": "AIzaFilesA00000000002"})
check("file get same project", st == 200 and b["displayName"] == "cat.png")
st, _, b = req("GET", "/v1beta/" + fid, headers={"x-goog-api-key": "AIzaFilesB00000000001"})
check("file get other project 403", st == 403 and emsg(b) == "You do not have permission to access the File %s or it may not exist." % fid[6:])
st, _, b = req("GET", "/v1beta/files", headers={"x-goog-api-key": "AIzaFilesA00000000001"})
check("file list", st == 200 and [x["name"] for x in b["files"]] == [fid])
fb = {"contents": [{"parts": [{"fileData": {"mimeType": "image/png", "fileUri": f.get("uri", "")}}, {"text": "describe"}]}]}
check("fileData same project", G(key="AIzaFilesA00000000002", body=fb)[0] == 200)
check("fileData other project 403", G(key="AIzaFilesB00000000001", body=fb)[0] == 403)
st, _, b = req("DELETE", "/v1beta/" + fid, headers={"x-goog-api-key": "AIzaFilesA00000000001"})
check("file delete", st == 200 and b == {} and req("GET", "/v1beta/" + fid, headers={"x-goog-api-key": "AIzaFilesA00000000001"})[0] == 403)

# --- cachedContents
st, _, cc = req("POST", "/v1beta/cachedContents", {"model": "models/gemini-2.5-flash", "contents": [{"role": "user", "parts": [{"text": "a b c d e"}]}], "ttl": "300s"},
                {"x-goog-api-key": "AIzaFilesA00000000001"})
check("cache create", st == 200 and cc["name"].startswith("cachedContents/"))
st, _, b = G(key="AIzaFilesA00000000002", body={"cachedContent": cc["name"], "contents": [{"parts": [{"text": "q"}]}]})
check("cache use", st == 200 and b["usageMetadata"].get("cachedContentTokenCount") == 5)
check("cache other project 403", G(key="AIzaFilesB00000000001", body={"cachedContent": cc["name"], "contents": [{"parts": [{"text": "q"}]}]})[0] == 403)
st, _, b = G(key="AIzaFilesA00000000002", body={"cachedContent": cc["name"], "systemInstruction": {"parts": [{"text": "s"}]}, "contents": [{"parts": [{"text": "q"}]}]})
check("cache + systemInstruction 400", st == 400 and "CachedContent can not be used" in emsg(b))

# --- OpenAI compatible surface
st, _, b = req("POST", "/v1beta/openai/chat/completions", {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "yo"}]},
               {"Authorization": "Bearer " + K})
check("openai chat", st == 200 and b["choices"][0]["message"]["content"] == "echo: yo")
st, _, b = req("POST", "/v1beta/openai/chat/completions", {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "yo"}]},
               {"Authorization": "Bearer " + K, "x-goog-api-key": K})
check("openai multiple credentials wrapped", st == 400 and isinstance(b, list) and "Multiple" in b[0]["error"]["message"])
st, _, d = req("POST", "/v1beta/openai/chat/completions", {"model": "gemini-2.5-flash", "stream": True, "messages": [{"role": "user", "content": "yo"}]},
               {"Authorization": "Bearer " + K}, raw=True)
check("openai stream", st == 200 and d.endswith(b"data: [DONE]\n\n"))

# --- records: binary body, reset
ctl("reset")
req("POST", "/v1beta/models/gemini-2.5-flash:generateContent", b"\xff\xfe\x00binary", {"x-goog-api-key": K})
rec = records()
check("binary body as body_b64", len(rec) == 1 and rec[0]["id"] == 1 and "body_b64" in rec[0] and rec[0]["status"] == 400)
check("unknown path 404 recorded", req("GET", "/nope")[0] == 404 and records()[-1]["path"] == "/nope")

print("python checks: %d passed, %d failed" % (npass, len(fails)))
sys.exit(1 if fails else 0)
PYEOF
py=$?
if [ $py -ne 0 ]; then bad "python checks"; else ok; fi

# ---------------------------------------------------------------- shutdown
kill -TERM "$pid"
wait "$pid"
rc=$?
check "clean exit on SIGTERM" test "$rc" = 0
if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error' "$tmp/err"; then
  bad "sanitizer report"
  cat "$tmp/err" >&2
fi

echo "selfcheck: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
