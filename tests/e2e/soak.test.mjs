// A classroom's session (issue #16). On the CPU path: 30 questions in a row on SmolLM2 with
// short budgets, a third of them stopped at a random point, the model loaded again halfway.
// Every run ends in its `done` (the page says "Done." or "Stopped."), and the engine
// worker's memory after the 30th answer is within 5% of its value after the 1st (the
// longest run, so that growth means a leak, not a longer context). On WebGPU (SwiftShader
// here): 8 questions, one stopped, and the GPU buffers the engine holds after the 8th equal
// those after the 1st, count and bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, BASE, engineReady, foreignRequests } from './harness.mjs';
import { trimLayers } from './gguf-trim.mjs';

const FILE = 'smollm2-135m-instruct-q4_1.gguf';
const QUESTIONS = 30;
const RUN_TIMEOUT = 120_000;

/** A small seeded generator (mulberry32), so a failure replays with the same stops. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function load(page) {
  await page.getByRole('button', { name: `Load ${FILE}` }).click();
  await page.getByTestId('engine-status').filter({ hasText: 'is loaded' }).waitFor({ timeout: RUN_TIMEOUT });
}

test(`soak: ${QUESTIONS} questions, a third stopped, a model reload, no memory growth`, async () => {
  const b = await launch();
  try {
    const p = b.page;
    const random = rng(16);
    await p.goto(`${BASE}/?cpu=1&max_answer=8`);
    await p.getByTestId('engine-status').filter({ hasText: 'Engine ready' }).waitFor({ timeout: 60_000 });
    await load(p);
    const budget = p.getByRole('spinbutton', { name: 'Exact thinking budget' });
    const minThinking = p.getByRole('spinbutton', { name: 'Minimum thinking tokens' });
    const samples = await p.getByTestId('sample-select').locator('option').count() - 1;
    let firstMemory = null;
    let stopped = 0;
    for (let i = 0; i < QUESTIONS; i += 1) {
      if (i === QUESTIONS / 2) await load(p);
      const stop = i % 3 === 1;
      // The first run is the longest any run gets (512 thinking tokens: "Wait" keeps
      // SmolLM2 thinking), so the KV cache the CPU path grows as used is at its largest
      // before the first measurement; the stopped runs have that budget and stop part-way.
      const long = stop || i === 0;
      await p.getByTestId('sample-select').selectOption(String(i % samples));
      await budget.fill(long ? '512' : '16');
      await budget.dispatchEvent('change');
      await minThinking.fill(long ? '512' : '0');
      await p.getByRole('button', { name: 'Ask' }).click();
      if (stop) {
        await p.waitForTimeout(200 + random() * 1500);
        await p.getByRole('button', { name: 'Stop' }).click();
      }
      await p.getByTestId('engine-status').filter({ hasText: /^(Done|Stopped)\.$/ }).waitFor({ timeout: RUN_TIMEOUT });
      if ((await p.getByTestId('engine-status').textContent()) === 'Stopped.') stopped += 1;
      // The run's figures follow its done: wait for this run's, then read the memory.
      await p.getByTestId('run-stats').waitFor({ state: 'attached', timeout: 30_000 });
      if (i === 0) {
        firstMemory = Number(await p.getByTestId('run-stats').getAttribute('data-worker-memory'));
      }
    }
    // The last run's figures (a new question clears the previous run's).
    await p.getByTestId('run-stats').waitFor({ state: 'attached', timeout: 30_000 });
    const lastMemory = Number(await p.getByTestId('run-stats').getAttribute('data-worker-memory'));
    console.log(`worker memory after answer 1: ${firstMemory} bytes, after answer ${QUESTIONS}: ${lastMemory}; ${stopped} of ${QUESTIONS / 3} stops landed mid-run`);
    assert.ok(firstMemory > 0, 'no worker memory figure');
    assert.ok(lastMemory <= firstMemory * 1.05, `the worker grew from ${firstMemory} to ${lastMemory} bytes`);
    assert.ok(stopped >= 1, 'no Stop landed inside a run');
    assert.deepEqual(foreignRequests(b.requests), []);
  } finally {
    await b.close();
  }
});

// SwiftShader runs SmolLM2's 30 blocks at ~5 s a token and prefills ~0.7 tok/s, so the GPU
// session runs the same file cut to its first two blocks (gguf-trim.mjs): same vocabulary,
// template, embeddings and head, ~10 s a question. Its answers are noise; the engine's
// buffers are what is measured, and they do not depend on the depth.
const GPU_QUESTIONS = 8;
const GPU_LAYERS = 2;

test(`soak on WebGPU: ${GPU_QUESTIONS} questions, one stopped, the GPU buffers of the first`, async () => {
  const response = await fetch(`${BASE}/models/${FILE}`);
  assert.ok(response.ok, `${FILE}: HTTP ${response.status}`);
  const model = trimLayers(Buffer.from(await response.arrayBuffer()), GPU_LAYERS);
  const b = await launch();
  try {
    const p = b.page;
    await p.goto(`${BASE}/?gpu=1&max_answer=4`);
    await engineReady(b, p, { text: 'Engine ready on WebGPU' });
    await p.locator('input[type=file][accept=".gguf"]').setInputFiles({
      name: `smollm2-135m-${GPU_LAYERS}-blocks.gguf`,
      mimeType: 'application/octet-stream',
      buffer: model,
    });
    await p.getByTestId('loaded-model').filter({ hasText: 'on the GPU' }).waitFor({ timeout: 120_000 });
    // Eight thinking tokens: the cut model's noise never closes its thinking, so each run
    // thinks to the budget.
    const budget = p.getByRole('spinbutton', { name: 'Exact thinking budget' });
    await budget.fill('8');
    await budget.dispatchEvent('change');
    const held = async () => {
      const stats = p.getByTestId('run-stats');
      return [Number(await stats.getAttribute('data-gpu-buffers')), Number(await stats.getAttribute('data-gpu-bytes'))];
    };
    let first = null;
    let last = null;
    for (let i = 0; i < GPU_QUESTIONS; i += 1) {
      // Questions of one length, so each prefill asks for the same scratch.
      await p.locator('#question').fill(`Is ${10 + i} an even number?`);
      await p.getByRole('button', { name: 'Ask' }).click();
      if (i === 1) {
        // Stopped while it thinks: after its first thinking token.
        await p.getByTestId('reasoning-text').filter({ hasText: /\S/ }).waitFor({ timeout: RUN_TIMEOUT });
        await p.getByRole('button', { name: 'Stop' }).click();
      }
      await p.getByTestId('engine-status').filter({ hasText: /^(Done|Stopped)\.$/ }).waitFor({ timeout: RUN_TIMEOUT });
      const status = await p.getByTestId('engine-status').textContent();
      assert.equal(status, i === 1 ? 'Stopped.' : 'Done.', `question ${i + 1}`);
      // This run's figures (a new question clears the last one's; they follow its done).
      await p.getByTestId('run-stats').waitFor({ state: 'attached', timeout: 30_000 });
      last = await held();
      console.log(`after question ${i + 1}: ${last[0]} GPU buffers, ${last[1]} bytes`);
      first ??= last;
    }
    assert.ok(first[0] > 0 && first[1] > 0, `no GPU buffer figures: ${first}`);
    assert.deepEqual(last, first, `the engine's GPU buffers grew from ${first} to ${last}`);
    assert.deepEqual(foreignRequests(b.requests), []);
  } finally {
    await b.close();
  }
});
