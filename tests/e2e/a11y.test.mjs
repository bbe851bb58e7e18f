// The ask flow with the keyboard alone (focus always visible), the accessible names the
// page promises, the model's choice marked inside the options list, and the page at 200%
// zoom (a 1280x900 window is 640x450 CSS px): nothing overflows sideways and every control
// can be reached and seen.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, BASE, screenshot } from './harness.mjs';

const FILE = 'smollm2-135m-instruct-q4_1.gguf';
const RUN_TIMEOUT = 120_000;

/** What has focus: its role-ish description, and whether a focus ring is drawn. */
function focused(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    const style = getComputedStyle(el);
    const ring = el.matches(':focus-visible') && style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2;
    const label = el.labels?.[0]?.textContent ?? '';
    return {
      tag: el.tagName.toLowerCase(), type: el.type ?? '', id: el.id, text: (el.textContent ?? '').trim().slice(0, 60),
      aria: el.getAttribute('aria-label') ?? '', label: label.trim(), ring,
    };
  });
}

/** Tabs (or Shift+Tabs) until `want(focused)`; every stop on the way must show its focus. */
async function tabTo(page, want, { back = false, max = 60 } = {}) {
  for (let i = 0; i < max; i += 1) {
    await page.keyboard.press(back ? 'Shift+Tab' : 'Tab');
    const f = await focused(page);
    if (!f) continue;
    assert.ok(f.ring, `no visible focus on ${JSON.stringify(f)}`);
    if (want(f)) return f;
  }
  throw new Error(`focus never reached the control after ${max} presses`);
}

/** Elements that stick out of the viewport sideways, and the page's scroll width. */
function sideways(page) {
  return page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const out = [...document.querySelectorAll('body *')]
      .filter((el) => { const r = el.getBoundingClientRect(); return r.width > 0 && (r.left < -0.5 || r.right > width + 0.5); })
      .map((el) => `${el.tagName.toLowerCase()}.${el.className}`);
    return { width, scroll: document.documentElement.scrollWidth, out: out.slice(0, 6) };
  });
}

function assertFits(s, where) {
  assert.ok(s.scroll <= s.width && s.out.length === 0, `${where}: the page scrolls sideways (${s.scroll} > ${s.width} CSS px): ${s.out.join(', ')}`);
}

