// Load test of `elm serve` (loopback only, bounded): N concurrent clients stream chat completions for
// a fixed time; reports requests, failures, generated tokens and aggregate tokens/s as JSON.
//   node bench/serve_load.mjs --url http://127.0.0.1:PORT --clients 64 --seconds 60 [--max-tokens 128]
// A request fails when its status is not 200, the stream breaks, or it does not end with [DONE].
import { parseArgs } from 'node:util';

const { values: a } = parseArgs({
  options: {
    url: { type: 'string' },
    clients: { type: 'string', default: '64' },
    seconds: { type: 'string', default: '60' },
    'max-tokens': { type: 'string', default: '128' },
    model: { type: 'string', default: '' },
  },
});
const url = new URL(a.url);
if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) throw new Error('loopback addresses only');
const clients = Number(a.clients), seconds = Number(a.seconds), maxTokens = Number(a['max-tokens']);
if (!(clients >= 1 && clients <= 1024 && seconds > 0 && seconds <= 600)) throw new Error('bad --clients/--seconds');

const prompts = ['Tell me a story about a dog.', 'Once upon a time there was a little girl.', 'Write about a big red ball.',
  'What did Tom find in the garden?'];
const stats = { requests: 0, failed: 0, tokens: 0, errors: {}, ttft_ms: [] };
const deadline = Date.now() + seconds * 1000;

async function one(i) {
  const started = Date.now();
  const res = await fetch(`${url.origin}/v1/chat/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      model: a.model || undefined, messages: [{ role: 'user', content: prompts[i % prompts.length] }],
      max_tokens: maxTokens, stream: true, stream_options: { include_usage: true },
    }),
  });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
  const decoder = new TextDecoder();
  let buffer = '', done = false, usage = null, first = 0;
  for await (const chunk of res.body) {
    buffer += decoder.decode(chunk, { stream: true });
    let at;
    while ((at = buffer.indexOf('\n\n')) >= 0) {
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + 2);
      if (!line.startsWith('data: ')) continue;
      const data = line.slice(6);
      if (data === '[DONE]') { done = true; continue; }
      const ev = JSON.parse(data);
      if (ev.error) throw new Error(ev.error.message);
      if (ev.usage) usage = ev.usage;
      if (!first && ev.choices?.[0]?.delta?.content) first = Date.now();
    }
  }
  if (!done || !usage) throw new Error('stream ended early');
  stats.tokens += usage.completion_tokens;
  if (first) stats.ttft_ms.push(first - started);
}

async function client(i) {
  while (Date.now() < deadline) {
    stats.requests++;
    try {
      await one(i);
    } catch (e) {
      stats.failed++;
      stats.errors[e.message] = (stats.errors[e.message] || 0) + 1;
    }
  }
}

const t0 = Date.now();
await Promise.all(Array.from({ length: clients }, (_, i) => client(i)));
const elapsed = (Date.now() - t0) / 1000;
stats.ttft_ms.sort((x, y) => x - y);
const pct = (p) => stats.ttft_ms.length ? stats.ttft_ms[Math.min(stats.ttft_ms.length - 1, Math.floor(p * stats.ttft_ms.length))] : null;
console.log(JSON.stringify({
  clients, seconds: elapsed, requests: stats.requests, failed: stats.failed, errors: stats.errors,
  completion_tokens: stats.tokens, tokens_per_s: stats.tokens / elapsed, ttft_ms_p50: pct(0.5), ttft_ms_p95: pct(0.95),
}));
