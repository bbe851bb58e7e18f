// Downloads that meet a bad network or a full disk: a response that breaks off, and requests
// that fail, are retried at the same offset; a connection that stays down ends in a clear
// message whose Retry resumes where the download stopped (the bytes already stored come
// from OPFS); a model that cannot fit in the site's storage quota is refused before its
// first byte, and one that fills the store stops the download at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createServer } from 'node:http';
import { launch, BASE, SIZE_TEXT, bytesOf, engineReady, screenshot, stallReport } from './harness.mjs';

const FILE = 'smollm2-135m-instruct-q4_1.gguf';
const PATH = new URL(`../../.cache/models/${FILE}`, import.meta.url);
const SIZE = 98_362_432;
const SHA256 = readFileSync(new URL(`../../.cache/models/${FILE}.sha256`, import.meta.url), 'utf8').trim().split(/\s+/)[0];
const LOAD_TIMEOUT = 120_000;

/** Routes the model's requests through `decide({start, end})`: `'drop'` fails a request
 * before its first byte; a byte offset breaks its response off there (the connection lost
 * mid-way: the body ends early); anything else lets it through. The engine reads the blocks
 * that follow one another from one response, so a request may span many blocks. Returns
 * the requests seen. */
async function routeModel(context, decide) {
  const ranges = [];
  let file = null;
  await context.route(`**/models/${FILE}`, async (route) => {
    const m = /bytes=(\d+)-(\d+)/.exec(route.request().headers().range ?? '');
    const r = m ? { start: Number(m[1]), end: Math.min(Number(m[2]) + 1, SIZE) } : { start: 0, end: SIZE, whole: true };
    const how = decide(r);
    const failed = how === 'drop' || typeof how === 'number';
    ranges.push({ ...r, failed });
    if (how === 'drop') return route.abort('connectionreset');
    if (typeof how !== 'number') return route.continue();
    file ??= readFileSync(PATH);
    return route.fulfill({
      status: 206,
      headers: { 'Content-Range': `bytes ${r.start}-${r.end - 1}/${SIZE}`, 'Content-Type': 'application/octet-stream' },
      body: file.subarray(r.start, how),
    });
  });
  return ranges;
}

/** The page with its engine started and the test model listed (the list is fetched beside
 * the engine's start; on a busy machine it can come second). */
async function ready(b) {
  await b.page.goto(BASE);
  await engineReady(b, b.page);
  await b.page.getByRole('button', { name: `Load ${FILE}` }).waitFor({ timeout: 60_000 }).catch(async (e) => {
    throw new Error(`the model list did not come: ${e.message}\n${await stallReport(b, b.page)}\nconsole:\n${b.consoleLines.join('\n')}`);
  });
}

/** The OPFS cache's record of a completed, verified copy. */
async function cachedEntry(page) {
  return page.evaluate(async (file) => {
    const root = await navigator.storage.getDirectory();
    const dir = await root.getDirectoryHandle('models');
    const index = JSON.parse(await (await (await dir.getFileHandle('index.json')).getFile()).text());
    const entry = index.entries.find((e) => e.file === file);
    const copy = entry && await (await dir.getFileHandle(file)).getFile();
    return entry && { ...entry, bytes: copy.size };
  }, FILE);
}

const isProbe = (r) => r.start === 0 && r.end === 1;

test('a response that breaks off and requests that fail are retried at the same offset, and the cached copy verifies', async () => {
  const b = await launch();
  try {
    await ready(b);
    // The first request past the file's start breaks off 3 MiB in, the block it was reading
    // is asked for twice more and fails, and its 4th try gets it. The blocks after it are
    // read from a new request meanwhile.
    let target = null;
    let tried = 0;
    const ranges = await routeModel(b.context, (r) => {
      if (!target && r.start > 0) target = r;
      if (r.start !== target?.start || tried === 3) return false;
      tried += 1;
      return tried === 1 ? r.start + (3 << 20) : 'drop';
    });
    const t0 = Date.now();
    await b.page.getByRole('button', { name: `Load ${FILE}` }).click();
    await b.page.getByTestId('loaded-model').or(b.page.getByTestId('error')).waitFor({ timeout: LOAD_TIMEOUT });
    assert.equal(await b.page.getByTestId('error').count(), 0, `the load failed: ${await b.page.getByTestId('error').allTextContents()}`);
    console.log(`loaded through a broken response and 2 dropped requests in ${((Date.now() - t0) / 1000).toFixed(1)} s, ${ranges.length} requests`);
    assert.ok(target, `the worker's fetches were not routed: ${JSON.stringify(ranges)}`);
    assert.ok(ranges.every((r) => !r.whole), 'a request without a Range header');
    assert.equal(ranges.filter((r) => r.failed).length, 3);
    const tries = ranges.filter((r) => r.start === target.start);
    assert.deepEqual(tries.map((r) => r.failed), [true, true, true, false],
      `the broken-off block was not asked for again until it came: ${JSON.stringify(tries)}`);
    // A retry is of the bytes that failed: every other request starts where none did before.
    const others = ranges.filter((r) => r.start !== target.start && !isProbe(r)).map((r) => r.start);
    assert.equal(new Set(others).size, others.length, `bytes were asked for twice: ${JSON.stringify(ranges)}`);
    const entry = await cachedEntry(b.page);
    assert.ok(entry, 'the model was not recorded in the cache');
    assert.equal(entry.bytes, SIZE);
    assert.equal(entry.sha256, SHA256, 'the cached copy assembled across retries is not the file served');
  } finally {
    await b.close();
  }
});

