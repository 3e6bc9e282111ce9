import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startServer, launchBrowser, ensureScreenshotDir } from './harness.js';

let server;
let browser;

before(async () => {
  server = await startServer(['--demo']);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.dispose();
});

test('--demo seeds a dozen faculty with simulated desks, once, and the board comes alive', async () => {
  const page = await browser.newPage({ width: 1280, height: 900 });
  await page.goto(server.url);
  await page.locator('.link[data-link="live"]').waitFor({ timeout: 15_000 });
  assert.equal(await page.locator('.card').count(), 12);
  // Every simulated desk announces itself: nobody stays offline.
  await page.waitForFunction(() => document.querySelectorAll('.card[data-status="offline"]').length === 0, null, {
    timeout: 15_000,
  });
  await page.screenshot({ path: join(ensureScreenshotDir(), 'demo-board.png') });

  // Seeding is idempotent: a restart keeps twelve, and the page follows the restart by itself.
  await server.stop();
  await server.start();
  const api = await (await fetch(`${server.url}/api/faculty`)).json();
  assert.equal(api.faculty.length, 12);
  await page.locator('.link[data-link="live"]').waitFor({ timeout: 15_000 });

  const wall = await browser.newPage({ width: 1920, height: 1080 });
  await wall.goto(`${server.url}/kiosk`);
  await wall.locator('.link[data-link="live"]').waitFor({ timeout: 15_000 });
  await wall.screenshot({ path: join(ensureScreenshotDir(), 'demo-kiosk-1920x1080.png') });
  const unexpected = browser.errors.filter((e) => !(e.includes('/api/events') || e.includes('ERR_CONNECTION_REFUSED')));
  assert.deepEqual(unexpected, []);
});
