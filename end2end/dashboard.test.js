// The admin dashboard in real browsers: an admin signs in, adds a faculty member, registers their
// desk (the desk unit connects with the password the page showed, and the faculty list follows it
// live), enrols a kiosk; two admins in two browsers edit one faculty member and the second is told,
// with nothing of the first lost; an override set on the edit page shows on the public board; the
// audit page lists it all; a student and a stranger get no dashboard.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { startServer, launchBrowser, ensureScreenshotDir } from './harness.js';
import { connectDesk } from './desk.js';

const PASSWORD = 'a long enough admin password';
let server;
let ada; // one admin's browser
let bob; // another admin's browser
let desk;
let id; // the faculty member added in the first test

async function hydrated(page, path) {
  await page.goto(`${server.url}${path}`);
  await page.locator('html[data-hydrated]').waitFor({ timeout: 15_000 });
}

async function signIn(browser, username) {
  const page = await browser.newPage();
  await hydrated(page, '/admin/sign-in');
  await page.fill('#username', username);
  await page.fill('#password', PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForURL(`${server.url}/admin`, { timeout: 10_000 });
  await page.locator('[data-testid=faculty-table]').waitFor();
  return page;
}

before(async () => {
  server = await startServer();
  server.cliWithInput(`${PASSWORD}\n`, 'admin', 'create', 'ada');
  server.cliWithInput(`${PASSWORD}\n`, 'admin', 'create', 'bob');
  ada = await launchBrowser();
  bob = await launchBrowser();
});

after(async () => {
  await desk?.close().catch(() => {});
  await ada?.close();
  await bob?.close();
  await server?.dispose();
});

test('an admin adds a faculty member and registers a desk that reports with the password shown', async () => {
  const page = await signIn(ada, 'ada');
  // A field error comes back beside its field; nothing is added.
  await page.fill('#new-name', 'Hedy Lamarr');
  await page.fill('#new-department', 'Engineering');
  await page.fill('#new-email', 'not-an-email@nowhere');
  await page.getByRole('button', { name: 'Add', exact: true }).click();
  await page.locator('#email-error', { hasText: 'not an email address' }).waitFor({ timeout: 10_000 });
  // (The browser logs that 400; it was the point.)
  ada.errors.length = 0;
  await page.fill('#new-email', 'hedy@uni.example');
  await page.getByRole('button', { name: 'Add', exact: true }).click();
  await page.waitForURL(/\/admin\/faculty\/\d+$/, { timeout: 10_000 });
  id = Number(new URL(page.url()).pathname.split('/').pop());
  assert.equal(await page.inputValue('#f-email'), 'hedy@uni.example');

  await hydrated(page, '/admin/desks');
  await page.fill('#desk-id', 'hedy-desk');
  await page.selectOption('#desk-faculty', String(id));
  await page.getByRole('button', { name: 'Register', exact: true }).click();
  const shown = page.locator('[data-testid=desk-password]');
  await shown.waitFor({ timeout: 10_000 });
  const password = (await shown.locator('code.secret').textContent()).trim();
  assert.ok(password.length >= 20, password);
  await page.locator('tr[data-desk="hedy-desk"]').waitFor();
  await page.screenshot({ path: join(ensureScreenshotDir(), 'admin-desks.png') });

  // The faculty list follows the desk live.
  const list = await ada.newPage();
  await hydrated(list, '/admin/faculty');
  await list.locator('[data-link=live]').waitFor({ timeout: 10_000 });
  const row = list.locator(`tr[data-faculty-id="${id}"]`);
  assert.equal(await row.getAttribute('data-status'), 'offline');
  desk = await connectDesk(server.mqttUrl, 'consultease', 'hedy-desk', 1, password);
  await desk.state(true);
  await list.locator(`tr[data-faculty-id="${id}"][data-status="available"]`).waitFor({ timeout: 10_000 });
  // Search narrows the list as one types.
  await list.fill('#q', 'nobody-by-this-name');
  await list.locator('.empty', { hasText: 'Nobody matches' }).waitFor();
  await list.fill('#q', 'hedy');
  await row.waitFor();
  await list.screenshot({ path: join(ensureScreenshotDir(), 'admin-faculty.png') });
  await hydrated(page, '/admin/desks');
  assert.equal(await page.locator('tr[data-desk="hedy-desk"]').getAttribute('data-online'), 'true');
  assert.deepEqual(ada.errors, []);
  await list.close();
  await page.close();
});

test('two admins edit one faculty member: the second is told, and nothing of the first is lost', async () => {
  const a = await signIn(ada, 'ada');
  const b = await signIn(bob, 'bob');
  await hydrated(a, `/admin/faculty/${id}`);
  await hydrated(b, `/admin/faculty/${id}`);

  // Different fields: Bob's save meets Ada's newer row; her change comes into his form beside his.
  await a.fill('#f-department', 'Radio');
  await a.getByRole('button', { name: 'Save', exact: true }).click();
  await a.locator('.ok', { hasText: 'Saved (version' }).waitFor({ timeout: 10_000 });
  await b.fill('#f-room', 'E-12');
  await b.getByRole('button', { name: 'Save', exact: true }).click();
  const conflict = b.locator('[data-testid=conflict]');
  await conflict.waitFor({ timeout: 10_000 });
  assert.equal(await b.inputValue('#f-department'), 'Radio', "Ada's change is in Bob's form");
  assert.equal(await b.inputValue('#f-room'), 'E-12', "Bob's change stays");
  assert.equal(await conflict.locator('tr[data-field=department] .theirs').textContent(), 'Radio');
  await b.screenshot({ path: join(ensureScreenshotDir(), 'admin-conflict.png'), fullPage: true });
  await b.getByRole('button', { name: 'Save', exact: true }).click();
  await b.locator('.ok', { hasText: 'Saved (version' }).waitFor({ timeout: 10_000 });
  await conflict.waitFor({ state: 'detached' });

  // The same field: Bob is told which; "Keep mine" saves his over hers, knowingly.
  await hydrated(a, `/admin/faculty/${id}`);
  await a.fill('#f-department', 'Film');
  await a.getByRole('button', { name: 'Save', exact: true }).click();
  await a.locator('.ok').waitFor({ timeout: 10_000 });
  await b.fill('#f-department', 'Music');
  await b.getByRole('button', { name: 'Save', exact: true }).click();
  await conflict.waitFor({ timeout: 10_000 });
  await conflict.locator('tr.differs[data-field=department]').waitFor();
  assert.match(await conflict.textContent(), /You both changed department/);
  await conflict.locator('button', { hasText: 'Keep mine' }).click();
  await b.locator('.ok', { hasText: 'Saved (version' }).waitFor({ timeout: 10_000 });

  const record = await b.evaluate(async (fid) => (await fetch(`/api/admin/faculty/${fid}`)).json(), id);
  assert.deepEqual(
    [record.name, record.department, record.room, record.email],
    ['Hedy Lamarr', 'Music', 'E-12', 'hedy@uni.example'],
  );
  assert.deepEqual(ada.errors, []);
  assert.deepEqual(bob.errors, []);
  await a.close();
  await b.close();
});

test('an override set on the edit page shows on the public board, and clears', async () => {
  const admin = await signIn(ada, 'ada');
  await hydrated(admin, `/admin/faculty/${id}`);
  const board = await bob.newPage();
  await hydrated(board, '/');
  const card = board.locator(`[data-faculty-id="${id}"]`);
  await card.locator('.word', { hasText: 'Available' }).waitFor({ timeout: 10_000 });

  // Office hours, one slot per line (every day here, so that "today" is whatever day the test runs).
  const week = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'].map((d) => `${d} 00:00-24:00 Room E-12`).join('\n');
  await admin.fill('#f-office_hours', 'Someday 10:00-11:00');
  await admin.getByRole('button', { name: 'Save', exact: true }).click();
  await admin.locator('#office_hours-error', { hasText: 'is not a day' }).waitFor({ timeout: 10_000 });
  await admin.fill('#f-office_hours', week);
  await admin.getByRole('button', { name: 'Save', exact: true }).click();
  await admin.locator('.ok', { hasText: 'Saved (version' }).waitFor({ timeout: 10_000 });
  await card.locator('.hours', { hasText: 'Office hours today 00:00–24:00, Room E-12' }).waitFor({ timeout: 10_000 });
  ada.errors.length = 0; // (the 400 of the bad line was the point)

  await admin.selectOption('#ov-status', 'away');
  await admin.fill('#ov-note', 'At a conference');
  await admin.selectOption('#ov-minutes', '0');
  await admin.getByRole('button', { name: 'Set override', exact: true }).click();
  await admin.locator('[data-testid=override-state]', { hasText: 'At a conference' }).waitFor({ timeout: 10_000 });
  await card.locator('.override', { hasText: 'At a conference' }).waitFor({ timeout: 10_000 });
  assert.equal(await card.getAttribute('data-status'), 'away');
  await admin.getByRole('button', { name: 'Clear override', exact: true }).click();
  await card.locator('.word', { hasText: 'Available' }).waitFor({ timeout: 10_000 });
  assert.equal(await card.locator('.override').count(), 0);

  // Deactivated: the card leaves the open board at once; reactivated, it comes back.
  await admin.getByRole('button', { name: 'Deactivate', exact: true }).click();
  await admin.locator('[data-testid=active-state]', { hasText: 'Deactivated' }).waitFor({ timeout: 10_000 });
  await card.waitFor({ state: 'detached', timeout: 10_000 });
  await hydrated(admin, '/admin/faculty');
  await admin.locator('[data-testid=inactive] a', { hasText: 'Hedy Lamarr' }).click();
  await admin.waitForURL(new RegExp(`/admin/faculty/${id}$`));
  await admin.locator('html[data-hydrated]').waitFor({ timeout: 15_000 });
  await admin.getByRole('button', { name: 'Reactivate', exact: true }).click();
  await card.locator('.word', { hasText: 'Available' }).waitFor({ timeout: 10_000 });
  await board.close();
  await admin.close();
});

test('a kiosk enrolled from the dashboard, and the audit page lists every action', async () => {
  const admin = await signIn(ada, 'ada');
  await hydrated(admin, '/admin/kiosks');
  await admin.fill('#kiosk-name', 'Engineering lobby');
  await admin.getByRole('button', { name: 'Get an enrolment code', exact: true }).click();
  const code = (await admin.locator('[data-testid=kiosk-code] code.secret').textContent()).trim();
  assert.match(code, /^[A-Z0-9]{5}-[A-Z0-9]{5}$/);
  // The kiosk's own browser (a third one: no admin session) takes the code.
  const kiosk = await launchBrowser();
  try {
    const k = await kiosk.newPage();
    await hydrated(k, '/kiosk/enrol');
    await k.fill('#code', code);
    await k.click('button[type=submit]');
    await k.waitForURL(`${server.url}/kiosk`, { timeout: 10_000 });
  } finally {
    await kiosk.close();
  }
  await hydrated(admin, '/admin/kiosks');
  await admin.locator('tr[data-kiosk] td', { hasText: 'enrolled' }).waitFor();

  await hydrated(admin, '/admin/audit?action=faculty_edited');
  const rows = admin.locator('[data-testid=audit-table] tbody tr');
  assert.equal(await rows.count(), 5);
  const actors = await rows.locator('td:nth-child(2)').allTextContents();
  assert.ok(actors.includes('admin:ada') && actors.includes('admin:bob'), actors.join());
  const csv = await admin.getAttribute('a[download]', 'href');
  assert.equal(csv, '/api/admin/audit.csv?action=faculty_edited');
  const text = await admin.evaluate(async (href) => (await fetch(href)).text(), csv);
  assert.equal(text.trim().split('\r\n').length, 6, text);
  await hydrated(admin, '/admin/audit');
  const actions = await admin.locator('[data-testid=audit-table] tbody tr').evaluateAll((trs) =>
    trs.map((tr) => tr.dataset.action),
  );
  for (const a of ['faculty_added', 'desk_registered', 'override_set', 'override_cleared', 'kiosk_added', 'kiosk_enrolled', 'signed_in']) {
    assert.ok(actions.some((x) => x.startsWith(a)), `${a} in ${actions.join()}`);
  }
  await admin.screenshot({ path: join(ensureScreenshotDir(), 'admin-audit.png') });
  await hydrated(admin, '/admin/system');
  assert.match(await admin.locator('[data-fact=Database]').textContent(), /sqlite \(schema version \d+\)/);
  assert.equal(await admin.locator('[data-fact="MQTT broker"]').textContent(), 'connected');
  assert.deepEqual(ada.errors, []);
  await admin.close();
});

test('a roster import lists every bad row and writes nothing until confirmed', async () => {
  const admin = await signIn(ada, 'ada');
  await hydrated(admin, '/admin/students');
  const rows = admin.locator('[data-testid=student-table] tbody tr');
  const before = await rows.count();
  await admin.fill(
    '#roster',
    'number,name,email\nR-1,Rosa Student,rosa@uni.example\nR-2,,nobody@uni.example\nR-3,Ravi Student,not-an-email\nR-4,Rhea Student,\n',
  );
  await admin.getByRole('button', { name: 'Check', exact: true }).click();
  const report = admin.locator('[data-testid=import-report]');
  await report.locator('text=4 rows: 2 ready to import, 2 problem(s).').waitFor({ timeout: 10_000 });
  const problems = await admin.locator('[data-testid=import-errors] tbody tr').allTextContents();
  assert.equal(problems.length, 2);
  assert.match(problems[0], /^2name/);
  assert.match(problems[1], /^3email/);
  await admin.screenshot({ path: join(ensureScreenshotDir(), 'admin-import.png'), fullPage: true });
  await hydrated(admin, '/admin/students');
  assert.equal(await rows.count(), before, 'nothing written by the check');

  await admin.fill('#roster', 'number,name,email\nR-1,Rosa Student,rosa@uni.example\nR-2,,nobody@uni.example\nR-4,Rhea Student,\n');
  await admin.getByRole('button', { name: 'Check', exact: true }).click();
  await admin.getByRole('button', { name: 'Import the 2 valid rows, skip the rest', exact: true }).click();
  await report.locator('text=Imported 2 students.').waitFor({ timeout: 10_000 });
  await admin.locator('tr[data-student="R-4"]').waitFor({ timeout: 10_000 });
  assert.equal(await admin.locator('tr[data-student="R-2"]').count(), 0);
  // Search narrows the list as one types.
  await admin.fill('#q', 'rosa');
  await admin.locator('tr[data-student="R-4"]').waitFor({ state: 'detached' });
  assert.equal(await rows.count(), 1);
  assert.deepEqual(ada.errors, []);
  await admin.close();
});

test('an admin cancels a consultation with a reason; the student sees it live', async () => {
  server.cli('student', 'add', '--number', 'S-10', '--name', 'Marie Student');
  server.cliWithInput('975318\n', 'student', 'set-pin', 'S-10');
  const phone = await launchBrowser();
  try {
    const me = await phone.newPage({ width: 390, height: 844 });
    await hydrated(me, '/sign-in');
    await me.fill('#number', 'S-10');
    await me.fill('#pin', '975318');
    await me.click('section:has(#pin) button[type=submit]');
    await me.waitForURL(`${server.url}/`, { timeout: 10_000 });
    await hydrated(me, `/request/${id}`);
    await me.fill('#message', 'Frequency hopping, from first principles');
    await me.getByRole('button', { name: 'Send request', exact: true }).click();
    await me.waitForURL(/\/me$/, { timeout: 10_000 });
    await me.locator('html[data-hydrated]').waitFor({ timeout: 15_000 });
    const mine = me.locator('.request', { hasText: 'Hedy Lamarr' });
    await mine.waitFor({ timeout: 10_000 });

    const admin = await signIn(ada, 'ada');
    await hydrated(admin, '/admin/consultations');
    const row = admin.locator('tr[data-request]', { hasText: 'Marie Student (S-10)' });
    await row.waitFor({ timeout: 10_000 });
    await row.locator('summary').click();
    await row.locator('input[name=reason]').fill('Office closed this afternoon');
    await row.getByRole('button', { name: 'Cancel request', exact: true }).click();
    await row.waitFor({ state: 'detached', timeout: 10_000 });
    await mine.locator('.note', { hasText: 'Office closed this afternoon' }).waitFor({ timeout: 10_000 });
    assert.equal(await mine.getAttribute('data-state'), 'cancelled');
    await hydrated(admin, '/admin/consultations?state=cancelled');
    await admin.locator('tr[data-state=cancelled]', { hasText: 'Office closed this afternoon' }).waitFor();
    assert.deepEqual(phone.errors, []);
    assert.deepEqual(ada.errors, []);
    await admin.close();
  } finally {
    await phone.close();
  }
});

test('a desk moved to another faculty member and retired from the desks page; the board follows', async () => {
  const mary = server.cli('faculty', 'add', '--name', 'Mary Jackson', '--department', 'Engineering').trim();
  const dorothy = server.cli('faculty', 'add', '--name', 'Dorothy Vaughan', '--department', 'Engineering').trim();
  const password = server.cli('desk', 'add', 'mj-desk', '--faculty', mary).match(/^password: (\S+)$/m)[1];
  const unit = await connectDesk(server.mqttUrl, 'consultease', 'mj-desk', 1, password);
  try {
    await unit.state(true);
    const board = await bob.newPage();
    await hydrated(board, '/');
    await board.locator(`[data-faculty-id="${mary}"][data-status=available]`).waitFor({ timeout: 10_000 });
    const admin = await signIn(ada, 'ada');
    await hydrated(admin, '/admin/desks');
    const row = admin.locator('tr[data-desk="mj-desk"]');
    await row.locator('details.move summary').click();
    await row.locator('select[name=faculty_id]').selectOption(dorothy);
    await row.getByRole('button', { name: 'Bind', exact: true }).click();
    await board.locator(`[data-faculty-id="${dorothy}"][data-status=available]`).waitFor({ timeout: 10_000 });
    await board.locator(`[data-faculty-id="${mary}"][data-status=offline]`).waitFor({ timeout: 10_000 });
    await admin.locator('tr[data-desk="mj-desk"] td', { hasText: 'Dorothy Vaughan' }).waitFor({ timeout: 10_000 });
    // (The table was loaded again after the bind: open the fresh row's disclosure.)
    await admin.locator('tr[data-desk="mj-desk"] details.move').evaluate((d) => {
      d.open = true;
    });
    await admin.getByRole('button', { name: 'Retire (deletes its credential)', exact: true }).click();
    await admin.locator('tr[data-desk="mj-desk"]').waitFor({ state: 'detached', timeout: 10_000 });
    await board.locator(`[data-faculty-id="${dorothy}"][data-status=offline]`).waitFor({ timeout: 10_000 });
    assert.deepEqual(ada.errors, []);
    await board.close();
    await admin.close();
  } finally {
    await unit.close().catch(() => {});
  }
});

test('every dashboard page: no WCAG 2.1 A/AA violations (axe-core)', async () => {
  const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
  // axe-core is injected as an inline script: the test, not the app, needs the CSP bypassed.
  const b = await launchBrowser({ bypassCSP: true });
  try {
    const page = await signIn(b, 'ada');
    const found = [];
    for (const path of ['/admin/faculty', `/admin/faculty/${id}`, '/admin/desks', '/admin/students', '/admin/kiosks', '/admin/consultations', '/admin/audit', '/admin/system']) {
      await hydrated(page, path);
      await page.addScriptTag({ path: axePath });
      const result = await page.evaluate(() =>
        window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }),
      );
      for (const v of result.violations) {
        for (const n of v.nodes) found.push(`${path} ${v.id}: ${n.target.join(' ')} — ${n.failureSummary.replace(/\s+/g, ' ')}`);
      }
    }
    assert.deepEqual(found, []);
  } finally {
    await b.close();
  }
});

