// Shared helpers for the browser tests: a throw-away server on a free port and headless Chromium.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const screenshotDir = join(here, '..', 'docs', 'screenshots');

const BIN = process.env.CONSULTEASE_BIN;
const SITE = process.env.CONSULTEASE_SITE_ROOT;
if (!BIN || !SITE) {
  throw new Error('CONSULTEASE_BIN and CONSULTEASE_SITE_ROOT must be set: run the browser tests with `cargo xtask test`');
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Runs `consultease broker` (the embedded broker alone) on a free port: it outlives server
 * restarts, as a real broker would. */
export async function startBroker() {
  const port = await freePort();
  const proc = spawn(BIN, ['broker', '--mqtt-bind', `127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout.on('data', (d) => (log += d));
  proc.stderr.on('data', (d) => (log += d));
  const deadline = Date.now() + 15_000;
  while (!log.includes('listening')) {
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`broker did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

/** Starts `consultease serve` (HTTP and, unless `--mqtt-url` is given, the embedded MQTT broker on
 * free ports; a fresh SQLite database); waits until ready. */
export async function startServer(extraArgs = []) {
  const dir = mkdtempSync(join(tmpdir(), 'consultease-e2e-'));
  const port = await freePort();
  const mqttPort = await freePort();
  const server = {
    dir,
    port,
    mqttPort,
    mqttUrl: `mqtt://127.0.0.1:${mqttPort}`,
    url: `http://127.0.0.1:${port}`,
    databaseUrl: `sqlite://${dir}/db.sqlite`,
    proc: null,
    log: '',
    async start() {
      const args = ['serve', '--bind', `127.0.0.1:${port}`, '--site-root', SITE];
      if (!extraArgs.includes('--mqtt-bind')) args.push('--mqtt-bind', `127.0.0.1:${mqttPort}`);
      this.proc = spawn(BIN, [...args, ...extraArgs], {
        cwd: dir,
        env: { ...process.env, CONSULTEASE_DATABASE_URL: this.databaseUrl, CONSULTEASE_LOG: 'info' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      this.proc.stdout.on('data', (d) => (this.log += d));
      this.proc.stderr.on('data', (d) => (this.log += d));
      await waitReady(this);
    },
    async stop() {
      if (!this.proc || this.proc.exitCode !== null) return;
      const exited = new Promise((r) => this.proc.once('exit', r));
      this.proc.kill('SIGTERM');
      await exited;
    },
    /** Runs an admin CLI command against this server's database; returns its output. */
    cli(...args) {
      return execFileSync(BIN, args, { env: { ...process.env, CONSULTEASE_DATABASE_URL: this.databaseUrl } }).toString();
    },
    /** The same, with `input` on standard input (passwords and PINs are never flags). */
    cliWithInput(input, ...args) {
      return execFileSync(BIN, args, {
        input,
        env: { ...process.env, CONSULTEASE_DATABASE_URL: this.databaseUrl },
      }).toString();
    },
    async dispose() {
      await this.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await server.start();
  return server;
}

async function waitReady(server) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (server.proc.exitCode !== null) throw new Error(`server exited early:\n${server.log}`);
    try {
      const res = await fetch(`${server.url}/readyz`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server not ready after 30 s:\n${server.log}`);
}

/** Headless Debian Chromium with the flags this machine needs; collects console errors. With
 * `javaScriptEnabled: false` it is a browser without JavaScript (pages must work from plain HTML).
 * `bypassCSP` lets a test inject its own script (axe-core): the app's pages never need it. */
export async function launchBrowser({ javaScriptEnabled = true, bypassCSP = false } = {}) {
  const userDataDir = mkdtempSync(join(tmpdir(), 'consultease-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    javaScriptEnabled,
    bypassCSP,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const errors = [];
  const watch = (page) => {
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(`console: ${msg.text()} (${msg.location().url})`);
    });
    page.on('pageerror', (err) => errors.push(`page error: ${err.message}`));
  };
  context.on('page', watch);
  context.pages().forEach(watch);
  return {
    context,
    errors,
    async newPage(viewport = { width: 1280, height: 800 }) {
      const page = await context.newPage();
      await page.setViewportSize(viewport);
      return page;
    },
    async close() {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

export function ensureScreenshotDir() {
  mkdirSync(screenshotDir, { recursive: true });
  return screenshotDir;
}
