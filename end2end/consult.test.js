// The consultation loop in a real browser against a desk unit speaking docs/PROTOCOL.md over MQTT:
// a student asks from the board, the request reaches the desk's retained queue, the desk's buttons
// answer it, and the student's page follows every step without a reload. Also: cancelling, a held
// request released when the faculty member comes back, and a rule error shown by its field.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startServer, launchBrowser, ensureScreenshotDir } from './harness.js';
import { connectDesk } from './desk.js';

const PREFIX = 'consultease';
let server;
let browser;
const desks = {};
const ids = {};

before(async () => {
  server = await startServer();
  const people = [
    ['ada', 'Ada Lovelace', 'Computer Science'],
    ['grace', 'Grace Hopper', 'Computer Science'],
    ['emmy', 'Emmy Noether', 'Mathematics'],
    ['sofia', 'Sofia Kovalevskaya', 'Mathematics'],
  ];
  for (const [desk, name, dept] of people) {
    ids[desk] = server.cli('faculty', 'add', '--name', name, '--department', dept).trim();
    // The desk's MQTT password is printed once; the server's broker takes no anonymous desks.
    const password = server.cli('desk', 'add', desk, '--faculty', ids[desk]).match(/^password: (\S+)$/m)[1];
    desks[desk] = await connectDesk(server.mqttUrl, PREFIX, desk, 1, password);
    await desks[desk].state(desk !== 'emmy');
  }
  server.cli('student', 'add', '--number', 'S-200', '--name', 'Alan Student');
  server.cli('student', 'add', '--number', 'S-300', '--name', 'Rosalind Student', '--card', '04C0FFEE');
  server.cliWithInput('135790\n', 'student', 'set-pin', 'S-200');
  browser = await launchBrowser();
});

after(async () => {
  for (const d of Object.values(desks)) await d.close().catch(() => {});
  await browser?.close();
  await server?.dispose();
});

async function hydrated(page, path) {
  await page.goto(`${server.url}${path}`);
  await page.locator('html[data-hydrated]').waitFor({ timeout: 15_000 });
}

/** Signs the student in (the browser keeps the session across its pages and tests). */
async function signIn(page) {
  await hydrated(page, '/sign-in');
  if (await page.getByText('You are signed in as').count()) return;
  await page.getByLabel('Student number', { exact: true }).fill('S-200');
  await page.getByLabel('PIN', { exact: true }).fill('135790');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('.account .who', { hasText: 'Alan Student' }).waitFor({ timeout: 10_000 });
}

const request = (page, who) => page.locator('.request', { hasText: who });

test('a student asks from the board; the desk gets it, acknowledges and accepts; the page follows live', async () => {
  const page = await browser.newPage({ width: 390, height: 844 });
  await signIn(page);
  await hydrated(page, '/');
  const card = page.locator(`[data-faculty-id="${ids.ada}"]`);
  await card.getByRole('link', { name: 'Ask Ada Lovelace for a consultation' }).click();
  await page.getByRole('heading', { name: 'Ask Ada Lovelace' }).waitFor();
  await page.getByLabel('Course code (optional)').fill('CS101');
  await page.getByLabel('What would you like to discuss?').fill('The proof in lecture 4, step 3.');
  await page.getByRole('button', { name: 'Send request' }).click();
  await page.waitForURL(/\/me$/);
  const mine = request(page, 'Ada Lovelace');
  await mine.locator('.state', { hasText: 'Sent' }).waitFor({ timeout: 10_000 });
  assert.match(await mine.locator('.place').innerText(), /1st in line/);
  await page.locator('.link[data-link="live"]').waitFor({ timeout: 10_000 });

  // The desk's retained queue holds the request, with the student's name and message.
  const snap = await desks.ada.waitQueue((q) => q.items.length === 1);
  const item = snap.items[0];
  assert.equal(item.student, 'Alan Student');
  assert.equal(item.course, 'CS101');
  assert.equal(item.message, 'The proof in lecture 4, step 3.');
  assert.equal(String(item.id), await mine.getAttribute('data-request-id'));

  // On the desk's screen: the page says so without a reload.
  await desks.ada.ack(snap.version);
  await mine.locator('.state', { hasText: 'On the desk' }).waitFor({ timeout: 10_000 });
  await desks.ada.reply(item.id, 'accept', 'Come in');
  await mine.locator('.state', { hasText: 'Accepted — go in' }).waitFor({ timeout: 10_000 });
  assert.match(await mine.locator('.note').innerText(), /Come in/);
  await page.screenshot({ path: join(ensureScreenshotDir(), 'request-accepted-phone.png') });
  await desks.ada.reply(item.id, 'done');
  await mine.locator('.state', { hasText: 'Done' }).waitFor({ timeout: 10_000 });
  assert.equal(await mine.getByRole('button', { name: 'Cancel request' }).count(), 0, 'a finished request cannot be cancelled');
  await page.close();
});