test('the whole ask flow works with the keyboard alone and marks the choice in the options', async () => {
  const b = await launch();
  try {
    await b.page.goto(BASE);
    const p = b.page;
    await p.getByTestId('engine-status').filter({ hasText: 'Engine ready' }).waitFor({ timeout: 60_000 });
    // Names the issue fixes.
    for (const [role, name] of [['textbox', 'Question'], ['slider', 'Thinking budget'], ['spinbutton', 'Wait count'],
      ['button', 'Ask'], ['button', 'Stop'], ['region', 'Reasoning'], ['region', 'Answer']]) {
      assert.equal(await p.getByRole(role, { name, exact: true }).count(), 1, `no single ${role} "${name}"`);
    }
    assert.equal(await p.getByRole('status').and(p.getByTestId('engine-status')).count(), 1, 'the engine status is no status region');

    await tabTo(p, (f) => f.tag === 'button' && f.text === `Load ${FILE}`);
    await p.keyboard.press('Enter');
    // Load progress is announced: a named progress bar while it loads, the status after.
    await p.getByRole('progressbar', { name: 'Model load progress' }).waitFor({ timeout: 30_000 });
    await p.getByTestId('loaded-model').waitFor({ timeout: RUN_TIMEOUT });
    assert.match(await p.getByTestId('engine-status').textContent(), /is loaded/);

    // A sample from the list with the arrow keys: the 2nd (insulin and potassium, answer B),
    // where this model's greedy answer names an option (D) other than the correct one.
    await tabTo(p, (f) => f.tag === 'select');
    for (let i = 0; i < 2; i += 1) await p.keyboard.press('ArrowDown');
    assert.match(await p.locator('#question').inputValue(), /insulin infusion/);
    const q = await tabTo(p, (f) => f.id === 'question');
    assert.equal(q.label, 'Question');
    // Back to the context box and forward again.
    assert.equal((await tabTo(p, (f) => f.id === 'context', { back: true })).tag, 'textarea');
    await tabTo(p, (f) => f.id === 'question');

    await tabTo(p, (f) => f.id === 'budget');
    await p.keyboard.press('Home');
    await p.keyboard.press('ArrowRight');
    assert.equal((await p.getByTestId('budget-value').textContent()).trim(), '192 tokens');
    await p.keyboard.press('ArrowLeft');
    assert.equal((await p.getByTestId('budget-value').textContent()).trim(), '128 tokens');
    await tabTo(p, (f) => f.aria === 'Wait count');
    await p.keyboard.press('ArrowUp');
    assert.equal(await p.getByRole('spinbutton', { name: 'Wait count' }).inputValue(), '1');
    await p.keyboard.press('ArrowDown');
    assert.equal(await p.getByRole('spinbutton', { name: 'Wait count' }).inputValue(), '0');
    // The advanced drawer opens with Space.
    await tabTo(p, (f) => f.tag === 'summary' && /Advanced/.test(f.text));
    await p.keyboard.press('Space');
    await p.getByText('Temperature 0 is greedy decoding').waitFor({ timeout: 5_000 });

    await tabTo(p, (f) => f.tag === 'button' && f.text === 'Ask');
    await p.keyboard.press('Enter');
    await p.getByTestId('stats').waitFor({ timeout: RUN_TIMEOUT });

    // The choice, marked in the options list itself, and the sample's correct answer.
    const chosen = p.getByTestId('chosen-option');
    assert.equal(await chosen.count(), 1, `no option was read from the answer: ${await p.getByTestId('answer-text').textContent()}`);
    const choice = (await chosen.textContent()).trim();
    const rows = p.locator('.option-row');
    const letters = await rows.locator('label').allTextContents();
    const chosenRow = rows.nth(letters.findIndex((l) => l.startsWith(choice)));
    assert.equal(await chosenRow.getAttribute('aria-current'), 'true');
    assert.equal((await chosenRow.getByTestId('chosen-tag').textContent()).trim(), "Model's choice");
    assert.equal(await p.locator('.option-row[aria-current]').count(), 1);
    const correctRow = rows.nth(1);
    assert.equal((await correctRow.getByTestId('correct-tag').textContent()).trim(), 'Correct answer');
    assert.equal(await p.getByTestId('correct-tag').count(), 1);
    console.log(`model chose ${choice}`);
    await screenshot(p, 'a11y-choice-1280');
    // The marked rows fit at 200% zoom (640 CSS px) and on a phone.
    for (const width of [640, 390]) {
      await p.setViewportSize({ width, height: 844 });
      assertFits(await sideways(p), `${width} px with an answer`);
    }
    await screenshot(p, 'a11y-choice-390');
    await p.setViewportSize({ width: 1280, height: 900 });

    // Editing the chosen option clears its mark: it is no longer the option answered.
    await chosenRow.locator('input').fill('something else');
    await chosenRow.locator('input').press('Tab');
    assert.equal(await p.locator('.option-row[aria-current]').count(), 0);
  } finally {
    await b.close();
  }
});

test('at 200% zoom nothing overflows sideways and every control is reachable', async () => {
  // A 1280x900 window at 200% zoom lays out as 640x450 CSS px at 2 device pixels each.
  const b = await launch({ viewport: { width: 640, height: 450 }, deviceScaleFactor: 2 });
  try {
    const p = b.page;
    await p.goto(BASE);
    await p.getByTestId('engine-status').filter({ hasText: 'Engine ready' }).waitFor({ timeout: 60_000 });
    // Every view, with every drawer open so their controls count too.
    for (const view of ['Compare budgets', 'Evaluate', 'Ask']) {
      await p.getByRole('tab', { name: view }).click();
      for (const s of await p.locator('summary:visible').all()) {
        if (!(await s.evaluate((el) => el.parentElement.open))) await s.click();
      }
      if (view === 'Ask') await p.locator('select').first().selectOption('0');
      assertFits(await sideways(p), `200% zoom, ${view}`);
    }
    // Each control, reached by Tab, lies wholly inside the viewport's width.
    const seen = new Set();
    for (let i = 0; i < 120; i += 1) {
      await p.keyboard.press('Tab');
      const f = await p.evaluate(() => {
        const el = document.activeElement;
        if (!el || el === document.body) return null;
        const r = el.getBoundingClientRect();
        const index = [...document.querySelectorAll('*')].indexOf(el);
        return { key: `${index} ${el.tagName}#${el.id}:${el.getAttribute('aria-label') ?? ''}:${(el.textContent ?? '').trim().slice(0, 40)}`,
          left: r.left, right: r.right, width: r.width, view: innerWidth };
      });
      if (!f) continue;
      if (seen.has(f.key)) break;
      seen.add(f.key);
      assert.ok(f.width > 0 && f.left >= 0 && f.right <= f.view + 0.5, `${f.key} is cut off: ${f.left}..${f.right} of ${f.view}`);
    }
    assert.ok(seen.size >= 25, `only ${seen.size} controls reached by Tab`);
    await screenshot(p, 'a11y-zoom200');
  } finally {
    await b.close();
  }
});
