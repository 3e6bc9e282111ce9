// Signing in and out in a real browser: students (number + PIN, and card taps at an enrolled
// kiosk), staff, the kiosk's idle sign-out, and the same forms without JavaScript. Every page runs
// under the server's CSP: a blocked script would be a console error, and any console error fails.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startServer, launchBrowser, ensureScreenshotDir } from './harness.js';

let server;
let browser;

before(async () => {
  server = await startServer(['--kiosk-idle', '6s']);
  server.cliWithInput('staff password 1\n', 'admin', 'create', 'ada');
  server.cli('student', 'add', '--number', 'S-100', '--name', 'Grace Student', '--card', '04:A1:B2:C3');
  server.cliWithInput('246810\n', 'student', 'set-pin', 'S-100');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.dispose();
});

async function hydrated(page, path) {
  const wasm = page.waitForResponse((r) => r.url().endsWith('.wasm'));
  await page.goto(`${server.url}${path}`);
  assert.equal((await wasm).status(), 200);
  await page.locator('html[data-hydrated]').waitFor({ timeout: 15_000 });
}

test('a student signs in with number and PIN, sees a wrong PIN refused, and signs out', async () => {
  const page = await browser.newPage({ width: 390, height: 844 });
  await hydrated(page, '/');
  await page.getByRole('link', { name: 'Sign in' }).click();
  await page.waitForURL(/\/sign-in$/);
  await page.getByLabel('Student number', { exact: true }).fill('S-100');
  await page.getByLabel('PIN', { exact: true }).fill('111111');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'sign-in details are not right' }).waitFor();
  await page.getByLabel('PIN', { exact: true }).fill('246810');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('.account .who', { hasText: 'Grace Student' }).waitFor({ timeout: 10_000 });
  await page.screenshot({ path: join(ensureScreenshotDir(), 'signed-in-phone.png') });
  // Sign out: the session ends on the server, the page reloads clean.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('link', { name: 'Sign in' }).waitFor();
  const me = await page.evaluate(async () => (await fetch('/api/me')).status);
  assert.equal(me, 401);
  assert.deepEqual(unexpected(), []);
});

test('staff sign in on their own page', async () => {
  const page = await browser.newPage();
  await hydrated(page, '/admin/sign-in');
  await page.getByLabel('User name').fill('ada');
  await page.getByLabel('Password').fill('staff password 1');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('.account .who', { hasText: 'ada' }).waitFor({ timeout: 10_000 });
  const cookies = await page.context().cookies(server.url);
  const session = cookies.find((c) => c.name === '__Host-ce_session');
  assert.ok(session, 'the __Host- session cookie is stored over http://127.0.0.1');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Strict');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('link', { name: 'Sign in' }).waitFor();
  assert.deepEqual(unexpected(), []);
});

test('without JavaScript the forms still sign in, refuse, and sign out', async () => {
  const noJs = await launchBrowser({ javaScriptEnabled: false });
  const page = await noJs.newPage();
  await page.goto(`${server.url}/sign-in`);
  await page.waitForTimeout(1500);
  assert.equal(await page.locator('html[data-hydrated]').count(), 0, 'no script ran: the page never hydrated');
  await page.getByLabel('Student number', { exact: true }).fill('S-100');
  await page.getByLabel('PIN', { exact: true }).fill('000000');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'sign-in details are not right' }).waitFor();
  await page.getByLabel('Student number', { exact: true }).fill('S-100');
  await page.getByLabel('PIN', { exact: true }).fill('246810');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${server.url}/`);
  await page.locator('.account .who', { hasText: 'Grace Student' }).waitFor();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('link', { name: 'Sign in' }).waitFor();
  await noJs.close();
});

test('an enrolled kiosk takes a card tap, counts down when idle, and signs out clearing the screen', async () => {
  const out = server.cli('kiosk', 'add', 'Lobby');
  const code = out.match(/enrolment code: (\S+)/)[1];
  const page = await browser.newPage({ width: 1024, height: 600 });
  await hydrated(page, '/kiosk/enrol');
  await page.getByLabel('Enrolment code').fill(code);
  await page.getByRole('button', { name: 'Enrol' }).click();
  await page.waitForURL(/\/kiosk$/);
  await page.getByRole('link', { name: 'Sign in' }).click();
  await page.waitForURL(/\/sign-in$/);
  // The RFID reader is a keyboard: it types the UID and Enter into the focused card field.
  await page.getByLabel('Card', { exact: true }).waitFor();
  await page.getByLabel('Card', { exact: true }).focus();
  await page.keyboard.type('04A1B2C3');
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/kiosk$/);
  await page.locator('.account .who', { hasText: 'Grace Student' }).waitFor({ timeout: 10_000 });
  // With a 6 s idle limit the countdown shows at once; a touch starts it again.
  const countdown = page.getByTestId('idle-countdown');
  await countdown.waitFor();
  await page.screenshot({ path: join(ensureScreenshotDir(), 'kiosk-idle-countdown.png') });
  await page.waitForTimeout(3000);
  await page.mouse.click(10, 300);
  const left = Number(await countdown.locator('strong').textContent());
  assert.ok(left >= 5, `the countdown restarted (${left} s left)`);
  // Then nobody touches it: signed out, reloaded, nothing of the student left.
  await page.locator('.account .who').waitFor({ state: 'detached', timeout: 15_000 });
  await page.getByRole('link', { name: 'Sign in' }).waitFor();
  assert.equal(await page.getByText('Grace Student').count(), 0);
  const me = await page.evaluate(async () => (await fetch('/api/me')).status);
  assert.equal(me, 401, 'the server-side session ended too');
  assert.deepEqual(unexpected(), []);
});

function unexpected() {
  // A refused sign-in answers 401: the browser logs that response, and nothing else is expected.
  return browser.errors.filter((e) => !(e.includes('401') || e.includes('Unauthorized')));
}
