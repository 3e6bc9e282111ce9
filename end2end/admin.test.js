// An admin's status override seen the way students see it: on the public board, live. Set through
// the admin API ("In class", ending in a few seconds), it ranks above the desk, shows its note and
// when it ends, ends by itself and the card goes back to what the desk says; set again until
// cleared, then cleared.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startServer, launchBrowser, ensureScreenshotDir } from './harness.js';
import { connectDesk } from './desk.js';

let server;
let browser;
let desk;
let id;
let cookie;

before(async () => {
  server = await startServer();
  id = server.cli('faculty', 'add', '--name', 'Hedy Lamarr', '--department', 'Engineering').trim();
  const password = server.cli('desk', 'add', 'hedy', '--faculty', id).match(/^password: (\S+)$/m)[1];
  desk = await connectDesk(server.mqttUrl, 'consultease', 'hedy', 1, password);
  await desk.state(true);
  server.cliWithInput('a long enough admin password\n', 'admin', 'create', 'ada');
  const res = await fetch(`${server.url}/api/admin/sign-in`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: server.url },
    body: JSON.stringify({ username: 'ada', password: 'a long enough admin password' }),
  });
  assert.equal(res.status, 204);
  cookie = res.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  browser = await launchBrowser();
});

after(async () => {
  await desk?.close().catch(() => {});
  await browser?.close();
  await server?.dispose();
});

async function override(method, body) {
  const res = await fetch(`${server.url}/api/admin/faculty/${id}/override`, {
    method,
    headers: { 'content-type': 'application/json', origin: server.url, cookie },
    body: body ? JSON.stringify(body) : undefined,
  });
  assert.equal(res.status, 200, await res.text());
}

test('an override shows live on the board, ends by itself, and can be cleared', async () => {
  const page = await browser.newPage();
  await page.goto(`${server.url}/`);
  await page.locator('html[data-hydrated]').waitFor({ timeout: 15_000 });
  const card = page.locator(`[data-faculty-id="${id}"]`);
  await card.locator('.word', { hasText: 'Available' }).waitFor({ timeout: 10_000 });

  await override('PUT', { status: 'busy', note: 'In class', until: Date.now() + 5_000 });
  await card.locator('.word', { hasText: 'Busy' }).waitFor({ timeout: 10_000 });
  await card.locator('.override', { hasText: 'In class · ends in under a minute' }).waitFor();
  await page.screenshot({ path: join(ensureScreenshotDir(), 'board-override.png') });
  // The desk's own report does not undo it.
  await desk.state(true);
  await page.waitForTimeout(500);
  assert.equal(await card.getAttribute('data-status'), 'busy');
  // It ends by itself; the card follows the desk again.
  await card.locator('.word', { hasText: 'Available' }).waitFor({ timeout: 15_000 });
  assert.equal(await card.locator('.override').count(), 0);

  await override('PUT', { status: 'away', note: 'At a conference' });
  await card.locator('.override', { hasText: 'At a conference' }).waitFor({ timeout: 10_000 });
  await override('DELETE');
  await card.locator('.word', { hasText: 'Available' }).waitFor({ timeout: 10_000 });
  assert.deepEqual(browser.errors, []);
  await page.close();
});
