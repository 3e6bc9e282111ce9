import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readdirSync } from 'node:fs';
import { startServer, launchBrowser, ensureScreenshotDir } from './harness.js';

let server;
let browser;

// The schema version the server reports: the newest migration's number.
const newestMigration = Math.max(
  ...readdirSync(new URL('../migrations/sqlite/', import.meta.url)).map((f) => parseInt(f, 10)).filter(Number.isFinite),
);

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.dispose();
});

test('home page is server-rendered, hydrates, and calls a server function', async () => {
  const page = await browser.newPage();
  const wasm = page.waitForResponse((r) => r.url().endsWith('.wasm'));
  const response = await page.goto(server.url);
  assert.equal(response.status(), 200);
  // Server-rendered: the content is in the HTML before any script runs.
  const html = await response.text();
  assert.match(html, /Not checked yet\./);
  assert.equal((await wasm).status(), 200);

  // Only the hydrated page answers the click: the button is inert HTML until the wasm runs.
  const output = page.getByTestId('server-info');
  await assert.doesNotReject(async () => {
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      await page.getByTestId('check-server').click();
      const text = await output.textContent();
      if (/Schema version \d+ on sqlite/.test(text)) return;
      await page.waitForTimeout(200);
    }
    throw new Error(`no answer from the server function; output: ${await output.textContent()}`);
  });
  assert.match(
    await output.textContent(),
    new RegExp(`^Schema version ${newestMigration} on sqlite, server up for \\d+ s\\.$`),
  );
  await page.screenshot({ path: join(ensureScreenshotDir(), 'home.png') });
  assert.deepEqual(browser.errors, []);
});

test('unknown pages get a 404 with a way back', async () => {
  const page = await browser.newPage();
  const response = await page.goto(`${server.url}/no-such-page`);
  assert.equal(response.status(), 404);
  assert.ok(await page.getByRole('link', { name: 'Back to the board' }).isVisible());
  // The document's own 404 is the one error the browser may report.
  const others = browser.errors.filter((e) => !e.includes('404') || !e.includes('/no-such-page'));
  assert.deepEqual(others, []);
});
