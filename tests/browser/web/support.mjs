// What the browser tests share: the API as the test sees it beside the browser, polling,
// Chromium launched from Debian's package, and the page's script errors.
//
// The API's URL and token come from PARAVOX_URL and PARAVOX_TOKEN, or the first two
// arguments; the browser from CHROMIUM (default /usr/bin/chromium).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const base = (process.env.PARAVOX_URL || process.argv[2] || '').replace(/\/$/, '');
export const token = process.env.PARAVOX_TOKEN || process.argv[3] || '';
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/** Chromium with a fresh profile and `args` besides the usual; closed after test `t`. */
export async function launch(t, args = []) {
  assert.ok(base && token, 'give the API URL and token (PARAVOX_URL/PARAVOX_TOKEN or arguments)');
  const profile = mkdtempSync(join(tmpdir(), 'paravox-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [...CHROMIUM_ARGS, ...args],
    viewport: { width: 1280, height: 800 },
  });
  t.after(async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  });
  return context;
}

/** Collects `page`'s script errors and console errors (CSP violations among them). */
export function watchProblems(page) {
  const problems = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()} (${message.location().url})`);
  });
  return problems;
}

/** Calls the API with the token; fails the test on an error status. */
export async function api(method, path, body) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${await response.clone().text()}`);
  return response.json();
}

/** Polls `check` (async, returns truthy when done) for up to `ms`. */
export async function eventually(what, check, ms = 5000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 50));
  }
}
