// The site `cargo xtask dist` writes, served by a plain static server that is not ours
// (npm's http-server, with its defaults: it answers Range requests and knows .wasm), answers
// a question in Chromium on the CPU path with the one model the folder was given, on one
// thread (the server sends no cross-origin isolation headers).
// `cargo xtask test` writes the folder from its own build and sets M1_DIST_DIR; by hand:
//   cargo xtask dist --no-build --out /tmp/site --model .cache/models/smollm2-135m-instruct-q4_1.gguf
//   M1_DIST_DIR=/tmp/site node --test e2e/dist.test.mjs
// M1_DIST_BASE=http://HOST:PORT tests a server already serving such a folder instead
// (nginx with the folder's nginx.conf, say); M1_DIST_DIR is then only the switch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { launch, screenshot } from './harness.mjs';

const DIR = process.env.M1_DIST_DIR;
const MODEL = process.env.M1_DIST_MODEL ?? 'smollm2-135m-instruct-q4_1.gguf';
const HTTP_SERVER = fileURLToPath(new URL('../node_modules/http-server/bin/http-server', import.meta.url));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer().once('error', reject).listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function startStaticServer(dir) {
  const port = await freePort();
  const proc = spawn(process.execPath, ['--no-deprecation', HTTP_SERVER, dir, '-a', '127.0.0.1', '-p', String(port), '-s'], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    if (await fetch(`${base}/`).then((r) => r.ok, () => false)) return { proc, base };
    await sleep(100);
  }
  proc.kill();
  throw new Error(`http-server did not answer on ${base}`);
}

test('a dist folder on a plain static server answers a question', {
  skip: DIR ? false : 'M1_DIST_DIR is unset (cargo xtask test writes the folder and sets it)',
}, async () => {
  const { proc, base } = process.env.M1_DIST_BASE
    ? { proc: null, base: process.env.M1_DIST_BASE }
    : await startStaticServer(DIR);
  const b = await launch();
  try {
    // The server is a stranger's: check what the engine relies on before the page does.
    const range = await fetch(`${base}/models/${MODEL}`, { headers: { Range: 'bytes=0-3' } });
    assert.equal(range.status, 206);
    assert.equal(await range.text(), 'GGUF');
    const data = await (await fetch(`${base}/data/pubmedqa-test.jsonl`)).text();
    assert.equal(data.trim().split('\n').length, 500, 'the PubMedQA set is not in the folder');

    await b.page.goto(`${base}/?cpu=1&budget=16&max_answer=8`);
    await b.page.getByTestId('engine-status').filter({ hasText: 'Engine ready' }).waitFor({ timeout: 60_000 });
    // http-server sends no COOP/COEP: the page is not isolated, so it runs the
    // single-threaded engine and says why (threads.test.mjs is the isolated case).
    if (!process.env.M1_DIST_BASE) {
      assert.equal(await b.page.evaluate(() => crossOriginIsolated), false);
      const threads = b.page.getByTestId('cpu-threads');
      assert.equal(await threads.getAttribute('data-threads'), '1');
      assert.match(await threads.textContent(), /not cross-origin isolated/);
    }
    // The folder's list is the model it was given: models.json's entries whose files were
    // not copied (the m1 slot, the demo model) are not offered.
    const load = b.page.getByRole('button', { name: `Load ${MODEL}` });
    await load.waitFor({ timeout: 30_000 });
    assert.deepEqual(await b.page.locator('.model-list button').allTextContents(), [`Load ${MODEL}`]);
    await load.click();
    await b.page.getByTestId('loaded-model').waitFor({ timeout: 120_000 }).catch(async (e) => {
      throw new Error(`no model: status="${await b.page.getByTestId('engine-status').textContent()}"\n${b.consoleLines.join('\n')}\n${e}`);
    });

    // SmolLM2 ends its thinking at once and then has nothing to say: two "Wait"s make it
    // think, and answer (as in parity.test.mjs).
    await b.page.locator('select').first().selectOption('2');
    await b.page.getByRole('spinbutton', { name: 'Wait count' }).fill('2');
    await b.page.getByRole('button', { name: 'Ask' }).click();
    await b.page.getByTestId('stats').waitFor({ timeout: 120_000 });
    const answer = (await b.page.getByTestId('answer-text').textContent()).trim();
    const choice = await b.page.getByTestId('choice').textContent();
    console.log(`answer: ${JSON.stringify(answer)}; ${choice}`);
    assert.ok(answer.length > 0, 'no answer text');
    assert.match(choice, /Chosen option|No option/);
    await screenshot(b.page, 'dist-static-server-1280');
    const foreign = b.requests.filter((u) => !u.startsWith(base) && !u.startsWith('blob:') && !u.startsWith('data:'));
    assert.deepEqual(foreign, []);
  } finally {
    await b.close();
    proc?.kill();
  }
});
