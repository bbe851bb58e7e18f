// The model cache against what a crashed tab or a second tab leaves (issue #16): a stored
// index.json that is truncated, that records byte ranges past its file, or that lists a
// file that is gone, is repaired on the next page load with a message saying what was done,
// and the page goes on working; two tabs loading the same model at once do not corrupt the
// first one's cached copy (OPFS access handles are exclusive: the second tab says so and
// loads without keeping a copy).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, BASE, engineReady } from './harness.mjs';

const FILE = 'smollm2-135m-instruct-q4_1.gguf';
const LOAD_TIMEOUT = 120_000;

async function ready(b, page) {
  await engineReady(b, page);
}

async function loadListed(page) {
  await page.getByRole('button', { name: `Load ${FILE}` }).click();
  await page.getByTestId('engine-status').filter({ hasText: 'is loaded' }).waitFor({ timeout: LOAD_TIMEOUT });
}

/** What the cache list shows, opened: [file, complete?]. */
async function cacheList(page) {
  await page.getByText('Cached models (work offline)').click();
  const list = page.getByTestId('cache-list');
  await list.locator('li').first().waitFor();
  const rows = await list.locator('li').evaluateAll((lis) => lis
    .filter((li) => li.querySelector('button'))
    .map((li) => [li.querySelector('span').textContent, !li.querySelector('[data-testid=incomplete]')]));
  await page.getByText('Cached models (work offline)').click();
  return rows;
}

/** Replaces the stored models/index.json (from the page: OPFS is per origin). */
function writeIndex(page, text) {
  return page.evaluate(async (t) => {
    const root = await navigator.storage.getDirectory();
    const dir = await root.getDirectoryHandle('models');
    const w = await (await dir.getFileHandle('index.json')).createWritable();
    await w.write(t);
    await w.close();
  }, text);
}

function readIndex(page) {
  return page.evaluate(async () => {
    const root = await navigator.storage.getDirectory();
    const dir = await root.getDirectoryHandle('models');
    return (await (await dir.getFileHandle('index.json')).getFile()).text();
  });
}

test('a damaged cache index is repaired with a message, never a dead page', async () => {
  const b = await launch();
  try {
    const p = b.page;
    await p.goto(`${BASE}/?cpu=1`);
    await ready(b, p);
    await loadListed(p);
    const good = await readIndex(p);
    assert.deepEqual(JSON.parse(good).entries.map((e) => e.file), [FILE]);

    // 1. Truncated JSON (a tab closed mid-write): reset, the files it described deleted.
    await writeIndex(p, good.slice(0, good.length / 2));
    await p.reload();
    await ready(b, p);
    await p.getByTestId('cache-notes').filter({ hasText: 'was damaged' }).waitFor({ timeout: 30_000 });
    assert.match(await p.getByTestId('cache-notes').textContent(), /1 cached file\(s\) .* deleted/);
    assert.deepEqual(JSON.parse(await readIndex(p)), { entries: [], partials: [] });
    assert.deepEqual(await cacheList(p), []);
    await loadListed(p); // downloads it again
    assert.deepEqual(await cacheList(p), [[FILE, true]]);

    // 2. A partial download whose ranges run past its file: kept, ranges cleared, and
    //    loading the model again fetches it whole and completes the copy.
    const size = JSON.parse(await readIndex(p)).entries[0].size;
    await writeIndex(p, JSON.stringify({
      entries: [],
      partials: [{ file: FILE, url: `models/${FILE}`, size, covered: [[0, size * 2]] }],
    }));
    await p.reload();
    await ready(b, p);
    await p.getByTestId('cache-notes').filter({ hasText: 'byte ranges its file cannot hold' }).waitFor({ timeout: 30_000 });
    assert.deepEqual(JSON.parse(await readIndex(p)).partials[0].covered, []);
    await loadListed(p);
    assert.deepEqual(await cacheList(p), [[FILE, true]]);

    // 3. A listed file that is gone: dropped from the list, the rest kept.
    const index = JSON.parse(await readIndex(p));
    index.entries.push({ file: 'gone.gguf', size: 5, sha256: null });
    await writeIndex(p, JSON.stringify(index));
    await p.reload();
    await ready(b, p);
    await p.getByTestId('cache-notes').filter({ hasText: 'gone.gguf was listed in the model cache but its file is missing' })
      .waitFor({ timeout: 30_000 });
    assert.deepEqual(JSON.parse(await readIndex(p)).entries.map((e) => e.file), [FILE]);
    // The kept copy loads with no network.
    await b.context.setOffline(true);
    await p.getByText('Cached models (work offline)').click();
    await p.getByTestId('cache-list').getByRole('button', { name: 'Load', exact: true }).click();
    await p.getByTestId('engine-status').filter({ hasText: 'is loaded' }).waitFor({ timeout: LOAD_TIMEOUT });
  } finally {
    await b.close();
  }
});

test('a second tab loading the same model leaves the first tab\'s download and copy intact', async () => {
  const b = await launch();
  try {
    // Slow chunks until the second tab has met the first one's download, so the two
    // overlap for certain; full speed after.
    let slow = true;
    await b.context.route(`**/${FILE}`, async (route) => {
      if (slow) await new Promise((r) => setTimeout(r, 400));
      await route.continue();
    });
    const first = b.page;
    const second = await b.context.newPage();
    for (const p of [first, second]) {
      await p.goto(`${BASE}/?cpu=1`);
      await ready(b, p);
    }
    await first.getByRole('button', { name: `Load ${FILE}` }).click();
    await first.getByRole('progressbar', { name: 'Model load progress' }).waitFor({ timeout: 30_000 });
    await second.getByRole('button', { name: `Load ${FILE}` }).click();
    await second.getByTestId('cache-notes').filter({ hasText: 'being downloaded by another tab' }).waitFor({ timeout: 60_000 });
    slow = false;
    for (const p of [first, second]) {
      await p.getByTestId('engine-status').filter({ hasText: 'is loaded' }).waitFor({ timeout: LOAD_TIMEOUT });
    }
    // The first tab's copy is complete and verified, and loads in the second with no network.
    const index = JSON.parse(await readIndex(first));
    assert.deepEqual(index.entries.map((e) => e.file), [FILE]);
    assert.equal(index.partials.length, 0);
    assert.ok(index.entries[0].sha256, 'the copy was verified');
    await b.context.unroute(`**/${FILE}`);
    await second.reload();
    await ready(b, second);
    await b.context.setOffline(true);
    await second.getByText('Cached models (work offline)').click();
    await second.getByTestId('cache-list').getByRole('button', { name: 'Load', exact: true }).click();
    await second.getByTestId('engine-status').filter({ hasText: 'is loaded' }).waitFor({ timeout: LOAD_TIMEOUT });
  } finally {
    await b.close();
  }
});
