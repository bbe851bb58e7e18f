// First slice through the real architecture: the page boots, the engine starts in a
// dedicated Web Worker, reaches WebGPU, and reports the adapter's real limits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, BASE, bytesOf, foreignRequests, screenshot } from './harness.mjs';

test('the worker reaches WebGPU and reports the adapter', async () => {
  const b = await launch();
  try {
    // ?gpu=1: SwiftShader is a software adapter, which the app passes over by default.
    await b.page.goto(`${BASE}/?gpu=1`);
    const status = b.page.getByTestId('engine-status');
    await status.filter({ hasText: 'Engine ready on WebGPU' }).waitFor({ timeout: 60_000 })
      .catch(async (e) => {
        throw new Error(`engine did not report WebGPU: status="${await status.textContent()}"\n${b.consoleLines.join('\n')}\n${e}`);
      });
    await b.page.getByText('About this device').click();
    assert.equal(await b.page.getByTestId('device-backend').textContent(), 'WebGPU');
    const name = (await b.page.getByTestId('adapter-name').textContent()).trim();
    assert.ok(name.length > 0, 'adapter name is empty');
    // SwiftShader here offers 1 GiB; any real adapter offers at least the spec's 128 MiB
    // ("134 MB").
    const binding = bytesOf(await b.page.getByTestId('adapter-max-binding').textContent());
    assert.ok(binding >= 134e6, `max storage binding ${binding} bytes is below the WebGPU minimum`);
    await screenshot(b.page, 'smoke-device-1280');
    assert.deepEqual(foreignRequests(b.requests), []);
  } finally {
    await b.close();
  }
});

test('a software-only WebGPU adapter is passed over for the faster CPU path, with the reason', async () => {
  const b = await launch();
  try {
    await b.page.goto(BASE);
    const status = b.page.getByTestId('engine-status');
    await status.filter({ hasText: 'only a software WebGPU adapter' }).waitFor({ timeout: 60_000 })
      .catch(async (e) => {
        await b.page.getByText('About this device').click().catch(() => {});
        const reason = await b.page.getByTestId('device-reason').textContent().catch(() => '(none)');
        throw new Error(`status="${await status.textContent()}", reason="${reason}"\n${b.consoleLines.join('\n')}\n${e}`);
      });
    await b.page.getByText('About this device').click();
    assert.match(await b.page.getByTestId('device-reason').textContent(), /software.*swiftshader.*\?gpu=1/i);
  } finally {
    await b.close();
  }
});

test('the CPU path is chosen and explained when asked for', async () => {
  const b = await launch();
  try {
    await b.page.goto(`${BASE}/?cpu=1`);
    await b.page.getByTestId('engine-status').filter({ hasText: 'CPU' }).waitFor({ timeout: 60_000 });
    await b.page.getByText('About this device').click();
    assert.match(await b.page.getByTestId('device-backend').textContent(), /CPU/);
  } finally {
    await b.close();
  }
});
