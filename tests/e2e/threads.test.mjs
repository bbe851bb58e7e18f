// The CPU path on threads. `cargo xtask serve` sends COOP/COEP, so the page is
// cross-origin isolated, starts the threaded engine (worker-mt) and computes on one thread
// per core; `?threads=1` keeps it to one. The two answer the same question with the same
// reasoning and answer, token for token: threads split rows, never a sum
// (engine/src/cpu/kernels/pool.rs). dist.test.mjs covers a server without the headers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, BASE, screenshot } from './harness.mjs';

const MODEL = /^Load .*smollm2/i;

/** Loads SmolLM2 on the CPU path with `threads` (or the default), asks the sample question
 * with two "Wait"s, and returns what the page shows. */
async function answer(threads) {
  const b = await launch();
  try {
    const limit = threads ? `&threads=${threads}` : '';
    await b.page.goto(`${BASE}/?cpu=1&budget=16&max_answer=8${limit}`);
    await b.page.getByTestId('engine-status').filter({ hasText: 'Engine ready on the CPU' }).waitFor({ timeout: 60_000 });
    const isolated = await b.page.evaluate(() => crossOriginIsolated);
    const cores = await b.page.evaluate(() => navigator.hardwareConcurrency);
    const shown = b.page.getByTestId('cpu-threads');
    const info = { isolated, cores, threads: Number(await shown.getAttribute('data-threads')), note: await shown.textContent() };
    await b.page.getByRole('button', { name: MODEL }).first().click();
    await b.page.getByTestId('loaded-model').waitFor({ timeout: 120_000 });
    await b.page.locator('select').first().selectOption('2');
    await b.page.getByRole('spinbutton', { name: 'Wait count' }).fill('2');
    await b.page.getByRole('button', { name: 'Ask' }).click();
    await b.page.getByTestId('stats').waitFor({ timeout: 180_000 }).catch(async (e) => {
      throw new Error(`no answer: status="${await b.page.getByTestId('engine-status').textContent()}"\n${b.consoleLines.join('\n')}\n${e}`);
    });
    await screenshot(b.page, `threads-${threads ?? 'default'}-1280`);
    return {
      ...info,
      reasoning: await b.page.getByTestId('reasoning-text').innerHTML(),
      answer: await b.page.getByTestId('answer-text').textContent(),
      errors: b.consoleLines.filter((l) => /\[(error|pageerror)\]/.test(l)),
    };
  } finally {
    await b.close();
  }
}

test('an isolated page runs the CPU path on one thread per core, with the one-thread answer', async () => {
  const many = await answer(null);
  console.log(`default: ${many.threads} threads on ${many.cores} cores (${many.note.trim()})`);
  assert.equal(many.isolated, true, 'serve sends COOP/COEP: the page must be cross-origin isolated');
  assert.equal(many.threads, Math.min(many.cores, 16), many.note);
  assert.ok(many.threads >= 2, `this test needs a machine of 2 cores or more (${many.cores})`);
  assert.deepEqual(many.errors, []);

  const one = await answer(1);
  assert.equal(one.threads, 1);
  assert.match(one.note, /\?threads=1/);
  assert.ok(one.answer.trim().length > 0, 'no answer');
  assert.equal(many.reasoning, one.reasoning, 'the reasoning differs between thread counts');
  assert.equal(many.answer, one.answer, 'the answer differs between thread counts');
});