test('a student and a stranger get no dashboard', async () => {
  server.cli('student', 'add', '--number', 'S-9', '--name', 'Eve Student');
  server.cliWithInput('246810\n', 'student', 'set-pin', 'S-9');
  const stranger = await launchBrowser();
  try {
    const page = await stranger.newPage();
    const res = await page.goto(`${server.url}/admin/faculty`);
    assert.equal(res.status(), 401);
    assert.match(await page.locator('main').textContent(), /sign in as staff/);
    assert.equal(await page.locator('[data-testid=faculty-table]').count(), 0);

    await hydrated(page, '/sign-in');
    await page.fill('#number', 'S-9');
    await page.fill('#pin', '246810');
    await page.click('section:has(#pin) button[type=submit]');
    await page.waitForURL(`${server.url}/`, { timeout: 10_000 });
    for (const path of ['/admin/faculty', `/admin/faculty/${id}`, '/admin/desks', '/admin/kiosks', '/admin/audit', '/admin/system']) {
      const r = await page.goto(`${server.url}${path}`);
      assert.equal(r.status(), 403, path);
      const text = await page.locator('main').textContent();
      assert.ok(!text.includes('Hedy') && !text.includes('hedy-desk'), `${path}: ${text}`);
    }
  } finally {
    await stranger.close();
  }
});