/** Loads the model while the connection breaks at byte `CUT` and stays down (a response
 * from below it ends there, any later request fails), up to the network error. Returns the
 * requests seen, where the download stopped, and `restore()` for the network. */
async function breakOff(b) {
  const CUT = 24 << 20;
  let down = true;
  const ranges = await routeModel(b.context, (r) => {
    if (!down) return false;
    if (r.start >= CUT) return 'drop';
    return r.end > CUT ? CUT : false;
  });
  await b.page.getByRole('button', { name: `Load ${FILE}` }).click();
  await b.page.getByTestId('error').waitFor({ timeout: LOAD_TIMEOUT });
  assert.ok(ranges.some((r) => r.failed && r.start === CUT), `the block at byte ${CUT} was not retried: ${JSON.stringify(ranges)}`);
  return { ranges, stoppedAt: CUT, restore: () => { down = false; } };
}

/** After `resume` (a click that loads the model again), the load went on from `stoppedAt`,
 * refetched next to nothing below it, and the cached copy is the file served. */
async function assertResumes(b, { ranges, stoppedAt }, resume) {
  const before = ranges.length;
  await resume();
  await b.page.getByTestId('loaded-model').waitFor({ timeout: LOAD_TIMEOUT });
  const after = ranges.slice(before).filter((r) => !isProbe(r));
  assert.equal(after[0].start, stoppedAt, `did not resume at byte ${stoppedAt}: ${JSON.stringify(after.slice(0, 3))}`);
  // Below the resume point only what the first try never fetched (padding) may be asked again.
  const again = after.filter((r) => r.start < stoppedAt).reduce((s, r) => s + Math.min(r.end, stoppedAt) - r.start, 0);
  assert.ok(again < 1 << 20, `the resume fetched ${again} bytes that were already stored`);
  const entry = await cachedEntry(b.page);
  assert.equal(entry?.sha256, SHA256, 'the resumed copy is not the file served');
}

async function screenshots(page, name) {
  await screenshot(page, `${name}-1280`);
  await page.setViewportSize({ width: 390, height: 844 });
  await screenshot(page, `${name}-390`);
  await page.setViewportSize({ width: 1280, height: 900 });
}

test('a connection that stays down gives a network error whose Retry resumes, not restarts', async () => {
  const b = await launch();
  try {
    await ready(b);
    const broken = await breakOff(b);
    assert.match(await b.page.getByTestId('error').textContent(),
      new RegExp(`network failed at ${SIZE_TEXT} of 98\\.4 MB after 4 tries.*Retry resumes`));
    const retry = b.page.getByRole('button', { name: 'Retry' });
    assert.ok(await retry.isVisible(), 'no Retry next to the network error');
    await screenshots(b.page, 'download-network-error');

    broken.restore();
    await assertResumes(b, broken, () => retry.click());
    assert.equal(await b.page.getByTestId('error').count(), 0, 'the error stayed after a successful Retry');
  } finally {
    await b.close();
  }
});

test('a broken-off download outlives the page: listed as incomplete after a reload, loading it again resumes', async () => {
  const b = await launch();
  try {
    await ready(b);
    const broken = await breakOff(b);

    // A new page: nothing of the first one's worker is left, only what OPFS holds.
    broken.restore();
    await ready(b);
    await b.page.getByText('Cached models (work offline)').click();
    const incomplete = b.page.getByTestId('incomplete');
    await incomplete.waitFor({ timeout: 10_000 });
    const kept = bytesOf((await incomplete.textContent()).match(new RegExp(`incomplete download: (${SIZE_TEXT}) of 98\\.4 MB kept`))?.[1]);
    // Three significant digits: within 0.5% of the bytes stored.
    assert.ok(kept > 0 && kept <= 1.005 * broken.stoppedAt, `kept ${kept} bytes, stopped at byte ${broken.stoppedAt}`);
    await screenshots(b.page, 'download-incomplete');

    await assertResumes(b, broken, () => b.page.getByRole('button', { name: `Load ${FILE}` }).click());
    await b.page.getByTestId('cache-list').getByText(FILE).waitFor({ timeout: 10_000 });
    assert.equal(await incomplete.count(), 0, 'the completed copy is still listed as incomplete');
  } finally {
    await b.close();
  }
});

