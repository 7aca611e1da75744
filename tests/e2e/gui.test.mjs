// The web GUI in a real browser: Debian's chromium driven by playwright-core (no downloaded browser).
// Sends a message, watches the reply stream in, switches model, and saves screenshots to ELM_ARTIFACTS.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';

const base = process.env.ELM_URL;
const artifacts = process.env.ELM_ARTIFACTS || tmpdir();
assert.ok(base, 'ELM_URL is not set: run tests/e2e/run.sh');

let context, page, profile;

before(async () => {
  profile = mkdtempSync(join(tmpdir(), 'elm-e2e-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 800 },
  });
  page = context.pages()[0] || (await context.newPage());
  // Nothing outside the server may be fetched.
  page.on('request', (r) => assert.ok(r.url().startsWith(base), `external request: ${r.url()}`));
});

after(async () => {
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

// Sends `text` and waits for the reply to finish; returns {text, updates}: how many times the reply's
// text changed on screen while it streamed.
async function chat(text) {
  const before = await page.locator('.msg.assistant').count();
  await page.evaluate(() => {
    window.__updates = 0;
    new MutationObserver((records) => {
      // One record per piece of text written into the streaming reply.
      for (const r of records) if (r.target.closest?.('.msg.assistant.streaming .content') || r.target.parentElement?.closest('.msg.assistant.streaming .content')) window.__updates++;
    }).observe(document.querySelector('#messages'), { subtree: true, childList: true, characterData: true });
  });
  await page.fill('#prompt', text);
  await page.press('#prompt', 'Enter');
  const reply = page.locator('.msg.assistant').nth(before);
  await reply.waitFor();
  await page.waitForFunction((n) => {
    const r = document.querySelectorAll('.msg.assistant')[n];
    return r && !r.classList.contains('streaming') && r.querySelector('.meta span');
  }, before, { timeout: 30_000 });
  return { text: await reply.locator('.content').innerText(), updates: await page.evaluate(() => window.__updates), reply };
}

test('chat, streaming, model switch, history', async () => {
  await page.goto(base);
  await page.waitForFunction(() => document.querySelectorAll('#model-select option').length === 2);
  assert.equal(await page.locator('#model-select').inputValue(), 'stories260k');

  // Longer replies so the stream has many pieces.
  await page.click('#toggle-settings');
  await page.fill('#max-tokens', '120');
  await page.fill('#system-prompt', 'You tell short stories for children.');
  await page.click('#close-settings');

  // The reply arrives as a stream of server-sent events and is drawn piece by piece.
  const sse = page.waitForResponse((r) => r.url().endsWith('/v1/chat/completions'));
  const first = await chat('Tell me a story about a dog.');
  const response = await sse;
  assert.equal(response.status(), 200);
  assert.match(response.headers()['content-type'], /text\/event-stream/);
  assert.ok(first.text.trim().length > 0, 'empty reply');
  assert.ok(first.updates > 3, `the reply was drawn ${first.updates} time(s), not streamed`);
  const meta = await first.reply.locator('.meta').innerText();
  assert.match(meta, /tok\/s/);
  assert.match(meta, /TTFT \d+ ms/);
  assert.match(meta, /stories260k/);
  await page.screenshot({ path: join(artifacts, 'chat.png') });

  // Switch to the second model, load it from the picker, and chat with it.
  await page.selectOption('#model-select', 'stories260k-copy');
  await page.waitForFunction(() => document.querySelector('#model-action').textContent === 'Load');
  await page.click('#model-action');
  await page.waitForFunction(() => document.querySelector('#model-state').classList.contains('loaded'), null, { timeout: 30_000 });
  const models = await (await fetch(`${base}/api/models`)).json();
  assert.equal(models.models.find((m) => m.id === 'stories260k-copy').state, 'loaded');
  const second = await chat('And one about a cat?');
  assert.ok(second.text.trim().length > 0);
  assert.match(await second.reply.locator('.meta').innerText(), /stories260k-copy/);
  assert.equal(await page.locator('.msg.user').count(), 2);
  await page.screenshot({ path: join(artifacts, 'gui.png') });

  // Conversations survive a reload (localStorage).
  await page.reload();
  await page.waitForSelector('.conv.active');
  assert.match(await page.locator('.conv.active .title').innerText(), /story about a dog/);
  assert.equal(await page.locator('.msg.assistant').count(), 2);

  // The dark theme with the settings open, for the record.
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.click('#toggle-settings');
  await page.waitForTimeout(300);  // the drawer's slide-in
  await page.screenshot({ path: join(artifacts, 'gui-dark-settings.png') });
  await page.click('#close-settings');

  // Unload from the picker.
  await page.waitForFunction(() => document.querySelector('#model-action').textContent === 'Unload');
  await page.click('#model-action');
  await page.waitForFunction(() => !document.querySelector('#model-state').classList.contains('loaded'));
});
