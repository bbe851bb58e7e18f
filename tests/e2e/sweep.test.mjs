// The classroom views (issue #15) on the CPU path. "Compare budgets": the scurvy sample on
// the Qwen2.5 demo model at budgets 8, 16 and 32 from one thinking trace must equal three
// separate answers at those budgets in the same page (the Ask view): each cut marker after
// exactly that run's thinking, the same answers and choices, and the page names every change
// of choice. (The native CLI's sweep equals its separate runs in cli/tests/cli.rs; the wasm
// CPU path's float order differs from the native one, so its tokens are compared with its
// own separate runs rather than with a native fixture.)
// "Evaluate": 3 PubMedQA items at 2 budgets on SmolLM2: the chart's points equal the table,
// the CSV export parses and equals the table, a reload shows the results; on the built-in
// samples, an evaluation stopped mid-item and resumed ends with an uninterrupted one's
// results; and two evaluations share the chart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { launch, BASE, foreignRequests, screenshot } from './harness.mjs';

const SAMPLE = 2; // scurvy (app/src/samples.rs)
const BUDGETS = [8, 16, 32];
const MAX_ANSWER = 8;
const QWEN = 'Qwen2.5-Coder-0.5B-Instruct (Q4_K_M)';
const SMOLLM = 'smollm2-135m-instruct-q4_1.gguf';
const LOAD_TIMEOUT = 240_000;
const RUN_TIMEOUT = 600_000;

const words = (s) => s.replace(/\s+/g, ' ').trim();

async function ready(page) {
  await page.getByTestId('engine-status').filter({ hasText: 'Engine ready' }).waitFor({ timeout: 60_000 });
}

async function load(page, name) {
  await page.getByRole('button', { name: `Load ${name}` }).first().click();
  await page.getByTestId('loaded-model').filter({ hasText: /loaded|on the|CPU/ }).waitFor({ timeout: LOAD_TIMEOUT });
  await page.getByTestId('engine-status').filter({ hasText: 'is loaded' }).waitFor({ timeout: LOAD_TIMEOUT });
}

/** RFC 4180 rows (quoted fields may hold commas, quotes and line breaks). */
function parseCsv(text) {
  const rows = [];
  let row = [], field = '', quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i += 1; } else if (c === '"') quoted = false; else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; } else if (c === '\n') { row.push(field); rows.push(row); row = []; field = ''; } else field += c;
  }
  if (field || row.length) { row.push(field); rows.push(row); }
  return rows;
}

/** The results table as {id, gold, cells: {budget: {choice, correct}}}. */
function resultsTable(page) {
  return page.getByTestId('eval-table').evaluate((t) => [...t.querySelectorAll('tbody tr')].map((tr) => ({
    id: tr.dataset.id,
    gold: tr.querySelector('[data-col=gold]').textContent.trim(),
    cells: Object.fromEntries([...tr.querySelectorAll('td[data-budget]')].map((td) => [td.dataset.budget, {
      choice: td.dataset.choice, correct: td.classList.contains('right') ? true : td.classList.contains('wrong') ? false : null,
    }])),
  })));
}

/** The reasoning panel's text without its markers, and the answer and choice, of one run. */
async function askAt(page, budget) {
  await page.getByRole('tab', { name: 'Ask' }).click();
  await page.getByRole('spinbutton', { name: 'Exact thinking budget' }).fill(String(budget));
  await page.getByRole('spinbutton', { name: 'Exact thinking budget' }).dispatchEvent('change');
  await page.getByRole('button', { name: 'Ask' }).click();
  await page.getByTestId('stats').waitFor({ timeout: RUN_TIMEOUT });
  assert.equal((await page.getByTestId('think-counter').textContent()).trim(), `${budget} / ${budget}`);
  return {
    thinking: await page.getByTestId('reasoning-text').evaluate((el) =>
      [...el.children].filter((c) => !c.matches('mark')).map((c) => c.textContent).join('')),
    answer: (await page.getByTestId('answer-text').textContent()).trim(),
    choice: (await page.getByTestId('choice').textContent()).match(/Chosen option: (\w)/)?.[1] ?? 'none read',
  };
}

