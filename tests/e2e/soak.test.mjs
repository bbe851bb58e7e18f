// A classroom's session on the CPU path (issue #16): 30 questions in a row on SmolLM2 with
// short budgets, a third of them stopped at a random point, the model loaded again halfway.
// Every run ends in its `done` (the page says "Done." or "Stopped."), and the engine
// worker's memory after the 30th answer is within 5% of its value after the 1st (the
// longest run, so that growth means a leak, not a longer context).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, BASE, foreignRequests } from './harness.mjs';

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
    // The last run's figures (the panel shows the latest RunStats).
    await p.waitForTimeout(500);
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