test('the board shows how many wait; a cancelled request leaves the desk queue', async () => {
  const page = await browser.newPage();
  await signIn(page);
  await hydrated(page, `/request/${ids.grace}`);
  await page.getByLabel('What would you like to discuss?').fill('Feedback on my project draft.');
  await page.getByRole('button', { name: 'Send request' }).click();
  await page.waitForURL(/\/me$/);
  const mine = request(page, 'Grace Hopper');
  await mine.locator('.state', { hasText: 'Sent' }).waitFor({ timeout: 10_000 });
  await desks.grace.waitQueue((q) => q.items.length === 1);

  // Anyone's board (signed in or not) shows the count, never who.
  const board = await browser.newPage();
  await hydrated(board, '/');
  const card = board.locator(`[data-faculty-id="${ids.grace}"]`);
  await card.locator('.waiting', { hasText: '1 waiting' }).waitFor({ timeout: 10_000 });
  assert.doesNotMatch(await card.innerText(), /Alan/);

  await mine.getByRole('button', { name: 'Cancel request' }).click();
  await mine.locator('.state', { hasText: 'Cancelled' }).waitFor({ timeout: 10_000 });
  await desks.grace.waitQueue((q) => q.items.length === 0);
  // The board follows live: the count goes away without a reload.
  await card.locator('.waiting').waitFor({ state: 'detached', timeout: 10_000 });
  await board.close();
  await page.close();
});

test('asking someone away: colleagues are offered, the request is held and released when they come back', async () => {
  const page = await browser.newPage();
  await signIn(page);
  await hydrated(page, `/request/${ids.emmy}`);
  await page.getByText('Emmy Noether is away right now.').waitFor();
  // An available colleague in the same department is offered; one elsewhere is not.
  await page.getByRole('link', { name: 'Sofia Kovalevskaya' }).waitFor();
  assert.equal(await page.getByRole('link', { name: 'Ada Lovelace' }).count(), 0);
  assert.equal(await page.getByLabel('Hold my request until they are back').isChecked(), true);
  await page.getByLabel('What would you like to discuss?').fill('Question about the exam syllabus.');
  await page.getByRole('button', { name: 'Send request' }).click();
  await page.waitForURL(/\/me$/);
  const mine = request(page, 'Emmy Noether');
  await mine.locator('.state', { hasText: 'Held until they are back' }).waitFor({ timeout: 10_000 });
  assert.equal(desks.emmy.queue?.items?.length ?? 0, 0, 'a held request is on no desk');

  await desks.emmy.state(true);
  await mine.locator('.state', { hasText: 'Sent' }).waitFor({ timeout: 10_000 });
  const snap = await desks.emmy.waitQueue((q) => q.items.length === 1);
  await desks.emmy.reply(snap.items[0].id, 'busy', '10 min');
  await mine.locator('.state', { hasText: 'Not now — please wait' }).waitFor({ timeout: 10_000 });
  await page.screenshot({ path: join(ensureScreenshotDir(), 'my-requests.png') });
  await mine.getByRole('button', { name: 'Cancel request' }).click();
  await mine.locator('.state', { hasText: 'Cancelled' }).waitFor({ timeout: 10_000 });
  await page.close();
});