/** Lowers this origin's storage quota in the browser itself (DevTools' quota override). */
async function lowerQuota(b, bytes) {
  const cdp = await b.context.newCDPSession(b.page);
  await cdp.send('Storage.overrideQuotaForOrigin', { origin: new URL(BASE).origin, quotaSize: bytes });
}

test('a model larger than the reported storage quota is refused before the download, naming the sizes', async () => {
  // Chromium reports a fixed quota (usage + 10 GiB) unless this feature is off; other
  // browsers report the real one, which is what the check before the download reads.
  const b = await launch({ args: ['--disable-features=StaticStorageQuota'] });
  try {
    await ready(b);
    await lowerQuota(b, 40_000_000);
    const ranges = await routeModel(b.context, () => false);
    await b.page.getByRole('button', { name: `Load ${FILE}` }).click();
    const error = b.page.getByTestId('error');
    await error.waitFor({ timeout: 30_000 });
    assert.match(await error.textContent(),
      new RegExp(`won't fit: it needs 98\\.4 MB but this site may store only ${SIZE_TEXT} more \\(quota 40\\.0 MB, ${SIZE_TEXT} used\\)`));
    assert.deepEqual(ranges.filter((r) => !isProbe(r)), [], 'model bytes were downloaded before the quota check');
    assert.equal(await b.page.getByTestId('loaded-model').count(), 0);
    assert.equal(await b.page.getByRole('button', { name: 'Retry' }).count(), 0, 'Retry offered for a full store');
    await screenshots(b.page, 'download-quota');
  } finally {
    await b.close();
  }
});

/** Serves the model file on a port of its own as the test server does (a 206 answer to a
 * Range request), at `rate` bytes a second, and counts the bytes it sent. The page's
 * requests for the model go there. Chromium reads a response as fast as it comes, however
 * far the page has read it, so from a local server a download takes whole requests; at the
 * pace of a real network, the bytes sent are the bytes the download went on to want. */
async function pacedServer(context, rate) {
  const sent = { bytes: 0 };
  const TICK_MS = 10;
  const server = createServer(async (req, res) => {
    const m = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '');
    if (!m) return res.writeHead(416).end();
    const start = Number(m[1]);
    const end = Math.min(Number(m[2]) + 1, SIZE);
    res.writeHead(206, {
      'Content-Range': `bytes ${start}-${end - 1}/${SIZE}`,
      'Content-Length': end - start,
      'Content-Type': 'application/octet-stream',
    });
    const file = await open(PATH);
    try {
      for (let at = start; at < end && !res.destroyed;) {
        const chunk = Buffer.alloc(Math.min(end - at, rate * TICK_MS / 1000));
        await file.read(chunk, 0, chunk.length, at);
        at += chunk.length;
        sent.bytes += chunk.length;
        res.write(chunk);
        await new Promise((done) => setTimeout(done, TICK_MS));
      }
    } finally {
      await file.close();
      res.end();
    }
  });
  await new Promise((done) => server.listen(0, '127.0.0.1', done));
  const url = `http://127.0.0.1:${server.address().port}/${FILE}`;
  await context.route(`**/models/${FILE}`, (route) => route.continue({ url }));
  const close = () => new Promise((done) => { server.closeAllConnections(); server.close(done); });
  return { sent, close };
}

test('a store that fills up during the download stops at once and keeps no partial copy', async () => {
  // Chromium's default: estimate() says 10 GiB is free, the enforced quota says otherwise.
  const b = await launch();
  try {
    await ready(b);
    await lowerQuota(b, 40_000_000);
    // 25 MB/s: the whole file would take 4 s.
    const server = await pacedServer(b.context, 25_000_000);
    await b.page.getByRole('button', { name: `Load ${FILE}` }).click();
    const error = b.page.getByTestId('error');
    await error.waitFor({ timeout: 60_000 });
    assert.match(await error.textContent(), new RegExp(`won't fit in this site's storage: saving it failed at ${SIZE_TEXT} of 98\\.4 MB`));
    // A download that went on would send another 25 MB in this second.
    await new Promise((done) => setTimeout(done, 1000));
    await server.close();
    console.log(`the store filled; ${server.sent.bytes} bytes sent`);
    assert.ok(server.sent.bytes <= 40_000_000 + (8 << 20), `kept downloading after the store was full: ${server.sent.bytes} bytes sent`);
    const left = await b.page.evaluate(async (file) => {
      const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('models');
      const names = [];
      for await (const name of dir.keys()) names.push(name);
      return names.filter((n) => n === file);
    }, FILE);
    assert.deepEqual(left, [], 'a partial copy was left in the cache');
  } finally {
    await b.close();
  }
});
