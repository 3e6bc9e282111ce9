import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startServer, startBroker, launchBrowser, ensureScreenshotDir } from './harness.js';
import { connectDesk } from './desk.js';

const PREFIX = 'consultease';
let broker;
let server;
let browser;
let desks = {};
const ids = {};

before(async () => {
  broker = await startBroker();
  server = await startServer(['--mqtt-url', broker.url]);
  const people = [
    ['board', 'Ada Lovelace', 'Computer Science'],
    ['kiosk', 'Grace Hopper', 'Computer Science'],
    ['extra', 'Emmy Noether', 'Mathematics'],
  ];
  for (const [desk, name, dept] of people) {
    ids[desk] = server.cli('faculty', 'add', '--name', name, '--department', dept).trim();
    server.cli('desk', 'add', desk, '--faculty', ids[desk]);
  }
  for (const [desk] of people) {
    desks[desk] = await connectDesk(broker.url, PREFIX, desk, 1);
    await desks[desk].state(true);
  }
  browser = await launchBrowser();
});

after(async () => {
  for (const d of Object.values(desks)) await d.close().catch(() => {});
  await browser?.close();
  await server?.dispose();
  await broker?.stop();
});

const card = (page, desk) => page.locator(`[data-faculty-id="${ids[desk]}"]`);

async function cardState(page, desk) {
  const c = card(page, desk);
  return { status: await c.getAttribute('data-status'), version: Number(await c.getAttribute('data-version')) };
}

/** Waits (generously: correctness, not speed) until the card shows `status` at a version above
 * `above`; returns the state and how long it took, for the log. */
async function waitForCard(page, desk, status, above) {
  const started = Date.now();
  const sel = `[data-faculty-id="${ids[desk]}"][data-status="${status}"]`;
  await page.waitForFunction(
    ([s, v]) => {
      const el = document.querySelector(s);
      return el && Number(el.getAttribute('data-version')) > v;
    },
    [sel, above],
    { timeout: 10_000 },
  );
  return { ...(await cardState(page, desk)), ms: Date.now() - started };
}

async function openHydrated(path, viewport) {
  const page = await browser.newPage(viewport);
  const wasm = page.waitForResponse((r) => r.url().endsWith('.wasm'));
  await page.goto(`${server.url}${path}`);
  assert.equal((await wasm).status(), 200);
  await page.locator('.link[data-link="live"]').waitFor({ timeout: 15_000 });
  await page.evaluate(() => {
    window.__notReloaded = true;
  });
  return page;
}

/** The stream's connection errors while the server is down are expected; nothing else is. */
function unexpectedErrors() {
  return browser.errors.filter((e) => !(e.includes('/api/events') || e.includes('ERR_CONNECTION_REFUSED')));
}

async function liveUpdatesAndRecovery(path, desk, viewport, shot) {
  const page = await openHydrated(path, viewport);
  let before = await cardState(page, desk);
  assert.equal(before.status, 'available');

  // A desk message changes the card without a reload.
  await desks[desk].state(true, true);
  const busy = await waitForCard(page, desk, 'busy', before.version);
  console.log(`${path}: busy shown ${busy.ms} ms after publishing`);
  assert.equal(busy.version, before.version + 1);

  // A stale message (older seq) changes nothing.
  await desks[desk].stateAt(desks[desk].seq - 1, false, false);
  await page.waitForTimeout(700);
  assert.deepEqual(await cardState(page, desk), { status: 'busy', version: busy.version });
  const api = await (await fetch(`${server.url}/api/faculty`)).json();
  assert.equal(api.faculty.find((f) => String(f.id) === ids[desk]).version, busy.version);

  // The server restarts; meanwhile the desk reports. The page reconnects and catches up by itself.
  await server.stop();
  await page.locator('.link[data-link="reconnecting"]').waitFor({ timeout: 10_000 });
  await desks[desk].state(false, false);
  await server.start();
  const away = await waitForCard(page, desk, 'away', busy.version);
  assert.equal(away.version, busy.version + 1);
  await page.locator('.link[data-link="live"]').waitFor({ timeout: 10_000 });
  assert.equal(await page.evaluate(() => window.__notReloaded), true, 'no reload');

  // Live again: back to available for the screenshot.
  await desks[desk].state(true, false);
  await waitForCard(page, desk, 'available', away.version);
  await page.screenshot({ path: join(ensureScreenshotDir(), shot) });
  assert.deepEqual(unexpectedErrors(), []);
  return page;
}

test('board: live updates, stale messages ignored, recovery after a server restart', async () => {
  await liveUpdatesAndRecovery('/', 'board', { width: 1280, height: 800 }, 'board.png');
});

test('kiosk: the same on a 1024x600 touchscreen, and a 1920x1080 wall screen', async () => {
  const page = await liveUpdatesAndRecovery('/kiosk', 'kiosk', { width: 1024, height: 600 }, 'kiosk-1024x600.png');
  // Every card fits the small screen without horizontal scrolling.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  assert.equal(overflow, false);
  await page.setViewportSize({ width: 1920, height: 1080 });
  await page.screenshot({ path: join(ensureScreenshotDir(), 'kiosk-1920x1080.png') });
});

test('search and status filter work from the query string and keep working with live events', async () => {
  // Without the wasm: the server renders the filtered board from the query string.
  const html = await (await fetch(`${server.url}/?q=noether`)).text();
  assert.match(html, /<h3 class="name">Emmy Noether<\/h3>/);
  assert.doesNotMatch(html, /<h3 class="name">Ada Lovelace/);
  assert.match(html, /<input[^>]*name="q"[^>]*value="noether"/);

  const page = await openHydrated('/?status=available', { width: 1280, height: 800 });
  assert.equal(await card(page, 'extra').count(), 1);
  const before = await cardState(page, 'extra');
  // A live change takes Emmy out of the "available" view, and back in.
  await desks.extra.state(true, true);
  await card(page, 'extra').waitFor({ state: 'detached', timeout: 10_000 });
  await desks.extra.state(true, false);
  const back = await waitForCard(page, 'extra', 'available', before.version + 1);
  assert.equal(back.version, before.version + 2);
  // Clicking a status filter (client-side navigation) and searching.
  await page.getByRole('link', { name: 'All', exact: true }).click();
  await page.waitForURL(/\/$/);
  assert.equal(await page.locator('.card').count(), 3);
  assert.deepEqual(unexpectedErrors(), []);
});
