// Drives the dashboard in the system Chromium against a running paravox API that has a
// local card `dash` whose playback stream `main` plays a tone, and a second playback
// endpoint `spare` (crates/api/tests/dashboard.rs sets that up and runs this file).
// PARAVOX_PLUGIN names a well-behaved effect plugin `half` (parameter `volume`) and
// PARAVOX_FAULTY_PLUGIN one called `crash` that traps a few calls after it starts.
//
//   node --test tests/browser/web/dashboard.test.mjs            (PARAVOX_URL, PARAVOX_TOKEN set)
//   node tests/browser/web/dashboard.test.mjs http://127.0.0.1:PORT TOKEN
//
// Screenshots go to PARAVOX_SCREENSHOTS (default: target/dashboard-screenshots).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { api, base, eventually, launch, token, watchProblems } from './support.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const shots = process.env.PARAVOX_SCREENSHOTS || resolve(here, '../../target/dashboard-screenshots');
const SILENT_DB = -60;
const goodPlugin = process.env.PARAVOX_PLUGIN;
const faultyPlugin = process.env.PARAVOX_FAULTY_PLUGIN;

/** Drops a file on the plugin library's drop zone, as a drag from the desktop would. */
async function dropFile(page, name, bytes) {
  await page.locator('#plugin-drop').evaluate((zone, { name, data }) => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([new Uint8Array(data)], name, { type: 'application/wasm' }));
    zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: transfer, bubbles: true, cancelable: true }));
    zone.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
  }, { name, data: [...bytes] });
}

/** The elements reaching past the right edge of the window, to say what overflows. */
async function overhanging(page) {
  return page.evaluate(() => [...document.querySelectorAll('body *')]
    .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5)
    .map((e) => `${e.tagName.toLowerCase()}${e.id ? `#${e.id}` : ''}${e.className ? `.${String(e.className).replace(/ /g, '.')}` : ''}`)
    .slice(0, 8).join(', '));
}

async function peak(meter) {
  return Number(await meter.getAttribute('data-peak'));
}

