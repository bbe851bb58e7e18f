// The app as a visitor uses it: load a small model from the served folder, ask a sample
// question with a small thinking budget, watch reasoning and answer stream, stop, reload
// offline and answer from the cached model; bad files give clear errors; kiosk mode.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch, BASE, foreignRequests, screenshot } from './harness.mjs';

// The default demo model: it thinks under m1's prompt (SmolLM2-135M ends its thinking at once).
const MODEL = 'Qwen2.5-Coder-0.5B-Instruct (Q4_K_M)';
const LOAD_TIMEOUT = 240_000;
const RUN_TIMEOUT = 300_000;

async function loadModel(page) {
  await page.getByRole('button', { name: `Load ${MODEL}` }).click();
  await page.getByTestId('loaded-model').waitFor({ timeout: LOAD_TIMEOUT });
}

async function askSample(page, index) {
  await page.locator('select').first().selectOption(String(index));
  await page.getByRole('button', { name: 'Ask' }).click();
}

test('load, ask with a budget, stream, stop, ask again, then offline from the cache', async () => {
  const b = await launch();
  try {
    await b.page.goto(`${BASE}/?budget=16&max_answer=12`);
    await b.page.getByTestId('engine-status').filter({ hasText: 'Engine ready' }).waitFor({ timeout: 60_000 });
    await loadModel(b.page);
    assert.match(await b.page.getByTestId('m1-badge').textContent(), /not m1/);

    // Ask: the counter stops at the budget, the forced prefix shows, an answer arrives.
    const before = b.requests.length;
    await askSample(b.page, 2);
    await b.page.getByTestId('stats').waitFor({ timeout: RUN_TIMEOUT });
    assert.equal((await b.page.getByTestId('think-counter').textContent()).trim(), '16 / 16');
    assert.equal(await b.page.getByTestId('budget-marker').count(), 1);
    assert.equal((await b.page.getByTestId('answer-prefix').textContent()).trim(), 'Final Answer:');
    assert.ok((await b.page.getByTestId('reasoning-text').textContent()).length > 0, 'no reasoning text');
    assert.match(await b.page.getByTestId('choice').textContent(), /Chosen option|No option/);
    assert.match(await b.page.getByTestId('verdict').textContent(), /correct answer: C/);
    assert.deepEqual(b.requests.slice(before), [], 'a request left the page while answering');
    await screenshot(b.page, 'app-answer-1280');
    await b.page.setViewportSize({ width: 390, height: 844 });
    await screenshot(b.page, 'app-answer-390');
    await b.page.setViewportSize({ width: 1280, height: 900 });

    // Stop mid-stream: a large budget, stopped after a few tokens.
    await b.page.getByRole('button', { name: '4096' }).click();
    await askSample(b.page, 0);
    await b.page.getByTestId('think-counter').filter({ hasText: /^([3-9]|\d\d+) \/ 4096$/ }).waitFor({ timeout: RUN_TIMEOUT });
    await b.page.getByRole('button', { name: 'Stop' }).click();
    await b.page.getByTestId('engine-status').filter({ hasText: 'Stopped.' }).waitFor({ timeout: 60_000 });
    const stoppedAt = parseInt(await b.page.getByTestId('think-counter').textContent(), 10);
    assert.ok(stoppedAt < 4096, `did not stop: ${stoppedAt}`);

    // Change the budget and ask again: the engine is ready for the next question.
    await b.page.getByRole('button', { name: '128' }).click();
    await b.page.locator('#budget').fill('128');
    await askSample(b.page, 3);
    await b.page.getByTestId('think-counter').filter({ hasText: /\/ 128$/ }).waitFor({ timeout: 30_000 });
    await b.page.getByRole('button', { name: 'Stop' }).click();
    await b.page.getByTestId('engine-status').filter({ hasText: /Stopped\.|Done\./ }).waitFor({ timeout: 60_000 });
    assert.deepEqual(foreignRequests(b.requests), []);

    // Offline: the shell comes from the service worker, the model from OPFS.
    await b.context.setOffline(true);
    await b.page.reload();
    await b.page.getByTestId('engine-status').filter({ hasText: 'Engine ready' }).waitFor({ timeout: 60_000 });
    await b.page.getByText('Cached models (work offline)').click();
    const cached = b.page.getByTestId('cache-list').getByRole('button', { name: 'Load', exact: true });
    await cached.first().waitFor({ timeout: 30_000 });
    await cached.first().click();
    await b.page.getByTestId('loaded-model').waitFor({ timeout: LOAD_TIMEOUT });
    await b.page.locator('#budget').evaluate((el) => { el.value = '128'; el.dispatchEvent(new Event('input', { bubbles: true })); });
    await askSample(b.page, 2);
    await b.page.getByTestId('think-counter').filter({ hasText: /^([1-9]\d*) \/ 128$/ }).waitFor({ timeout: RUN_TIMEOUT });
    await b.page.getByRole('button', { name: 'Stop' }).click();
    await b.page.getByTestId('stats').waitFor({ timeout: RUN_TIMEOUT });
  } finally {
    await b.close();
  }
});

