import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startServer, launchBrowser, ensureScreenshotDir } from './harness.js';

let server;
let browser;

before(async () => {
  server = await startServer();
  server.cli('faculty', 'add', '--name', 'Katherine Johnson', '--department', 'Mathematics and Space Science');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.dispose();
});

test('home page is server-rendered, then hydrates and goes live', async () => {
  const page = await browser.newPage();
  const wasm = page.waitForResponse((r) => r.url().endsWith('.wasm'));
  const response = await page.goto(server.url);
  assert.equal(response.status(), 200);
  // Server-rendered: the board is in the HTML before any script runs.
  const html = await response.text();
  assert.match(html, /Katherine Johnson/);
  assert.doesNotMatch(html, /Check server/, 'the skeleton system panel is gone from the public board');
  assert.equal((await wasm).status(), 200);
  // Only the hydrated page opens the live stream.
  await page.locator('.link[data-link="live"]').waitFor({ timeout: 15_000 });
  await page.screenshot({ path: join(ensureScreenshotDir(), 'home.png') });
  assert.deepEqual(browser.errors, []);
});

// Regression (outside test run): on a 390 px phone the search button ran off the right edge.
for (const [width, height] of [
  [360, 640],
  [390, 844],
]) {
  test(`board and kiosk fit a ${width}x${height} phone without horizontal scrolling`, async () => {
    const page = await browser.newPage({ width, height });
    for (const path of ['/', '/kiosk', '/?q=katherine&status=offline']) {
      await page.goto(`${server.url}${path}`);
      await page.locator('.link[data-link="live"]').waitFor({ timeout: 15_000 });
      const overflow = await page.evaluate(() => {
        const doc = document.documentElement;
        const wide = [...document.querySelectorAll('body *')]
          .filter((el) => el.getBoundingClientRect().right > doc.clientWidth + 0.5)
          .map((el) => el.tagName + (el.className ? `.${el.className}` : ''));
        return { scroll: doc.scrollWidth - doc.clientWidth, wide };
      });
      assert.deepEqual(overflow, { scroll: 0, wide: [] }, `${path} at ${width}x${height}`);
    }
    if (width === 390) await page.screenshot({ path: join(ensureScreenshotDir(), 'phone-390x844.png') });
  });
}

test('unknown pages get a 404 with a way back', async () => {
  const page = await browser.newPage();
  const response = await page.goto(`${server.url}/no-such-page`);
  assert.equal(response.status(), 404);
  assert.ok(await page.getByRole('link', { name: 'Back to the board' }).isVisible());
  // The document's own 404 is the one error the browser may report.
  const others = browser.errors.filter((e) => !e.includes('404') || !e.includes('/no-such-page'));
  assert.deepEqual(others, []);
});
