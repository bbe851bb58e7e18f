// A lost GPU device: the browser's GPU process crashes under a model loaded on WebGPU.
// The page says so and offers to load the model again, which opens a new GPU device, reads
// the cached copy (no network) and answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, BASE, engineReady, screenshot, stallReport } from './harness.mjs';

const FILE = 'smollm2-135m-instruct-q4_1.gguf';
const LOAD_TIMEOUT = 180_000;
// SwiftShader prefills ~0.3 tok/s: the 50-token question takes minutes (as parity.test.mjs).
const RUN_TIMEOUT = 420_000;

test('a lost GPU device is reported and the model reloads from the cache', async () => {
  const b = await launch();
  try {
    const p = b.page;
    // ?gpu=1: the model must be on WebGPU (SwiftShader here) for its device to be lost.
    await p.goto(`${BASE}/?gpu=1&budget=128&max_answer=4`);
    await engineReady(b, p, { text: 'Engine ready on WebGPU' });
    const t0 = Date.now();
    const lap = (what) => console.log(`${what}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    // The list is fetched beside the engine's start; say where the page stood if it never came.
    await p.getByRole('button', { name: `Load ${FILE}` }).click().catch(async (e) => {
      const status = await p.getByTestId('engine-status').textContent({ timeout: 1000 }).catch(() => '?');
      throw new Error(`no Load button: status "${status}"\n${await stallReport(b, b.page)}\n${b.consoleLines.join('\n')}\n${e.message}`);
    });
    await p.getByTestId('loaded-model').waitFor({ timeout: LOAD_TIMEOUT });
    lap('loaded on WebGPU');

    const cdp = await b.context.newCDPSession(p);
    await cdp.send('Browser.crashGpuProcess').catch(() => {});
    await p.getByTestId('device-lost').waitFor({ timeout: 60_000 });
    lap('device lost reported');
    assert.match(await p.getByTestId('error').textContent(), /GPU device was lost/);
    assert.equal(await p.getByTestId('loaded-model').count(), 0, 'the lost model is still shown as loaded');
    assert.ok(await p.getByRole('button', { name: 'Ask' }).isDisabled(), 'Ask stays enabled without a model');
    await screenshot(p, 'device-lost-1280');
    await p.setViewportSize({ width: 390, height: 844 });
    await screenshot(p, 'device-lost-390');
    await p.setViewportSize({ width: 1280, height: 900 });

    const before = b.requests.length;
    await p.getByRole('button', { name: 'Reload the model' }).click();
    await p.getByTestId('loaded-model').waitFor({ timeout: LOAD_TIMEOUT });
    lap('reloaded from the cache');
    assert.deepEqual(b.requests.slice(before).filter((u) => u.endsWith('.gguf')), [], 'the reload downloaded the model again');
    assert.equal(await p.getByTestId('device-lost').count(), 0);
    // On a new GPU device, not quietly on the CPU.
    assert.match(await p.getByTestId('loaded-model').textContent(), /on the GPU: /);
    // The new device computes: a short question (SwiftShader prefills slowly).
    await p.locator('#question').fill('Is water wet?');
    await p.getByRole('button', { name: 'Ask' }).click();
    await p.getByTestId('stats').waitFor({ timeout: RUN_TIMEOUT });
    lap('answered');
  } finally {
    await b.close();
  }
});