test('a non-GGUF file and a corrupt GGUF give clear errors', async () => {
  const b = await launch();
  try {
    await b.page.goto(BASE);
    await b.page.getByTestId('engine-status').filter({ hasText: 'Engine ready' }).waitFor({ timeout: 60_000 });
    const input = b.page.locator('input[type=file]');
    await input.setInputFiles({ name: 'notes.gguf', mimeType: 'application/octet-stream', buffer: Buffer.from('hello, this is not a model'.repeat(10)) });
    await b.page.getByTestId('error').filter({ hasText: /not a GGUF file/ }).waitFor({ timeout: 30_000 });
    // A GGUF header that claims a billion tensors: rejected by the bounds checks, no crash.
    const bad = Buffer.alloc(64);
    bad.write('GGUF', 0, 'latin1');
    bad.writeUInt32LE(3, 4);
    bad.writeBigUInt64LE(1_000_000_000n, 8);
    bad.writeBigUInt64LE(0n, 16);
    await input.setInputFiles({ name: 'corrupt.gguf', mimeType: 'application/octet-stream', buffer: bad });
    await b.page.getByTestId('error').filter({ hasText: /not a usable GGUF model/ }).waitFor({ timeout: 30_000 });
    await b.page.getByTestId('engine-status').filter({ hasText: /went wrong/ }).waitFor({ timeout: 5_000 });
  } finally {
    await b.close();
  }
});

test('kiosk mode renders large, without model management, and resets when idle', async () => {
  const b = await launch();
  try {
    await b.page.goto(`${BASE}/?kiosk=1&budget=256&idle=3`);
    await b.page.getByTestId('engine-status').filter({ hasText: 'Engine ready' }).waitFor({ timeout: 60_000 });
    assert.equal(await b.page.locator('body.kiosk').count(), 1);
    assert.equal(await b.page.getByText('Cached models (work offline)').count(), 0);
    assert.equal((await b.page.getByTestId('budget-value').textContent()).trim(), '256 tokens');
    // Before any run the counter shows the budget that Ask would use.
    assert.equal((await b.page.getByTestId('think-counter').textContent()).trim(), '0 / 256');
    // What a visitor can change on the Ask form, as the kiosk's start screen shows it.
    const p = b.page;
    const form = async () => ({
      sample: await p.getByTestId('sample-select').inputValue(),
      question: await p.locator('#question').inputValue(),
      budget: (await p.getByTestId('budget-value').textContent()).trim(),
      waits: await p.getByLabel('Wait count', { exact: true }).inputValue(),
      minThinking: await p.getByLabel('Minimum thinking tokens').inputValue(),
      temperature: await p.getByLabel('Temperature').inputValue(),
      topP: await p.getByLabel('Top-p').inputValue(),
      seed: await p.getByLabel('Seed').inputValue(),
      advancedOpen: await p.locator('details.advanced').evaluate((d) => d.open),
    });
    const start = await form();
    assert.deepEqual(start, {
      sample: '', question: '', budget: '256 tokens', waits: '0', minThinking: '0',
      temperature: start.temperature, topP: start.topP, seed: start.seed, advancedOpen: false,
    });
    await p.getByTestId('sample-select').selectOption('0');
    await p.locator('#budget').fill('1024');
    await p.getByLabel('Wait count', { exact: true }).fill('3');
    await p.getByLabel('Minimum thinking tokens').fill('128');
    await p.locator('details.advanced > summary').click();
    await p.getByLabel('Temperature').fill('0.7');
    await p.getByLabel('Top-p').fill('0.9');
    await p.getByLabel('Seed').fill('7');
    const changed = await form();
    for (const key of Object.keys(start)) {
      assert.notEqual(changed[key], start[key], `the visitor's ${key} did not take`);
    }
    await screenshot(p, 'kiosk-1280');
    // No input for 3 s: back to the start screen, the next visitor sees none of the last
    // one's question or settings.
    await p.waitForFunction(() => document.querySelector('#question')?.value === '', null, { timeout: 15_000 });
    assert.deepEqual(await form(), start);
  } finally {
    await b.close();
  }
});

test('the m1 badge comes from the model file itself, not from its name', async () => {
  // SmolLM2 picked under the real m1 file's name: loads, and is still called "not m1".
  const dir = mkdtempSync(join(tmpdir(), 'm1-named-'));
  const named = join(dir, 'm1-7b-23k-q4_k_m.gguf');
  symlinkSync(fileURLToPath(new URL('../../.cache/models/smollm2-135m-instruct-q4_1.gguf', import.meta.url)), named);
  const b = await launch();
  try {
    await b.page.goto(BASE);
    await b.page.getByTestId('engine-status').filter({ hasText: 'Engine ready' }).waitFor({ timeout: 60_000 });
    await b.page.locator('input[type=file]').setInputFiles(named);
    await b.page.getByTestId('loaded-model').waitFor({ timeout: LOAD_TIMEOUT });
    assert.match(await b.page.getByTestId('loaded-model').textContent(), /m1-7b-23k-q4_k_m\.gguf/);
    assert.match(await b.page.getByTestId('m1-badge').textContent(), /not m1/);
  } finally {
    await b.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
