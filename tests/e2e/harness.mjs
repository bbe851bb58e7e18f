// Launches Debian's Chromium through playwright-core with WebGPU enabled (SwiftShader's
// software adapter in headless mode) and records every request, so a test can assert
// that nothing leaves the machine.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const BASE = process.env.M1_BASE_URL ?? 'http://127.0.0.1:8080';
export const ARTIFACTS = process.env.M1_ARTIFACTS ?? new URL('../artifacts', import.meta.url).pathname;
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** `args`: extra Chromium switches; the other options go to the browser context
 * (viewport, deviceScaleFactor, ...). */
export async function launch({ args = [], ...options } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'm1-chromium-'));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    ignoreDefaultArgs: ['--headless'],
    args: [
      '--headless=new', '--no-sandbox', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-quic', '--enable-unsafe-webgpu',
      ...args,
    ],
    viewport: { width: 1280, height: 900 },
    ...options,
  });
  const requests = [];
  const consoleLines = [];
  // Requests not yet finished or failed, for the report of a stalled start.
  const pending = new Set();
  context.on('request', (r) => { requests.push(r.url()); pending.add(r); });
  context.on('requestfinished', (r) => pending.delete(r));
  context.on('requestfailed', (r) => pending.delete(r));
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${e.message}`));
  const close = async () => {
    await context.close();
    rmSync(dir, { recursive: true, force: true });
  };
  // profileDir: names the browser's processes (in their command lines), for the benchmark.
  return { context, page, requests, pending, consoleLines, close, profileDir: dir };
}

/** Waits for the engine's ready status containing `text`; on a timeout, throws with what the
 * page said instead (its status, the probe's reason, where its workers got, the requests
 * still open, the console lines): a rare stall is then told by its first report. */
export async function engineReady(b, page, { text = 'Engine ready', timeout = 60_000 } = {}) {
  await page.getByTestId('engine-status').filter({ hasText: text }).waitFor({ timeout }).catch(async (e) => {
    const status = await page.getByTestId('engine-status').textContent({ timeout: 1000 }).catch(() => '?');
    const reason = await page.getByTestId('device-reason').textContent({ timeout: 1000 }).catch(() => '-');
    throw new Error(`"${text}" not reached: status "${status}", reason "${reason}"\n${await stallReport(b, page)}\n${b.consoleLines.join('\n')}\n${e.message}`);
  });
}

/** How far each of the page's workers got in its start (`self.m1Stage`, set by the engine
 * worker and its loader), whether a service worker controls the page, and the requests
 * still open: what a stalled start leaves to go on. */
export async function stallReport(b, page) {
  const within = (p, ms, late) => Promise.race([p, new Promise((r) => setTimeout(() => r(late), ms))]);
  const lines = await Promise.all(page.workers().map(async (w) => {
    const stage = await within(w.evaluate(() => self.m1Stage ?? '(no stage)'), 2000, '(no answer in 2 s)')
      .catch((e) => `(unreachable: ${e.message})`);
    return `worker ${w.url()}: ${stage}`;
  }));
  const sw = await within(page.evaluate(() => navigator.serviceWorker?.controller?.state ?? 'none'), 2000, '?')
    .catch(() => '?');
  const open = [...b.pending].map((r) => `unfinished request: ${r.method()} ${r.url()}${r.serviceWorker() ? ' (by the service worker)' : ''}`);
  // The same small file asked for now, from here and from the page: says whether the
  // server or the browser's side is stuck.
  const probe = async (f) => {
    const t0 = Date.now();
    const r = await within(f().catch((e) => `failed: ${e.message}`), 5000, 'no answer in 5 s');
    return `${r} (${Date.now() - t0} ms)`;
  };
  const url = new URL('models/index.json', BASE).href;
  const fromHere = await probe(() => fetch(url).then((r) => `HTTP ${r.status}`));
  const fromPage = await probe(() => page.evaluate((u) => fetch(u).then((r) => `HTTP ${r.status}`), url));
  return [
    `${lines.length} workers; service worker controlling the page: ${sw}`, ...lines, ...open,
    `models/index.json now: from the test ${fromHere}, from the page ${fromPage}`,
  ].join('\n');
}

/** A size as the page writes it (the engine's `fmt_bytes`: "98.4 MB", "512 kB") in bytes. */
export const SIZE_TEXT = String.raw`[\d.]+ (?:B|kB|MB|GB|TB)`;
export function bytesOf(size) {
  const m = size?.match(/([\d.]+) (B|kB|MB|GB|TB)/);
  return m ? parseFloat(m[1]) * { B: 1, kB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 }[m[2]] : NaN;
}

/** Requests that went anywhere but the local test server. */
export function foreignRequests(requests) {
  const origin = new URL(BASE).origin;
  return requests.filter((u) => !u.startsWith(origin) && !u.startsWith('blob:') && !u.startsWith('data:'));
}

export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