test('a message the rules refuse comes back by its field, and nothing is placed', async () => {
  const page = await browser.newPage();
  await signIn(page);
  await hydrated(page, `/request/${ids.sofia}`);
  // The browser's own checks stop a short message; a client that skips them meets the server's.
  await page.evaluate(() => document.getElementById('message').removeAttribute('minlength'));
  await page.getByLabel('Course code (optional)').fill('not a course');
  await page.getByLabel('What would you like to discuss?').fill('hi');
  await page.getByRole('button', { name: 'Send request' }).click();
  await page.locator('#course-error').waitFor({ timeout: 10_000 });
  assert.match(await page.locator('#course-error').innerText(), /course code/i);
  await page.getByLabel('Course code (optional)').fill('');
  await page.getByRole('button', { name: 'Send request' }).click();
  await page.locator('#message-error', { hasText: 'at least 10 characters' }).waitFor({ timeout: 10_000 });
  assert.match(page.url(), /\/request\//);
  const mine = await page.evaluate(async () => (await fetch('/api/me/requests')).json());
  assert.equal(mine.requests.filter((r) => r.faculty_name === 'Sofia Kovalevskaya').length, 0);
  await page.close();
});

test('without signing in, the form asks you to sign in', async () => {
  const anonymous = await launchBrowser();
  const page = await anonymous.newPage();
  await hydrated(page, `/request/${ids.ada}`);
  await page.locator('main').getByRole('link', { name: 'sign in' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Send request' }).count(), 0);
  await hydrated(page, '/me');
  await page.getByText('as a student to see your requests').waitFor();
  assert.deepEqual(anonymous.errors, []);
  await anonymous.close();
});

test('at a kiosk each request shows a QR code; the phone that scans it follows the ticket live without signing in', async () => {
  const kiosk = await launchBrowser();
  const phone = await launchBrowser();
  try {
    const code = server.cli('kiosk', 'add', 'Lobby').match(/enrolment code: (\S+)/)[1];
    const k = await kiosk.newPage({ width: 1024, height: 768 });
    await k.goto(`${server.url}/kiosk/enrol`);
    await k.locator('html[data-hydrated]').waitFor({ timeout: 15_000 });
    await k.getByLabel('Enrolment code').fill(code);
    await k.getByRole('button', { name: 'Enrol' }).click();
    await k.waitForURL(/\/kiosk$/);
    await k.getByRole('link', { name: 'Sign in' }).click();
    await k.getByLabel('Card', { exact: true }).focus();
    await k.keyboard.type('04C0FFEE');
    await k.keyboard.press('Enter');
    await k.locator('.account .who', { hasText: 'Rosalind Student' }).waitFor({ timeout: 10_000 });
    await k.goto(`${server.url}/request/${ids.grace}`);
    await k.getByLabel('What would you like to discuss?').fill('X-ray diffraction lab write-up.');
    await k.getByRole('button', { name: 'Send request' }).click();
    await k.waitForURL(/\/me$/);
    const card = request(k, 'Grace Hopper');
    const qr = card.locator('figure.qr');
    await qr.locator('svg').waitFor({ timeout: 10_000 });
    const ticket = (await card.locator('.ticket').innerText()).trim();
    const link = await qr.getAttribute('data-ticket-link');
    assert.match(link, /\/t\/\d+\.\d+\.[0-9a-f]{32}$/);
    await k.screenshot({ path: join(ensureScreenshotDir(), 'kiosk-ticket-qr.png') });

    // The phone (no session) opens the link: the ticket and its progress, not the student's words.
    const p = await phone.newPage({ width: 390, height: 844 });
    await p.goto(`${server.url}${new URL(link).pathname}`);
    await p.locator('html[data-hydrated]').waitFor({ timeout: 15_000 });
    const mine = request(p, 'Grace Hopper');
    await mine.locator('.state', { hasText: 'Sent' }).waitFor({ timeout: 10_000 });
    assert.equal((await mine.locator('.ticket').innerText()).trim(), ticket);
    assert.doesNotMatch(await p.locator('main').innerText(), /X-ray|Rosalind/);
    assert.equal(await mine.getByRole('button', { name: 'Cancel request' }).count(), 0);
    await p.locator('.link[data-link="live"]').waitFor({ timeout: 10_000 });

    // The desk answers; the phone follows without a reload.
    const snap = await desks.grace.waitQueue((q) => q.items.length === 1);
    await desks.grace.ack(snap.version);
    await mine.locator('.state', { hasText: 'On the desk' }).waitFor({ timeout: 10_000 });
    await desks.grace.reply(snap.items[0].id, 'accept', 'Come to room 12');
    await mine.locator('.state', { hasText: 'Accepted' }).waitFor({ timeout: 10_000 });
    await mine.locator('.note', { hasText: 'Come to room 12' }).waitFor();
    await p.screenshot({ path: join(ensureScreenshotDir(), 'ticket-on-phone.png') });
    await desks.grace.reply(snap.items[0].id, 'done');
    await mine.locator('.state', { hasText: 'Done' }).waitFor({ timeout: 10_000 });

    // An altered link opens nothing.
    const altered = `${server.url}${new URL(link).pathname.replace(/.$/, (c) => (c === '0' ? '1' : '0'))}`;
    const res = await p.goto(altered);
    assert.equal(res.status(), 404);
    await p.getByText('This is not a valid ticket link.').waitFor();
    assert.deepEqual(kiosk.errors, []);
    assert.deepEqual(phone.errors.filter((e) => !e.includes('404')), []);
  } finally {
    await kiosk.close();
    await phone.close();
  }
});

test('no console errors', () => {
  // The refused form post answers 4xx: the browser logs that response, and nothing else is expected.
  assert.deepEqual(browser.errors.filter((e) => !e.includes('/api/place_request')), []);
});