test('Compare budgets: one trace, a marker at each cut, each budget equal to its own run', async () => {
  const b = await launch();
  try {
    const p = b.page;
    await p.goto(`${BASE}/?cpu=1&max_answer=${MAX_ANSWER}`);
    await ready(p);
    await load(p, QWEN);
    await p.getByRole('tab', { name: 'Compare budgets' }).click();
    await p.getByTestId('compare-sample').selectOption(String(SAMPLE));
    await p.getByRole('textbox', { name: 'Budgets', exact: true }).fill(BUDGETS.join(', '));
    const before = b.requests.length;
    await p.getByRole('button', { name: 'Compare', exact: true }).click();
    await p.getByTestId('choice-changes').waitFor({ timeout: RUN_TIMEOUT });
    assert.deepEqual(b.requests.slice(before), [], 'a request left the page while comparing');

    const cuts = await p.getByTestId('sweep-reasoning').evaluate((el) => {
      const out = [];
      let text = '';
      for (const c of el.children) {
        if (c.matches('[data-testid=cut-marker]')) out.push({ budgets: c.dataset.budgets, think: Number(c.dataset.thinkTokens), text });
        else if (!c.matches('mark')) text += c.textContent;
      }
      return out;
    });
    const rows = await p.getByTestId('budget-row').evaluateAll((trs) => trs.map((tr) => ({
      budget: Number(tr.dataset.budget),
      answer: tr.querySelector('[data-col=answer]').textContent,
      choice: tr.querySelector('[data-col=choice]').textContent,
      correct: tr.querySelector('[data-col=correct]').textContent,
    })));
    assert.deepEqual(rows.map((r) => r.budget), BUDGETS);
    // The change of choice is said in words, once per change.
    const changes = rows.slice(1).filter((r, i) => r.choice !== rows[i].choice);
    const said = await p.getByTestId('choice-change').allTextContents();
    assert.deepEqual(said, changes.map((r) => {
      const prev = rows[rows.indexOf(r) - 1];
      return `The chosen option changes from ${prev.choice} at ${prev.budget} tokens to ${r.choice} at ${r.budget} tokens.`;
    }));
    if (changes.length === 0) assert.equal((await p.getByTestId('choice-changes').textContent()).trim(), 'The chosen option is the same at every budget.');
    await screenshot(p, 'compare-1280');
    await p.setViewportSize({ width: 390, height: 844 });
    await screenshot(p, 'compare-390');
    await p.setViewportSize({ width: 1280, height: 900 });

    // Each budget's separate run: its thinking is the trace up to that budget's marker, and
    // its answer and choice are the sweep's.
    assert.equal(cuts.length, BUDGETS.length, JSON.stringify(cuts));
    for (const [i, budget] of BUDGETS.entries()) {
      const run = await askAt(p, budget);
      console.log(`budget ${budget}: sweep ${rows[i].choice} "${rows[i].answer}", separate run ${run.choice} "${run.answer}"`);
      assert.equal(cuts[i].budgets, String(budget));
      assert.equal(cuts[i].think, budget);
      assert.equal(cuts[i].text, run.thinking.replace(/\n$/, ''), `the trace before the ${budget}-token marker`);
      assert.equal(rows[i].answer, run.answer);
      assert.equal(rows[i].choice, run.choice);
      assert.equal(rows[i].correct, run.choice === 'C' ? 'right' : 'wrong');
    }
    assert.deepEqual(foreignRequests(b.requests), []);
  } finally {
    await b.close();
  }
});

