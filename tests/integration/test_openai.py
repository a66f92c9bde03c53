"""The OpenAI surface through the real binary and the fake upstream:
chat (whole and truly streamed), tool calls with thought signatures round
trip, models (cached), embeddings (batched), errors in OpenAI's shape,
429 failover, errors inside a stream, client disconnects, and the
/v1beta/openai/ passthrough."""
import http.client
import json
import socket
import time

from gkm import (KEYS, TOKEN, Proxy, assert_no_keys, read_rest, run, test,
                 wait_for)

CHAT = "/v1/chat/completions"


def post(px, path, obj, stream=False, token=TOKEN, raw=None):
    c = http.client.HTTPConnection("127.0.0.1", px.port, timeout=20)
    h = {"Content-Type": "application/json"}
    if token is not None:
        h["Authorization"] = "Bearer " + token
    c.request("POST", path, body=raw if raw is not None else json.dumps(obj), headers=h)
    r = c.getresponse()
    if stream:
        return c, r
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def events(raw):
    out = []
    for block in raw.decode().split("\n\n"):
        block = block.strip()
        if block.startswith("data: "):
            out.append(block[6:])
    return out


def chat_req(**kw):
    req = {"model": "gemini-2.5-flash",
           "messages": [{"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "hello from openai"}]}
    req.update(kw)
    return req


@test()
def chat_whole(fake):
    with Proxy(fake.url) as px:
        st, h, body = post(px, CHAT, chat_req(temperature=0.2, max_tokens=50,
                                              user="someone", logprobs=False))
        assert st == 200, (st, body)
        o = json.loads(body)
        assert o["object"] == "chat.completion"
        assert o["model"] == "gemini-2.5-flash"
        msg = o["choices"][0]["message"]
        assert msg["role"] == "assistant" and "hello from openai" in msg["content"]
        assert o["choices"][0]["finish_reason"] == "stop"
        assert o["usage"]["total_tokens"] >= o["usage"]["prompt_tokens"] > 0
        r = fake.requests()[0]
        assert r["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
        assert r["key"] == KEYS[0] and r["auth"] == "header"
        assert "authorization" not in r["headers"]
        up = json.loads(r["body"])
        assert up["systemInstruction"]["parts"][0]["text"] == "Be brief."
        assert up["contents"] == [{"role": "user", "parts": [{"text": "hello from openai"}]}]
        assert up["generationConfig"]["temperature"] == 0.2
        assert up["generationConfig"]["maxOutputTokens"] == 50
        assert "user" not in up and "logprobs" not in json.dumps(up)


@test()
def chat_streams_incrementally(fake):
    fake.config(stream={"chunks": 4, "chunk_delay_ms": 300})
    with Proxy(fake.url) as px:
        t0 = time.time()
        c, r = post(px, CHAT, chat_req(stream=True, stream_options={"include_usage": True},
                                       messages=[{"role": "user", "content": "one two three four five six seven"}]),
                    stream=True)
        assert r.status == 200 and r.getheader("Content-Type").startswith("text/event-stream")
        first = r.read1(65536)
        t_first = time.time() - t0
        rest = read_rest(r)
        t_all = time.time() - t0
        c.close()
        assert t_first < t_all - 0.6, (t_first, t_all)
        ev = events(first + rest)
        assert ev[-1] == "[DONE]", ev[-3:]
        chunks = [json.loads(e) for e in ev[:-1]]
        assert all(ch["object"] == "chat.completion.chunk" for ch in chunks)
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
        text = "".join(ch["choices"][0]["delta"].get("content") or ""
                       for ch in chunks if ch["choices"])
        assert "one two three four five six seven" in text, text
        finals = [ch for ch in chunks if ch["choices"] and ch["choices"][0].get("finish_reason")]
        assert finals and finals[-1]["choices"][0]["finish_reason"] == "stop"
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
        assert fake.requests()[0]["query"] == "alt=sse"


@test()
def tools_round_trip_with_signatures(fake):
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"], "additionalProperties": False}}}]
    with Proxy(fake.url) as px:
        model = "gemini-3-pro-preview"
        msgs = [{"role": "user", "content": "please call tool for Paris"}]
        st, _, body = post(px, CHAT, {"model": model, "messages": msgs, "tools": tools,
                                      "tool_choice": "auto"})
        assert st == 200, body
        choice = json.loads(body)["choices"][0]
        assert choice["finish_reason"] == "tool_calls", choice
        call = choice["message"]["tool_calls"][0]
        assert call["type"] == "function" and call["function"]["name"] == "get_weather"
        up1 = json.loads(fake.requests()[0]["body"])
        assert up1["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
        # Second turn: the assistant's call and the tool's answer go back.
        msgs += [{"role": "assistant", "content": None, "tool_calls": [call]},
                 {"role": "tool", "tool_call_id": call["id"], "content": "{\"temp\": 21}"}]
        fake.clear()
        st, _, body = post(px, CHAT, {"model": model, "messages": msgs, "tools": tools})
        assert st == 200, body
        up2 = json.loads(fake.requests()[0]["body"])
        model_turn = [c for c in up2["contents"] if c["role"] == "model"][0]
        fc = [p for p in model_turn["parts"] if "functionCall" in p][0]
        assert fc.get("thoughtSignature"), "signature must travel back (Gemini 3)"
        user_turn = up2["contents"][-1]
        fr = [p for p in user_turn["parts"] if "functionResponse" in p][0]
        assert fr["functionResponse"]["name"] == "get_weather"


@test()
def models_and_model(fake):
    with Proxy(fake.url, args=["--model-alias", "gpt-4o=gemini-2.5-flash"]) as px:
        st, _, body = px.request("GET", "/v1/models", auth="bearer")
        assert st == 200, body
        o = json.loads(body)
        ids = [m["id"] for m in o["data"]]
        assert o["object"] == "list" and "gemini-2.5-flash" in ids and "gpt-4o" in ids, ids
        st, _, body = px.request("GET", "/v1/models", auth="bearer")
        assert st == 200 and json.loads(body) == o
        assert len(fake.requests()) == 1, "the list is cached"
        st, _, body = px.request("GET", "/v1/models/gemini-2.5-flash", auth="bearer")
        assert st == 200 and json.loads(body)["id"] == "gemini-2.5-flash"
        st, _, body = px.request("GET", "/v1/models/nonexistent-model", auth="bearer")
        assert st == 404, (st, body)
        assert json.loads(body)["error"]["type"] == "invalid_request_error"
        # Gemini's own v1 model list still works with a Gemini-style key.
        st, _, body = px.request("GET", "/v1/models", auth="header")
        assert st == 200 and "models" in json.loads(body)
        # Alias used in a chat request.
        st, _, body = post(px, CHAT, chat_req(model="gpt-4o"))
        assert st == 200 and json.loads(body)["model"] == "gpt-4o"
        assert fake.requests()[-1]["path"].startswith("/v1beta/models/gemini-2.5-flash:")


@test()
def embeddings(fake):
    with Proxy(fake.url) as px:
        st, _, body = post(px, "/v1/embeddings", {"model": "gemini-embedding-001",
                                                   "input": ["a", "b", "c"], "dimensions": 16})
        assert st == 200, body
        o = json.loads(body)
        assert [d["index"] for d in o["data"]] == [0, 1, 2]
        assert all(len(d["embedding"]) == 16 for d in o["data"])
        fake.clear()
        st, _, body = post(px, "/v1/embeddings", {"model": "gemini-embedding-001",
                                                   "input": ["x%d" % i for i in range(150)]})
        assert st == 200, body
        assert len(json.loads(body)["data"]) == 150
        paths = [r["path"] for r in fake.requests()]
        assert paths == ["/v1beta/models/gemini-embedding-001:batchEmbedContents"] * 2, paths
        assert [len(json.loads(r["body"])["requests"]) for r in fake.requests()] == [100, 50]


@test()
def errors_in_openai_shape(fake):
    with Proxy(fake.url) as px:
        st, _, body = post(px, CHAT, None, raw="{not json")
        assert st == 400, st
        e = json.loads(body)["error"]
        assert e["type"] == "invalid_request_error" and "JSON" in e["message"]
        st, _, body = post(px, CHAT, {"model": "gemini-2.5-flash", "messages": "hi"})
        assert st == 400 and json.loads(body)["error"]["param"] == "messages", body
        st, _, body = post(px, CHAT, chat_req(), token="wrong")
        assert st == 401 and json.loads(body)["error"]["code"] == "invalid_api_key"
        assert fake.requests() == [], "nothing sent upstream"
        fake.config(rules=[{"respond": "bad_request", "times": 1}])
        st, _, body = post(px, CHAT, chat_req())
        assert st == 400 and "error" in json.loads(body)
        fake.config(rules=[{"respond": "not_found", "times": 1}])
        st, _, body = post(px, CHAT, chat_req(model="gemini-9.9-ultra"))
        assert st == 404, (st, body)


@test()
def failover_and_exhaustion(fake):
    with Proxy(fake.url, keys=KEYS[:2]) as px:
        fake.config(rules=[{"key": KEYS[0], "respond": "quota_day"}])
        st, _, body = post(px, CHAT, chat_req())
        assert st == 200, body
        assert [r["key"] for r in fake.requests()] == [KEYS[0], KEYS[1]]
        fake.config(rules=[{"respond": "quota_day"}])
        st, h, body = post(px, CHAT, chat_req())
        assert st == 503, (st, body)
        e = json.loads(body)["error"]
        assert "daily quota" in e["message"] and int(h["retry-after"]) > 0
        assert_no_keys(body)


@test()
def error_inside_stream(fake):
    fake.config(stream={"chunks": 4},
                rules=[{"respond": "stream_error_event", "after_chunks": 2}])
    with Proxy(fake.url) as px:
        c, r = post(px, CHAT, chat_req(stream=True, messages=[
            {"role": "user", "content": "one two three four five six"}]), stream=True)
        assert r.status == 200
        ev = events(r.read())
        c.close()
        assert "[DONE]" not in ev, ev
        last = json.loads(ev[-1])
        assert "error" in last and last["error"]["message"], last


@test()
def stream_disconnect_cancels_upstream(fake):
    fake.config(stream={"chunks": 30, "chunk_delay_ms": 200})
    with Proxy(fake.url) as px:
        c, r = post(px, CHAT, chat_req(stream=True, messages=[
            {"role": "user", "content": " ".join("w%d" % i for i in range(60))}]), stream=True)
        assert r.status == 200
        r.read1(100)
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()
        assert wait_for(lambda: [q for q in fake.requests() if q.get("completed") is False],
                        timeout=4), fake.requests()


@test()
def stream_keepalive_comments(fake):
    # A model that thinks between chunks: the client still hears from the
    # proxy every --sse-keepalive, and the SDK-visible events are unchanged.
    # 3 gaps of 1.2 s between 4 chunks: at least one comment in each.
    fake.config(stream={"chunks": 4, "chunk_delay_ms": 1200})
    with Proxy(fake.url, args=["--sse-keepalive", "500ms"]) as px:
        c, r = post(px, CHAT, chat_req(stream=True, messages=[
            {"role": "user", "content": "alpha beta gamma delta"}]), stream=True)
        assert r.status == 200
        raw = r.read()
        c.close()
        assert raw.count(b": keep-alive\n\n") >= 3, raw
        ev = events(raw)
        assert ev[-1] == "[DONE]"
        text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                       for e in ev[:-1] if json.loads(e)["choices"])
        assert "alpha beta gamma delta" in text, text
    # Off with 0.
    fake.config(stream={"chunks": 2, "chunk_delay_ms": 700})
    with Proxy(fake.url, args=["--sse-keepalive", "0"]) as px:
        c, r = post(px, CHAT, chat_req(stream=True), stream=True)
        raw = r.read()
        c.close()
        assert b"keep-alive" not in raw


@test()
def google_compat_passthrough(fake):
    with Proxy(fake.url) as px:
        st, _, body = post(px, "/v1beta/openai/chat/completions",
                           {"model": "gemini-2.5-flash",
                            "messages": [{"role": "user", "content": "hi compat"}]})
        assert st == 200, (st, body)
        assert json.loads(body)["choices"][0]["message"]["content"]
        r = fake.requests()[0]
        assert r["path"] == "/v1beta/openai/chat/completions"
        assert r["headers"]["authorization"] == "Bearer " + r["key"]
        assert r["key"] in KEYS and "x-goog-api-key" not in r["headers"]


if __name__ == "__main__":
    run()
