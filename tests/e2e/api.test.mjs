// The official openai client against `elm serve` (started by run.sh; ELM_URL is its address).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import OpenAI from 'openai';

const base = process.env.ELM_URL;
assert.ok(base, 'ELM_URL is not set: run tests/e2e/run.sh');
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'not-needed', maxRetries: 0, timeout: 60_000 });
const MODEL = 'stories260k';
const messages = [
  { role: 'system', content: 'You tell short stories.' },
  { role: 'user', content: 'Tell me a story about a cat.' },
];

test('lists the models of the directory', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids.sort(), ['stories260k', 'stories260k-copy']);
});

test('non-streamed and streamed chat completions agree', async () => {
  const params = { model: MODEL, messages, max_tokens: 40, temperature: 0.8, seed: 11 };
  const whole = await client.chat.completions.create(params);
  assert.equal(whole.object, 'chat.completion');
  assert.equal(whole.model, MODEL);
  const choice = whole.choices[0];
  assert.equal(choice.message.role, 'assistant');
  assert.ok(choice.message.content.length > 0, 'empty reply');
  assert.ok(['stop', 'length'].includes(choice.finish_reason));
  assert.ok(whole.usage.prompt_tokens > 0);
  assert.ok(whole.usage.completion_tokens > 0 && whole.usage.completion_tokens <= 40);
  assert.equal(whole.usage.total_tokens, whole.usage.prompt_tokens + whole.usage.completion_tokens);
  assert.ok(whole.timings.tokens_per_s > 0 && whole.timings.ttft_ms > 0, JSON.stringify(whole.timings));

  // The same request streamed: with the same seed the pieces add up to the same text.
  const stream = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let pieces = 0;
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    const c = chunk.choices[0];
    if (!c) continue;
    if (c.delta?.content) {
      text += c.delta.content;
      pieces++;
    }
    if (c.finish_reason) finish = c.finish_reason;
  }
  assert.ok(pieces > 1, `the reply came in ${pieces} piece(s), not streamed`);
  assert.equal(text, choice.message.content);
  assert.equal(finish, choice.finish_reason);
  assert.deepEqual(usage, whole.usage);
});

test('text completions', async () => {
  const r = await client.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 12, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.ok(r.choices[0].text.length > 0);
  assert.equal(r.usage.completion_tokens, 12);
});

test('errors reach the client as OpenAI errors', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model', messages }),
    (e) => e instanceof OpenAI.NotFoundError && /no-such-model/.test(e.message));
  await assert.rejects(
    client.chat.completions.create({ model: MODEL, messages: [] }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'messages');
  await assert.rejects(
    client.chat.completions.create({ model: MODEL, messages, temperature: 'hot' }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'temperature');
  const long = 'once upon a time '.repeat(400);  // far beyond the 512-token context
  await assert.rejects(
    client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: long }] }),
    (e) => e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded');
  // Still serving.
  const ok = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 5 });
  assert.equal(ok.usage.completion_tokens, 5);
});