test('Evaluate: chart and CSV equal the table, a reload keeps it, Stop then Resume equals a whole run, two on one chart', async () => {
  const b = await launch();
  try {
    const p = b.page;
    await p.goto(`${BASE}/?cpu=1&max_answer=8&view=evaluate`);
    await ready(p);
    await load(p, SMOLLM);
    // The first items, not a seeded draw (the view's default), so they are known here.
    const evaluate = async (data) => {
      await p.getByRole('combobox', { name: 'Data' }).selectOption(data);
      await p.getByRole('checkbox', { name: 'Items at random' }).uncheck();
      await p.getByRole('spinbutton', { name: 'Items' }).fill('3');
      await p.getByRole('textbox', { name: 'Evaluation budgets' }).fill('0, 8');
      await p.getByRole('button', { name: 'Run evaluation' }).click();
    };
    const before = b.requests.length;
    await evaluate('pubmedqa');
    await p.getByTestId('eval-progress').filter({ hasText: '3 / 3 items' }).waitFor({ timeout: RUN_TIMEOUT });
    await p.getByTestId('engine-status').filter({ hasText: 'Evaluation finished.' }).waitFor({ timeout: 30_000 });
    // The bundled data set is the only request: from this origin, before the first item.
    // (Twice in the log when the service worker fetches it for the page.)
    const during = new Set(b.requests.slice(before).map((u) => new URL(u).pathname));
    assert.deepEqual([...during], ['/data/pubmedqa-test.jsonl']);
    const whole = await resultsTable(p);
    assert.equal(whole.length, 3);
    assert.deepEqual(whole.map((r) => r.id), ['pubmedqa-12377809', 'pubmedqa-26163474', 'pubmedqa-19100463']);

    // The chart: one point per budget, at the table's accuracy.
    const points = await p.getByRole('img', { name: 'Accuracy by thinking budget' }).locator('circle')
      .evaluateAll((cs) => cs.map((c) => ({ budget: c.dataset.budget, accuracy: Number(c.dataset.accuracy), n: Number(c.dataset.n) })));
    assert.deepEqual(points.map((pt) => pt.budget), ['0', '8']);
    for (const pt of points) {
      const right = whole.filter((r) => r.cells[pt.budget].correct).length;
      assert.equal(pt.n, 3);
      assert.ok(Math.abs(pt.accuracy - right / 3) < 1e-6, `budget ${pt.budget}: ${pt.accuracy} vs ${right}/3`);
    }
    const tableRows = await p.getByTestId('accuracy-row').evaluateAll((trs) => trs.map((tr) => [
      tr.querySelector('[data-col=budget]').textContent, tr.querySelector('[data-col=correct]').textContent]));
    assert.deepEqual(tableRows, points.map((pt) => [pt.budget, String(whole.filter((r) => r.cells[pt.budget].correct).length)]));

    // CSV: one line per item and budget, equal to the table.
    const [download] = await Promise.all([p.waitForEvent('download'), p.getByRole('button', { name: 'Download CSV' }).click()]);
    const csv = parseCsv(readFileSync(await download.path(), 'utf8'));
    assert.deepEqual(csv[0], ['item', 'id', 'gold', 'budget', 'choice', 'correct', 'think_tokens', 'answer_tokens', 'answer']);
    assert.equal(csv.length, 1 + 3 * 2);
    for (const [, id, gold, budget, choice, correct] of csv.slice(1)) {
      const row = whole.find((r) => r.id === id);
      assert.equal(gold, row.gold);
      assert.equal(choice || '–', row.cells[budget].choice);
      assert.equal(correct, String(row.cells[budget].correct));
    }
    await screenshot(p, 'evaluate-1280');
    await p.setViewportSize({ width: 390, height: 844 });
    await screenshot(p, 'evaluate-390');
    await p.setViewportSize({ width: 1280, height: 900 });

    // A reload shows the stored evaluation, before any model is loaded.
    await p.reload();
    await p.getByTestId('eval-table').waitFor({ timeout: 30_000 });
    assert.deepEqual(await resultsTable(p), whole);

    // Stop and Resume, on the short built-in samples: a whole run, then the same run
    // stopped inside its second item and resumed, end with the same results.
    await ready(p);
    await load(p, SMOLLM);
    await evaluate('samples');
    await p.getByTestId('engine-status').filter({ hasText: 'Evaluation finished.' }).waitFor({ timeout: RUN_TIMEOUT });
    const samples = await resultsTable(p);
    assert.equal(samples.length, 3);
    await evaluate('samples');
    await p.getByTestId('eval-progress').filter({ hasText: '1 / 3 items' }).waitFor({ timeout: RUN_TIMEOUT });
    await p.getByRole('button', { name: 'Stop', exact: true }).click();
    await p.getByTestId('engine-status').filter({ hasText: /Evaluation stopped/ }).waitFor({ timeout: 60_000 });
    const stoppedAt = await p.getByTestId('eval-progress').textContent();
    assert.match(stoppedAt, /^[12] \/ 3 items$/);
    await p.getByRole('button', { name: 'Resume' }).click();
    await p.getByTestId('eval-progress').filter({ hasText: '3 / 3 items' }).waitFor({ timeout: RUN_TIMEOUT });
    await p.getByTestId('engine-status').filter({ hasText: 'Evaluation finished.' }).waitFor({ timeout: 30_000 });
    assert.deepEqual(await resultsTable(p), samples);

    // A second evaluation on the same chart: the PubMedQA one beside the samples'.
    const other = await p.getByRole('combobox', { name: 'Compare with' }).locator('option')
      .filter({ hasText: 'PubMedQA' }).getAttribute('value');
    await p.getByRole('combobox', { name: 'Compare with' }).selectOption(other);
    assert.equal(await p.getByRole('img', { name: 'Accuracy by thinking budget' }).locator('circle').count(), 4);
    assert.deepEqual(foreignRequests(b.requests), []);
  } finally {
    await b.close();
  }
});
