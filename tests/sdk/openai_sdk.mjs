// Drives gemini-key-manager with the official OpenAI JavaScript SDK, the way
// a new user's tool would. Usage: node openai_sdk.mjs BASE_URL TOKEN
// Prints one line per check and exits non-zero on the first failure.
import OpenAI from "openai";
import assert from "node:assert/strict";

const [baseURL, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 20000 });
const model = "gemini-2.5-flash";

async function check(name, fn) {
  await fn();
  console.log("ok " + name);
}

await check("chat", async () => {
  const r = await client.chat.completions.create({
    model,
    messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "hello sdk" }],
    temperature: 0.3,
  });
  assert.equal(r.object, "chat.completion");
  assert.match(r.choices[0].message.content, /hello sdk/);
  assert.equal(r.choices[0].finish_reason, "stop");
  assert.ok(r.usage.total_tokens > 0);
});

await check("stream", async () => {
  const stream = await client.chat.completions.create({
    model,
    messages: [{ role: "user", content: "one two three four five" }],
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "", chunks = 0, finish = null, usage = null;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    const c = chunk.choices[0];
    if (!c) continue;
    text += c.delta.content ?? "";
    if (c.finish_reason) finish = c.finish_reason;
  }
  assert.ok(chunks >= 3, "several chunks");
  assert.match(text, /one two three four five/);
  assert.equal(finish, "stop");
  assert.ok(usage && usage.total_tokens > 0);
});

await check("tools", async () => {
  const tools = [{
    type: "function",
    function: {
      name: "get_weather",
      description: "Weather for a city",
      parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    },
  }];
  const messages = [{ role: "user", content: "please call tool for Oslo" }];
  const r1 = await client.chat.completions.create({ model: "gemini-3-pro-preview", messages, tools });
  const msg = r1.choices[0].message;
  assert.equal(r1.choices[0].finish_reason, "tool_calls");
  assert.equal(msg.tool_calls[0].function.name, "get_weather");
  messages.push(msg, { role: "tool", tool_call_id: msg.tool_calls[0].id, content: "{\"temp\": 3}" });
  const r2 = await client.chat.completions.create({ model: "gemini-3-pro-preview", messages, tools });
  assert.equal(r2.choices[0].message.role, "assistant");
  assert.match(r2.choices[0].message.content, /functionResponse|get_weather|temp/);
});

await check("models", async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.ok(ids.includes(model), ids.join(","));
  const one = await client.models.retrieve(model);
  assert.equal(one.id, model);
});

await check("embeddings", async () => {
  const r = await client.embeddings.create({ model: "gemini-embedding-001", input: ["a", "b"], dimensions: 8 });
  assert.equal(r.data.length, 2);
  assert.equal(r.data[1].index, 1);
  assert.equal(r.data[0].embedding.length, 8);
  const b = await client.embeddings.create({ model: "gemini-embedding-001", input: "c" });
  assert.ok(Array.isArray(b.data[0].embedding) && b.data[0].embedding.length > 0);
});

await check("errors", async () => {
  const bad = new OpenAI({ baseURL, apiKey: "wrong-token", maxRetries: 0 });
  await assert.rejects(
    bad.chat.completions.create({ model, messages: [{ role: "user", content: "x" }] }),
    (e) => e.status === 401 && e.error?.code === "invalid_api_key");
});
console.log("all ok");
