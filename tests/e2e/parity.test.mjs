// The engine in the page equals the engine on the command line: the worker loads SmolLM2
// from the served folder, answers on WebGPU (SwiftShader here, forced with ?gpu=1) with the
// same question, budget and "Wait" count as the native `m1 ask` run recorded in
// cli/tests/fixtures/browser_parity.json (which cli/tests/cli.rs checks against a
// fresh native GPU run), and must show the same reasoning, answer and chosen option.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { launch, BASE, SIZE_TEXT, bytesOf, screenshot } from './harness.mjs';

const FIXTURE = JSON.parse(readFileSync(
  new URL('../../cli/tests/fixtures/browser_parity.json', import.meta.url), 'utf8'));

// SwiftShader: ~1 minute to prefill the 91-token prompt, a few seconds per token.
const RUN_TIMEOUT = 420_000;

/** The reasoning panel as the fixture spells it: text pieces, Wait markers, the end marker. */
async function reasoningPieces(page) {
  return page.getByTestId('reasoning-text').evaluate((el) => [...el.children].map((c) => {
    if (c.matches('mark.wait')) return `wait:${c.textContent.match(/#(\d+)/)[1]}`;
    if (c.matches('mark.cut')) return 'end:true';
    if (c.matches('mark.end')) return 'end:false';
    return `text:${c.textContent}`;
  }));
}

/** Adjacent text pieces merged, as a stream split differently must still compare equal. */
function merged(pieces) {
  const out = [];
  for (const p of pieces) {
    if (p.startsWith('text:') && out.length && out[out.length - 1].startsWith('text:')) {
      out[out.length - 1] += p.slice(5);
    } else {
      out.push(p);
    }
  }
  return out;
}

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const words = (s) => s.replace(/\s+/g, ' ').trim();

test('WebGPU in the page gives the native run\'s reasoning, answer and choice', async () => {
  const b = await launch();
  try {
    await b.page.goto(`${BASE}/?gpu=1&budget=${FIXTURE.budget}&max_answer=${FIXTURE.max_answer}`);
    await b.page.getByTestId('engine-status').filter({ hasText: 'Engine ready on WebGPU' }).waitFor({ timeout: 60_000 });
    await b.page.getByRole('button', { name: new RegExp(`^Load .*${escape(FIXTURE.model.replace(/\.gguf$/, ''))}`, 'i') })
      .first().click();
    await b.page.getByTestId('loaded-model').waitFor({ timeout: 120_000 });
    // The weights stay quantized on the GPU: at most 1.02 x the file's bytes (f32 would be ~6x).
    const loaded = await b.page.getByTestId('loaded-model').textContent();
    const fileMb = await b.page.evaluate(async (file) => {
      const list = await (await fetch('models/index.json')).json();
      return list.find((m) => m.file === file).size / 1e6;
    }, FIXTURE.model);
    const weightsMb = bytesOf(loaded.match(new RegExp(`on the GPU: (${SIZE_TEXT}) of weights`))?.[1]) / 1e6;
    console.log(`weights on the GPU: ${weightsMb} MB for a ${fileMb.toFixed(1)} MB file`);
    assert.ok(weightsMb >= 0.9 * fileMb && weightsMb <= 1.02 * fileMb, loaded);
    // The weights stream through the worker in bounded chunks: the load grows its memory by
    // the tokenizer and little more, never by the file (64 MiB is the engine's bound).
    const added = bytesOf(loaded.match(new RegExp(`this load added (${SIZE_TEXT})`))?.[1]) / 1e6;
    console.log(`worker memory added by the load: ${added} MB`);
    assert.ok(added < 67.1, loaded);
    await b.page.locator('select').first().selectOption(String(FIXTURE.sample));
    await b.page.getByRole('spinbutton', { name: 'Wait count' }).fill(String(FIXTURE.wait));
    await b.page.getByRole('button', { name: 'Ask' }).click();
    await b.page.getByTestId('stats').waitFor({ timeout: RUN_TIMEOUT }).catch(async (e) => {
      throw new Error(`no answer: status="${await b.page.getByTestId('engine-status').textContent()}"\n${b.consoleLines.join('\n')}\n${e}`);
    });
    await screenshot(b.page, 'parity-webgpu-1280');

    assert.deepEqual(merged(await reasoningPieces(b.page)), merged(FIXTURE.reasoning));
    assert.equal(words(await b.page.getByTestId('answer-text').textContent()), words(FIXTURE.answer));
    assert.equal((await b.page.getByTestId('chosen-option').textContent()).trim(), FIXTURE.choice);
  } finally {
    await b.close();
  }
});
