import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { startServer, launchBrowser, ensureScreenshotDir } from './harness.js';

let server;
let browser;
let squatter;

before(async () => {
  // Something already listens where the demo's broker would (a developer's own Mosquitto on 1883,
  // this project's CI machines): the demo must start anyway, on a free port, and say so.
  squatter = createServer();
  await new Promise((r) => squatter.listen(0, '127.0.0.1', r));
  const taken = squatter.address().port;
  server = await startServer(['--demo', '--mqtt-bind', `127.0.0.1:${taken}`]);
  assert.match(server.log, new RegExp(`127\\.0\\.0\\.1:${taken}.*(taken|in use)`, 's'));
  assert.match(server.log, /for the demo the embedded MQTT broker listens on 127\.0\.0\.1:\d+ instead/);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.dispose();
  squatter?.close();
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
