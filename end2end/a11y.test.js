// Accessibility: axe-core's WCAG 2 A/AA rules (contrast included) on the board and the kiosk, with a
// card in every status, before and after hydration, the keyboard path through the filters, and the
// consultation pages (the request form with its notice and errors, a student's requests).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { startServer, startBroker, launchBrowser } from './harness.js';
import { connectDesk } from './desk.js';

const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
let broker;
let server;
let browser;
const desks = [];
const ids = {};

before(async () => {
  broker = await startBroker();
  server = await startServer(['--mqtt-url', broker.url]);
  // One person per status: available, busy, away, and offline (a desk that never connected).
  const people = [
    ['a11y-available', 'Ada Lovelace', 'Computer Science', [true, false]],
    ['a11y-busy', 'Grace Hopper', 'Computer Science', [true, true]],
    ['a11y-away', 'Emmy Noether', 'Mathematics', [false, false]],
    ['a11y-offline', 'Alan Turing', 'Mathematics', null],
  ];
  for (const [desk, name, dept, state] of people) {
    const id = server.cli('faculty', 'add', '--name', name, '--department', dept).trim();
    ids[desk] = id;
    server.cli('desk', 'add', desk, '--faculty', id);
    if (state) {
      const d = await connectDesk(broker.url, 'consultease', desk, 1);
      await d.state(...state);
      desks.push(d);
    }
  }
  server.cli('student', 'add', '--number', 'S-300', '--name', 'Kim Student');
  server.cliWithInput('975310\n', 'student', 'set-pin', 'S-300');
  // axe-core is injected as an inline script: the test, not the app, needs the CSP bypassed.
  browser = await launchBrowser({ bypassCSP: true });
});

after(async () => {
  for (const d of desks) await d.close().catch(() => {});
  await browser?.close();
  await server?.dispose();
  await broker?.stop();
});

/** Runs axe's WCAG 2.0/2.1 A and AA rules; returns the violations, one readable line each. */
async function violations(page) {
  await page.addScriptTag({ path: axePath });
  const result = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }),
  );
  return result.violations.flatMap((v) =>
    v.nodes.map((n) => `${v.id}: ${n.target.join(' ')} — ${n.failureSummary.replace(/\s+/g, ' ')}`),
  );
}

for (const [path, viewport] of [
  ['/', { width: 1280, height: 800 }],
  ['/kiosk', { width: 1024, height: 600 }],
]) {
  test(`${path}: no WCAG 2.1 A/AA violations, with a card in every status`, async () => {
    const page = await browser.newPage(viewport);
    // As served, before the wasm runs: what a slow phone shows first.
    await page.route('**/*.wasm', (route) => route.abort());
    await page.goto(`${server.url}${path}`);
    for (const status of ['available', 'busy', 'away', 'offline']) {
      assert.equal(await page.locator(`[data-status="${status}"]`).count(), 1, status);
    }
    assert.deepEqual(await violations(page), [], 'server-rendered page');
    await page.close();

    // Hydrated and live.
    const live = await browser.newPage(viewport);
    await live.goto(`${server.url}${path}`);
    await live.locator('.link[data-link="live"]').waitFor({ timeout: 10_000 });
    assert.deepEqual(await violations(live), [], 'hydrated page');
    await live.close();
  });
}

test('the filters and search are reachable and usable from the keyboard', async () => {
  const page = await browser.newPage();
  await page.goto(`${server.url}/`);
  await page.locator('.link[data-link="live"]').waitFor({ timeout: 10_000 });
  // Tab until the "Busy" filter has focus, then follow it with Enter.
  let focused = '';
  for (let i = 0; i < 20 && focused !== 'Busy'; i += 1) {
    await page.keyboard.press('Tab');
    focused = await page.evaluate(() => document.activeElement?.textContent?.trim() ?? '');
  }
  assert.equal(focused, 'Busy', 'the Busy filter is reachable with Tab');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelectorAll('[data-faculty-id]').length === 1);
  assert.equal(await page.locator('[data-faculty-id]').getAttribute('data-status'), 'busy');
  // The search field: focus it from the keyboard, type, submit with Enter.
  await page.locator('input[name="q"]').focus();
  await page.keyboard.type('noether');
  await page.keyboard.press('Enter');
  await page.waitForURL(/q=noether/);
  await page.close();
});

test('the request form and my requests: no WCAG 2.1 A/AA violations, keyboard only', async () => {
  const page = await browser.newPage({ width: 390, height: 844 });
  await page.goto(`${server.url}/sign-in`);
  await page.locator('html[data-hydrated]').waitFor({ timeout: 15_000 });
  await page.getByLabel('Student number', { exact: true }).fill('S-300');
  await page.getByLabel('PIN', { exact: true }).fill('975310');
  await page.keyboard.press('Enter');
  await page.locator('.account .who').waitFor({ timeout: 10_000 });

  // Someone away: the notice, the colleagues, the hold box; then a refused course code.
  await page.goto(`${server.url}/request/${ids['a11y-away']}`);
  await page.locator('html[data-hydrated]').waitFor({ timeout: 15_000 });
  await page.locator('.notice').waitFor();
  assert.deepEqual(await violations(page), [], 'request form');
  await page.getByLabel('Course code (optional)').fill('nope');
  await page.getByLabel('What would you like to discuss?').fill('Help with the homework please.');
  await page.getByLabel('What would you like to discuss?').press('Tab');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await page.locator('#course-error').waitFor({ timeout: 10_000 });
  assert.deepEqual(await violations(page), [], 'request form with an error');
  await page.getByLabel('Course code (optional)').fill('');
  await page.getByLabel('Course code (optional)').press('Enter');
  await page.waitForURL(/\/me$/);
  await page.locator('.request[data-state="held"]').waitFor({ timeout: 10_000 });
  await page.locator('.link[data-link="live"]').waitFor({ timeout: 10_000 });
  assert.deepEqual(await violations(page), [], 'my requests');
  await page.close();
});
