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
  context.on('request', (r) => requests.push(r.url()));
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${e.message}`));
  const close = async () => {
    await context.close();
    rmSync(dir, { recursive: true, force: true });
  };
  // profileDir: names the browser's processes (in their command lines), for the benchmark.
  return { context, page, requests, consoleLines, close, profileDir: dir };
}

/** Waits for the engine's ready status containing `text`; on a timeout, throws with what the
 * page said instead (its status, the probe's reason, the console lines), since a start that
 * stalls has been seen once in a CI run and not when rerun. */
export async function engineReady(b, page, { text = 'Engine ready', timeout = 60_000 } = {}) {
  await page.getByTestId('engine-status').filter({ hasText: text }).waitFor({ timeout }).catch(async (e) => {
    const status = await page.getByTestId('engine-status').textContent({ timeout: 1000 }).catch(() => '?');
    const reason = await page.getByTestId('device-reason').textContent({ timeout: 1000 }).catch(() => '-');
    throw new Error(`"${text}" not reached: status "${status}", reason "${reason}"\n${b.consoleLines.join('\n')}\n${e.message}`);
  });
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