test('the dashboard shows, controls and logs a playing stream', async (t) => {
  mkdirSync(shots, { recursive: true });
  const context = await launch(t);
  // Every event socket passes through here, so the test can cut one.
  const sockets = [];
  await context.routeWebSocket(/\/api\/events/, (socket) => {
    sockets.push(socket);
    socket.connectToServer();
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const problems = watchProblems(page);

  const [stream] = (await api('GET', '/api/streams')).filter((s) => s.name === 'main');
  assert.ok(stream, 'the server has a stream named main');
  assert.equal(stream.muted, false);

  await t.test('a wrong token shows the problem detail', async () => {
    await page.goto(`${base}/`);
    await page.getByLabel('API token').fill('not-the-token');
    await page.getByRole('button', { name: 'Log in' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.match(await alert.innerText(), /token/i);
    assert.ok(await page.getByLabel('API token').isVisible(), 'still on the login form');
    await page.screenshot({ path: join(shots, 'login-error.png') });
    // A 401 here is the test's own doing, not a page fault.
    problems.length = 0;
  });

  await t.test('logging in shows the card and the stream with a moving meter', async () => {
    await page.getByLabel('API token').fill(token);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'dash' }).waitFor();
    assert.ok(await page.getByRole('alert').isHidden(), 'the error is gone');
    const row = page.locator(`[data-stream-row="${stream.id}"]`);
    await row.waitFor();
    const text = await row.innerText();
    assert.match(text, /running/);
    assert.match(text, /s16_le/);
    assert.match(text, /48 kHz/);
    assert.match(text, /stereo/);
    assert.match(text, /1200 frames \(25\.0 ms\)/);
    assert.match(text, /\d+\.\d ms/, 'latency');
    await page.getByRole('status').filter({ hasText: 'Live' }).waitFor();
    const meter = row.getByRole('meter');
    const loud = await eventually('the meter to show the tone', async () => {
      const level = await peak(meter);
      return level > SILENT_DB ? level : null;
    });
    assert.ok(loud > -20, `a −6 dBFS tone reads ${loud} dB`);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('paravox.token')), token);
    const clipped = await page.evaluate(() => [...document.querySelectorAll('.table-wrap')]
      .some((wrap) => wrap.scrollWidth > wrap.clientWidth));
    assert.equal(clipped, false, 'the stream table fits a laptop screen');
    await page.screenshot({ path: join(shots, 'overview.png'), fullPage: true });
  });

  await t.test('muting silences the meter and the API reports it', async () => {
    await page.getByRole('link', { name: 'main' }).click();
    await page.getByRole('heading', { name: /main/ }).waitFor();
    const mute = page.getByRole('button', { name: 'Mute' });
    assert.equal(await mute.getAttribute('aria-pressed'), 'false');
    await mute.click();
    await eventually('the mute button to be pressed', async () =>
      (await mute.getAttribute('aria-pressed')) === 'true');
    const meter = page.locator('.detail-meter').getByRole('meter');
    await eventually('the meter to fall silent', async () => (await peak(meter)) <= SILENT_DB);
    assert.equal((await api('GET', `/api/streams/${stream.id}`)).muted, true);
    await mute.click();
    await eventually('the API to report unmuted', async () =>
      (await api('GET', `/api/streams/${stream.id}`)).muted === false);
    await eventually('the meter to move again', async () => (await peak(meter)) > SILENT_DB);
  });

  await t.test('the volume slider works from the keyboard', async () => {
    const slider = page.getByLabel('Volume', { exact: true });
    await slider.focus();
    for (let i = 0; i < 12; i++) await page.keyboard.press('ArrowLeft');
    await eventually('the API to report −6 dB', async () => {
      const now = await api('GET', `/api/streams/${stream.id}`);
      return now.volume_db.every((db) => Math.abs(db + 6) < 0.01);
    });
    assert.equal(await page.locator('#volume-value').innerText(), '−6.0 dB');
    assert.ok(await slider.evaluate((element) => element === document.activeElement), 'focus stays on the slider');
    await page.keyboard.press('End');
    await eventually('the API to report +24 dB', async () =>
      (await api('GET', `/api/streams/${stream.id}`)).volume_db[0] === 24);
    await page.keyboard.press('Home');
    await eventually('the API to report −120 dB', async () =>
      (await api('GET', `/api/streams/${stream.id}`)).volume_db[0] === -120);
    await slider.fill('-6');
    await eventually('the API to report −6 dB again', async () =>
      (await api('GET', `/api/streams/${stream.id}`)).volume_db[0] === -6);
  });

  await t.test('the route picker offers playback endpoints and routes', async () => {
    const picker = page.getByLabel(/Route/);
    const options = await picker.locator('option').allInnerTexts();
    assert.ok(options.some((o) => o.startsWith('spare')), `options: ${options}`);
    assert.ok(!options.some((o) => o.startsWith('tone')), 'no capture endpoint offered');
    await picker.selectOption('spare');
    await eventually('the API to report the route', async () =>
      (await api('GET', `/api/streams/${stream.id}`)).route === 'spare');
    await page.locator('.facts').getByText('spare', { exact: true }).waitFor();
    await page.screenshot({ path: join(shots, 'stream-detail.png'), fullPage: true });
    await picker.selectOption('');
    await eventually('the API to report the default route', async () =>
      (await api('GET', `/api/streams/${stream.id}`)).route === null);
  });

  await t.test('the endpoints view lists every endpoint', async () => {
    await page.getByRole('navigation', { name: 'Views' }).getByRole('link', { name: 'Endpoints' }).click();
    await page.getByRole('heading', { name: 'Endpoints' }).waitFor();
    const table = await page.locator('table.endpoints').innerText();
    for (const name of ['sink', 'spare', 'tone']) assert.match(table, new RegExp(name));
    // Endpoints with no running stream sleep, and the table says so.
    assert.match(table, /idle|closed/);
    await page.screenshot({ path: join(shots, 'endpoints.png'), fullPage: true });
  });

  await t.test('the event log shows the changes', async () => {
    await page.getByRole('link', { name: 'Events' }).click();
    await page.getByRole('heading', { name: 'Event log' }).waitFor();
    const log = page.locator('#event-log');
    await log.getByText(/volume −6\.0 dB/).first().waitFor();
    await log.getByText(/muted/).first().waitFor();
    await log.getByText(/routed to spare/).first().waitFor();
    // A change made elsewhere arrives live.
    await api('PATCH', `/api/streams/${stream.id}`, { volume_db: -3 });
    await log.getByText(/volume −3\.0 dB/).first().waitFor();
    await page.screenshot({ path: join(shots, 'events.png'), fullPage: true });
  });

  await t.test('a cut event socket reconnects and stays live', async () => {
    const before = sockets.length;
    assert.ok(before >= 1, 'the page opened the event socket');
    const status = page.getByRole('status').filter({ hasText: /Live|Offline|Connecting/ });
    await sockets.at(-1).close({ code: 1012, reason: 'test restart' });
    await status.filter({ hasText: /Offline, retrying/ }).waitFor();
    await status.filter({ hasText: 'Live' }).waitFor();
    assert.equal(sockets.length, before + 1, 'one new connection');
    await api('PATCH', `/api/streams/${stream.id}`, { volume_db: -4 });
    await page.locator('#event-log').getByText(/volume −4\.0 dB/).first().waitFor();
  });

  const nav = (name) => page.getByRole('navigation', { name: 'Views' }).getByRole('link', { name, exact: true });
  const streamChain = async () => (await api('GET', `/api/streams/${stream.id}`)).chain;

  await t.test('the plugin library lists the shipped plugins and installs an upload', async () => {
    assert.ok(goodPlugin && faultyPlugin, 'PARAVOX_PLUGIN and PARAVOX_FAULTY_PLUGIN are set');
    await nav('Plugins').click();
    await page.getByRole('heading', { name: 'Plugins', exact: true }).waitFor();
    const gain = page.locator('[data-plugin="gain"]');
    await gain.waitFor();
    assert.match(await gain.innerText(), /shipped/);
    // The keyboard path: the button opens the file chooser.
    const [chooser] = await Promise.all([
      page.waitForEvent('filechooser'),
      page.getByRole('button', { name: 'Choose a .wasm file…' }).press('Enter'),
    ]);
    await chooser.setFiles(goodPlugin);
    await page.getByRole('status').filter({ hasText: 'Installed half 1.0.0' }).waitFor();
    const half = page.locator('[data-plugin="half"]');
    await half.waitFor();
    const text = await half.innerText();
    assert.match(text, /1\.0\.0/);
    assert.match(text, /installed/);
    assert.match(text, /volume/);
    assert.match(text, /0 to 1/);
    assert.match(text, /0 faults/);
    const installed = await api('GET', '/api/plugins/half');
    assert.equal(installed.source, 'installed');
    await page.screenshot({ path: join(shots, 'plugins.png'), fullPage: true });
  });

  await t.test('a bad upload shows the plugin host\'s reason', async () => {
    await dropFile(page, 'broken.wasm', Buffer.from('this is not WebAssembly'));
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.match(await alert.innerText(), /does not compile/);
    await page.getByRole('button', { name: 'Dismiss error' }).click();
    // The browser logs the 422 this test asked for; it is not a page fault.
    problems.length = 0;
  });

  await t.test('a plugin goes into the stream chain; its parameter and bypass reach the API', async () => {
    await page.goto(`${base}/#/stream/${stream.id}`);
    await page.getByRole('heading', { name: 'Plugin chain' }).waitFor();
    await page.getByLabel('Effect plugin').selectOption('half');
    await page.getByRole('button', { name: 'Add to chain' }).click();
    const chain = await eventually('the API to report the chain', async () => {
      const now = await streamChain();
      return now.length === 1 ? now : null;
    });
    assert.equal(chain[0].plugin, 'half');
    assert.equal(chain[0].state, 'active');
    const stage = page.locator('[data-stage="0"]');
    await stage.locator('[data-state="active"]').waitFor();
    const slider = page.getByLabel('volume of half (stage 1)');
    await slider.focus();
    await page.keyboard.press('End');
    await eventually('the API to report volume 1', async () =>
      (await streamChain())[0].params.volume === 1);
    const bypass = page.getByRole('button', { name: 'Bypass half (stage 1)' });
    await bypass.click();
    await eventually('the API to report the stage bypassed', async () => {
      const [first] = await streamChain();
      return first.bypass && first.state === 'bypassed';
    });
    await eventually('the bypass button to be pressed', async () =>
      (await page.getByRole('button', { name: 'Bypass half (stage 1)' }).getAttribute('aria-pressed')) === 'true');
    await page.getByRole('button', { name: 'Bypass half (stage 1)' }).click();
    await eventually('the stage to run again', async () => (await streamChain())[0].state === 'active');
    await page.screenshot({ path: join(shots, 'stream-chain.png'), fullPage: true });
  });

  await t.test('an injected plugin fault shows on the stage, in the library and in the log', async () => {
    await nav('Plugins').click();
    await page.locator('[data-plugin="gain"]').waitFor();
    await dropFile(page, 'crash.wasm', readFileSync(faultyPlugin));
    await page.getByRole('status').filter({ hasText: 'Installed crash 1.0.0' }).waitFor();
    await page.goto(`${base}/#/stream/${stream.id}`);
    await page.getByLabel('Effect plugin').selectOption('crash');
    await page.getByRole('button', { name: 'Add to chain' }).click();
    // crash joins as stage 2, after half; move it first to check reordering too.
    await page.getByRole('button', { name: 'Move crash (stage 2) up' }).click();
    await eventually('the API to report the new order', async () => {
      const now = await streamChain();
      return now.map((s) => s.plugin).join() === 'crash,half';
    });
    const faulted = page.locator('[data-stage="0"] [data-state="faulted"]');
    await faulted.waitFor();
    assert.match(await page.locator('[data-stage="0"]').innerText(), /the plugin trapped/);
    assert.equal((await streamChain())[1].state, 'active', 'the other stage runs on');
    await page.screenshot({ path: join(shots, 'stream-fault.png'), fullPage: true });
    const position = (await api('GET', `/api/streams/${stream.id}`)).position_frames;
    await eventually('the stream to play on', async () =>
      (await api('GET', `/api/streams/${stream.id}`)).position_frames > position);
    await nav('Events').click();
    await page.locator('#event-log').getByText(/plugin crash \(effect\) disabled: the plugin trapped/i).first().waitFor();
    await page.locator('#event-log').getByText(/plugin chain swapped/).first().waitFor();
    await page.screenshot({ path: join(shots, 'events-fault.png'), fullPage: true });
    await nav('Plugins').click();
    await page.locator('[data-plugin="crash"] .faults.has-faults').waitFor();
    // Each chain the plugin was built into faulted once (it was added, then moved).
    const { faults } = await api('GET', '/api/plugins/crash');
    assert.ok(faults >= 1, `the API counts ${faults} faults`);
    assert.match(await page.locator('[data-plugin="crash"]').innerText(), new RegExp(`${faults} faults?\\b`));
    assert.match(await page.locator('[data-plugin="crash"]').innerText(), new RegExp(`stream ${stream.id}`));
    // Take both stages out again from the keyboard, then delete the faulty plugin.
    await page.goto(`${base}/#/stream/${stream.id}`);
    await page.getByRole('button', { name: 'Remove crash (stage 1)' }).press('Enter');
    await eventually('one stage left', async () => (await streamChain()).length === 1);
    await page.getByRole('button', { name: 'Remove half (stage 1)' }).click();
    await eventually('an empty chain', async () => (await streamChain()).length === 0);
    await nav('Plugins').click();
    await page.getByRole('button', { name: 'Delete plugin crash' }).click();
    await page.locator('[data-plugin="crash"]').waitFor({ state: 'detached' });
    assert.ok(!(await api('GET', '/api/plugins')).some((p) => p.name === 'crash'));
  });

  await t.test('the routing view draws each stream to its endpoint and re-routes', async () => {
    await nav('Routing').click();
    await page.getByRole('heading', { name: 'Routing' }).waitFor();
    await page.locator(`[data-link="${stream.id}-sink"]`).waitFor({ state: 'attached' });
    const picker = page.getByLabel(`Route of dash main (stream ${stream.id})`);
    await picker.selectOption('spare');
    await eventually('the API to report the route', async () =>
      (await api('GET', `/api/streams/${stream.id}`)).route === 'spare');
    await page.locator(`[data-link="${stream.id}-spare"]`).waitFor({ state: 'attached' });
    await page.screenshot({ path: join(shots, 'routing.png'), fullPage: true });
    await page.getByLabel(`Route of dash main (stream ${stream.id})`).selectOption('');
    await eventually('the API to report the default route', async () =>
      (await api('GET', `/api/streams/${stream.id}`)).route === null);
  });

  await t.test('a phone-sized screen gets one column without sideways scrolling', async () => {
    // A chain with a parameter slider and a bypassed stage, so the detail view has one.
    await api('PATCH', `/api/streams/${stream.id}`, {
      chain: [{ plugin: 'half', params: { volume: 0.5 } }, { plugin: 'gain', bypass: true }],
    });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.getByRole('heading', { name: 'dash' }).waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow} px wider than the screen`);
    await page.screenshot({ path: join(shots, 'phone-overview.png'), fullPage: true });
    await page.getByRole('link', { name: 'main' }).click();
    await page.getByLabel('Volume', { exact: true }).waitFor();
    await page.locator('[data-stage="1"] [data-state="bypassed"]').waitFor();
    const detailOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(detailOverflow <= 0, `the detail view is ${detailOverflow} px wider than the screen: ${await overhanging(page)}`);
    await page.screenshot({ path: join(shots, 'phone-stream-detail.png'), fullPage: true });
    for (const view of ['Plugins', 'Routing']) {
      await nav(view).click();
      await page.getByRole('heading', { name: view, exact: true }).waitFor();
      await page.locator(view === 'Plugins' ? '[data-plugin="half"]' : '.route-graph').first().waitFor();
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the ${view} view is ${overflow} px wider than the screen: ${await overhanging(page)}`);
      await page.screenshot({ path: join(shots, `phone-${view.toLowerCase()}.png`), fullPage: true });
    }
    await api('PATCH', `/api/streams/${stream.id}`, { chain: [] });
    await nav('Overview').click();
    await page.getByRole('link', { name: 'main' }).click();
  });

  await t.test('a reload keeps the session; logging out forgets the token', async () => {
    await page.reload();
    await page.getByRole('heading', { name: /main/ }).waitFor();
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByLabel('API token').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('paravox.token')), null);
  });

  assert.deepEqual(problems, [], 'no script errors or CSP violations');
});
