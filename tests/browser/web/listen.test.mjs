// Listens to a playing stream and feeds a browser endpoint from the microphone, in the
// system Chromium, against a running paravox API that tests/browser/tests/listen.rs sets
// up: stream PARAVOX_PLAYBACK_STREAM (card `listened`) plays a 1 kHz sine at −6 dBFS peak
// to the WAV endpoint `monitored`; stream PARAVOX_CAPTURE_STREAM (card `recorder`) records
// from `browser-mic`, an endpoint with the spec `browser`; Chromium's fake microphone
// plays PARAVOX_FAKE_MICROPHONE (880 Hz). The Rust side then checks what the sink and
// the capture stream got.
//
// Screenshots go to PARAVOX_SCREENSHOTS (default: target/listen-screenshots).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { api, base, eventually, launch, token, watchProblems } from './support.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const shots = process.env.PARAVOX_SCREENSHOTS || resolve(here, '../../target/listen-screenshots');
const playbackId = Number(process.env.PARAVOX_PLAYBACK_STREAM);
const captureId = Number(process.env.PARAVOX_CAPTURE_STREAM);
const fakeMicrophone = process.env.PARAVOX_FAKE_MICROPHONE;
const MEDIA_ARGS = [
  '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
  `--use-file-for-fake-audio-capture=${fakeMicrophone}`, '--autoplay-policy=no-user-gesture-required',
];

/** The tone the stream plays: 1 kHz, −6 dBFS peak, so −9 dBFS RMS. */
const TONE_HZ = 1000;
const TONE_RMS_DBFS = -9.03;
/** Chromium's fake microphone: 880 Hz at −6 dBFS peak. */
const MICROPHONE_HZ = 880;
const MICROPHONE_RMS_DBFS = -9.03;
const LEVEL_TOLERANCE_DB = 2;
const LISTEN_MS = 5000;
const FREEZE_MS = 5000;
const MICROPHONE_MS = 4000;
const SAMPLE_MS = 250;
const MONITOR_FIELDS = ['monitor', 'stream', 'endpoint', 'rate', 'channels', 'sent_frames', 'dropped_frames'];

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

/** What the page's analyser hears now: the strongest frequency and the RMS level. */
function heard(page) {
  return page.evaluate(() => {
    const { analyser, context } = window.paravoxListen;
    // Each reading on its own: smoothing would carry an earlier sound into this one.
    analyser.smoothingTimeConstant = 0;
    const spectrum = new Float32Array(analyser.frequencyBinCount);
    analyser.getFloatFrequencyData(spectrum);
    let strongest = 1;
    for (let bin = 1; bin < spectrum.length; bin++) if (spectrum[bin] > spectrum[strongest]) strongest = bin;
    const wave = new Float32Array(analyser.fftSize);
    analyser.getFloatTimeDomainData(wave);
    let energy = 0;
    for (const sample of wave) energy += sample * sample;
    const binHz = context.sampleRate / analyser.fftSize;
    return {
      hz: strongest * binHz,
      binHz,
      rmsDbfs: energy > 0 ? 10 * Math.log10(energy / wave.length) : -Infinity,
      stats: window.paravoxListen.stats(),
    };
  });
}

/** Asserts that `sound` is `hz` at `rmsDbfs`, within a bin (or 20 Hz) and a few dB. */
function assertTone(sound, hz, rmsDbfs, when) {
  assert.ok(Math.abs(sound.hz - hz) <= Math.max(sound.binHz, 20),
    `${when}: the strongest frequency is ${sound.hz.toFixed(1)} Hz, not ${hz} Hz`);
  assert.ok(Math.abs(sound.rmsDbfs - rmsDbfs) <= LEVEL_TOLERANCE_DB,
    `${when}: the level is ${sound.rmsDbfs.toFixed(2)} dBFS RMS, not about ${rmsDbfs}`);
}

/** Samples what the page hears for `ms`: always `hz` at `rmsDbfs`, and no new dropout. */
async function listenFor(page, ms, hz, rmsDbfs, when) {
  const first = await heard(page);
  const seen = { hz: new Set(), minDbfs: Infinity, maxDbfs: -Infinity, latencyMs: [], first, last: first };
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const sound = await heard(page);
    assertTone(sound, hz, rmsDbfs, when);
    assert.equal(sound.stats.dropouts, first.stats.dropouts, `${when}: a dropout (${JSON.stringify(sound.stats)})`);
    seen.hz.add(sound.hz.toFixed(1));
    seen.minDbfs = Math.min(seen.minDbfs, sound.rmsDbfs);
    seen.maxDbfs = Math.max(seen.maxDbfs, sound.rmsDbfs);
    if (sound.stats.latencyMs !== null) seen.latencyMs.push(sound.stats.latencyMs);
    seen.last = sound;
    await sleep(SAMPLE_MS);
  }
  return seen;
}

function describeHeard(seen) {
  const latency = seen.latencyMs.length > 0
    ? `${Math.min(...seen.latencyMs).toFixed(0)}–${Math.max(...seen.latencyMs).toFixed(0)} ms`
    : 'none';
  return `strongest ${[...seen.hz].join('/')} Hz, ${seen.minDbfs.toFixed(2)} to ${seen.maxDbfs.toFixed(2)} dBFS RMS, ` +
    `dropouts ${seen.last.stats.dropouts}, latency ${latency}, buffered ${seen.last.stats.bufferedFrames} frames ` +
    `at ${seen.last.stats.contextRate} Hz, round trip ${seen.last.stats.rttMs?.toFixed(1)} ms`;
}

async function stats(page) {
  return page.evaluate(() => window.paravoxListen.stats());
}

/** Waits until the page plays what it listens to; fails at once with the panel's reason if it stopped. */
async function playing(page, what) {
  return eventually(what, async () => {
    const now = await stats(page);
    if (now.status === 'ended') assert.fail(`${what}: ${await page.locator('#listen-ended').innerText()}`);
    return now.started ? now : null;
  }, 10000);
}

async function login(page) {
  await page.goto(`${base}/`);
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator(`[data-stream-row="${playbackId}"]`).waitFor();
}

test('the dashboard plays a stream in the page and feeds a browser endpoint from the microphone', async (t) => {
  assert.ok(playbackId >= 0 && captureId >= 0 && fakeMicrophone,
    'PARAVOX_PLAYBACK_STREAM, PARAVOX_CAPTURE_STREAM and PARAVOX_FAKE_MICROPHONE are set');
  mkdirSync(shots, { recursive: true });
  const context = await launch(t, MEDIA_ARGS);
  const page = context.pages()[0] ?? (await context.newPage());
  const problems = watchProblems(page);
  /** Where the server differs from the protocol the page was written to; checked last. */
  const deviations = [];
  const deviate = (text) => {
    deviations.push(text);
    t.diagnostic(`protocol deviation: ${text}`);
  };
  const nav = (name) => page.getByRole('navigation', { name: 'Views' }).getByRole('link', { name, exact: true });
  const streamLabel = `listened · main (stream ${playbackId})`;

  await t.test('each stream row has a Listen button', async () => {
    await login(page);
    const listen = page.getByRole('button', { name: `Listen to ${streamLabel}` });
    assert.equal(await listen.getAttribute('aria-pressed'), 'false');
    assert.ok(await page.locator('#listen').isHidden(), 'no listen panel before Listen');
  });

  await t.test('Listen plays the stream\'s tone in the page, without dropouts', async () => {
    await page.getByRole('button', { name: `Listen to ${streamLabel}` }).click();
    await page.getByRole('heading', { name: `Listening to ${streamLabel}` }).waitFor();
    const started = await playing(page, 'the page to start playing');
    assert.equal(started.player, 'worklet', 'http://127.0.0.1 is a secure context: the AudioWorklet plays');
    assert.equal(started.contextState, 'running', 'the AudioContext runs');
    await sleep(500);
    const later = await stats(page);
    assert.ok(later.contextTime > started.contextTime + 0.3,
      `the AudioContext's time moves (${started.contextTime} then ${later.contextTime})`);
    const info = later.info;
    if (info?.type !== 'listening' || info.target !== `stream ${playbackId}` || info.rate !== 48000 ||
        info.channels !== 2 || info.format !== 's16' || typeof info.monitor !== 'number') {
      deviate(`first monitor message: ${JSON.stringify(info)}`);
    }
    const seen = await listenFor(page, LISTEN_MS, TONE_HZ, TONE_RMS_DBFS, 'listening');
    assert.equal(seen.last.stats.dropouts, 0, 'no dropout once playing started');
    assert.equal(seen.last.stats.malformed, 0, 'every binary message parsed');
    t.diagnostic(`listening for ${LISTEN_MS} ms: ${describeHeard(seen)}`);
    const shown = {
      latency: await page.locator('#listen-latency').innerText(),
      dropouts: await page.locator('#listen-dropouts').innerText(),
      dropped: await page.locator('#listen-dropped').innerText(),
      format: await page.locator('#listen-format').innerText(),
      status: await page.locator('#listen-status').innerText(),
    };
    t.diagnostic(`the panel shows ${JSON.stringify(shown)}`);
    assert.match(shown.latency, /^\d+ ms$/);
    assert.equal(shown.dropouts, '0');
    assert.equal(shown.status, 'Playing');
    assert.match(shown.format, /^48 kHz · 2 ch · s16/);
    const meter = page.locator('#listen-meter');
    assert.ok(Number(await meter.getAttribute('data-peak')) > -10, 'the panel\'s meter shows the tone');
    assert.equal(await page.getByRole('button', { name: `Listen to ${streamLabel}` }).getAttribute('aria-pressed'), 'true');
    const monitors = await api('GET', '/api/monitors');
    assert.equal(monitors.length, 1, `one monitor: ${JSON.stringify(monitors)}`);
    const missing = MONITOR_FIELDS.filter((field) => !(field in monitors[0]));
    if (missing.length > 0) deviate(`GET /api/monitors lacks ${missing.join(', ')}: ${JSON.stringify(monitors[0])}`);
    assert.equal(monitors[0].stream, playbackId);
    assert.equal(monitors[0].endpoint, null);
    await page.screenshot({ path: join(shots, 'listen.png'), fullPage: true });
    await page.locator('#listen').screenshot({ path: join(shots, 'listen-panel.png') });
  });

  await t.test('a frozen tab loses audio for itself only, and plays on after', async () => {
    const before = await stats(page);
    const cdp = await context.newCDPSession(page);
    // Headless Chromium accepts Page.setWebLifecycleState 'frozen' for a visible page but
    // runs it on; pausing its script in the debugger stops the page's main thread as a
    // freeze does (the audio thread plays on), and a heartbeat shows it stood still.
    await page.evaluate(() => {
      window.heartbeat = { last: performance.now(), longest: 0 };
      setInterval(() => {
        const now = performance.now();
        window.heartbeat.longest = Math.max(window.heartbeat.longest, now - window.heartbeat.last);
        window.heartbeat.last = now;
      }, 50);
    });
    await cdp.send('Debugger.enable');
    const { position_frames: position, xruns: xrunsBefore } = await api('GET', `/api/streams/${playbackId}`);
    assert.equal(xrunsBefore, 0, 'the stream did not run dry while it was listened to');
    await cdp.send('Debugger.pause');
    await sleep(FREEZE_MS);
    // The page cannot be asked anything while frozen; the server can.
    const during = await api('GET', '/api/monitors');
    const stream = await api('GET', `/api/streams/${playbackId}`);
    await cdp.send('Debugger.resume');
    await cdp.send('Debugger.disable');
    const stood = await page.evaluate(() => window.heartbeat.longest);
    t.diagnostic(`the page's main thread stood still for ${stood.toFixed(0)} ms`);
    assert.ok(stood >= FREEZE_MS * 0.9, `the page froze (its longest pause was ${stood} ms)`);
    assert.ok(stream.position_frames > position, 'the stream played on while the tab was frozen');
    assert.equal(stream.xruns, xrunsBefore, 'the stream did not run dry while the tab was frozen');
    t.diagnostic(`while frozen the server listed ${JSON.stringify(during)}`);
    await eventually('the page to play again', async () => {
      const now = await stats(page);
      return now.playing && now.receivedFrames > before.receivedFrames + 48000 ? now : null;
    }, 10000);
    // Let a second's monitor_stats report what the server dropped.
    await sleep(1500);
    const seen = await listenFor(page, 2000, TONE_HZ, TONE_RMS_DBFS, 'after the freeze');
    const after = seen.last.stats;
    t.diagnostic(`after the freeze: ${describeHeard(seen)}`);
    t.diagnostic(`the freeze cost: page dropouts ${before.dropouts} → ${after.dropouts}, ` +
      `skipped ${after.skippedFrames} frames to catch up, frame-index gaps ${after.gapFrames} frames, ` +
      `server says sent ${after.serverSentFrames}, dropped ${after.serverDroppedFrames}; ` +
      `received ${before.receivedFrames} → ${after.receivedFrames} frames`);
    const monitors = await api('GET', '/api/monitors');
    t.diagnostic(`GET /api/monitors after the freeze: ${JSON.stringify(monitors)}`);
    if (after.serverDroppedFrames === null) deviate('no monitor_stats message reached the page');
    assert.equal(await page.locator('#listen-status').innerText(), 'Playing');
    await page.locator('#listen').screenshot({ path: join(shots, 'listen-after-freeze.png') });
  });

  await t.test('Stop ends the monitor', async () => {
    await page.getByRole('button', { name: 'Stop', exact: true }).click();
    await page.locator('#listen').waitFor({ state: 'hidden' });
    await eventually('the server to drop the monitor', async () => (await api('GET', '/api/monitors')).length === 0);
    assert.equal(await page.getByRole('button', { name: `Listen to ${streamLabel}` }).getAttribute('aria-pressed'), 'false');
  });

  await t.test('Opus carries the same tone in a fraction of the bandwidth', async () => {
    try {
      await listenInOpus();
    } finally {
      // Whatever happened, the steps after listen in PCM.
      await page.evaluate(() => localStorage.setItem('paravox.listen.codec', 's16'));
    }
  });

  async function listenInOpus() {
    await nav('Overview').click();
    await page.getByRole('button', { name: `Listen to ${streamLabel}` }).click();
    await playing(page, 'PCM to start');
    await page.locator('#listen-codec').selectOption('opus');
    await page.getByRole('heading', { name: `Listening to ${streamLabel}` }).waitFor();
    await eventually('the Opus monitor to start', async () => {
      const now = await stats(page);
      if (now.status === 'ended') assert.fail(await page.locator('#listen-ended').innerText());
      return now.started && now.info?.format === 'opus' ? now : null;
    }, 10000);
    // The decoder's first packets fade in; the analyser's window holds 190 ms.
    await sleep(500);
    const seen = await listenFor(page, 3000, TONE_HZ, TONE_RMS_DBFS, 'listening in Opus');
    assert.equal(seen.last.stats.dropouts, 0, 'no dropout once Opus played');
    assert.equal(seen.last.stats.malformed, 0, 'every Opus packet decoded');
    t.diagnostic(`Opus: ${describeHeard(seen)}`);
    assert.match(await page.locator('#listen-format').innerText(), /^48 kHz · 2 ch · Opus/);
    const monitors = await api('GET', '/api/monitors');
    assert.equal(monitors.length, 1, `one monitor: ${JSON.stringify(monitors)}`);
    await page.locator('#listen').screenshot({ path: join(shots, 'listen-opus.png') });
    // Back to PCM, which the page keeps for the next Listen.
    await page.locator('#listen-codec').selectOption('s16');
    await eventually('PCM again', async () => (await stats(page)).info?.format === 's16');
    await page.getByRole('button', { name: 'Stop', exact: true }).click();
    await page.locator('#listen').waitFor({ state: 'hidden' });
    await eventually('the server to drop the monitor', async () => (await api('GET', '/api/monitors')).length === 0);
  }

  await t.test('Listen on an endpoint plays its mix; another Listen switches', async () => {
    await nav('Endpoints').click();
    await page.getByRole('heading', { name: 'Endpoints' }).waitFor();
    await page.getByRole('button', { name: 'Listen to endpoint monitored' }).click();
    await playing(page, 'the endpoint to play');
    await sleep(300);
    const mix = await listenFor(page, 1500, TONE_HZ, TONE_RMS_DBFS, 'listening to endpoint monitored');
    t.diagnostic(`endpoint monitored: ${describeHeard(mix)}`);
    // browser-mic runs (a capture stream records from it) and, with no browser, is silent.
    await page.getByRole('button', { name: 'Listen to endpoint browser-mic' }).click();
    await page.getByRole('heading', { name: 'Listening to endpoint browser-mic' }).waitFor();
    await playing(page, 'browser-mic to play');
    await sleep(300);
    const silence = await heard(page);
    assert.equal(silence.rmsDbfs, -Infinity, `browser-mic without a browser is silent: ${JSON.stringify(silence)}`);
    const monitors = await eventually('one monitor, on browser-mic', async () => {
      const now = await api('GET', '/api/monitors');
      return now.length === 1 && now[0].endpoint === 'browser-mic' ? now : null;
    });
    assert.equal(monitors[0].stream, null);
    assert.equal(await page.getByRole('button', { name: 'Listen to endpoint monitored' }).getAttribute('aria-pressed'), 'false');
    assert.equal(await page.getByRole('button', { name: 'Listen to endpoint browser-mic' }).getAttribute('aria-pressed'), 'true');
    await page.getByRole('button', { name: 'Stop', exact: true }).click();
    await eventually('no monitor', async () => (await api('GET', '/api/monitors')).length === 0);
  });

  await t.test('Use microphone feeds browser-mic, routed to the capture stream', async () => {
    const control = page.locator('[data-microphone="browser-mic"]');
    assert.match(await control.innerText(), /no browser: delivers silence/);
    const idle = await api('GET', '/api/endpoints/browser-mic');
    if (idle.microphone?.fed !== false || typeof idle.microphone?.received_frames !== 'number') {
      deviate(`GET /api/endpoints/browser-mic before a browser feeds it: microphone ${JSON.stringify(idle.microphone)}`);
    }
    const other = await api('GET', '/api/endpoints/monitored');
    if (other.microphone !== null && other.microphone !== undefined) {
      deviate(`endpoint monitored has microphone ${JSON.stringify(other.microphone)}`);
    }
    await page.getByRole('button', { name: 'Use microphone for browser-mic' }).click();
    await eventually('this browser to feed browser-mic', async () => {
      const alert = page.getByRole('alert');
      if (await alert.isVisible()) assert.fail(await alert.innerText());
      return control.getByText('fed by this browser').isVisible();
    }, 10000);
    const fedAt = Date.now();
    const fed = await eventually('the API to say a browser feeds browser-mic', async () => {
      const now = await api('GET', '/api/endpoints/browser-mic');
      return now.microphone?.fed && now.microphone.received_frames > 0 ? now : null;
    });
    t.diagnostic(`GET /api/endpoints/browser-mic: microphone ${JSON.stringify(fed.microphone)}`);
    const feed = await eventually('the server to count what it received', async () => {
      const now = await page.evaluate(() => window.paravoxListen.microphone());
      return now?.serverReceivedFrames > 0 ? now : null;
    });
    const info = feed.info;
    if (info?.type !== 'microphone' || info.endpoint !== 'browser-mic' || typeof info.rate !== 'number' ||
        typeof info.channels !== 'number') {
      deviate(`first microphone message: ${JSON.stringify(info)}`);
    }
    const meter = page.locator('[data-microphone-meter="browser-mic"]');
    const level = await eventually('the microphone meter to show the 880 Hz file', async () => {
      const peak = Number(await meter.getAttribute('data-peak'));
      return peak > -10 ? peak : null;
    });
    t.diagnostic(`the microphone meter shows ${level} dBFS peak`);
    // Listening to the endpoint the microphone feeds plays the microphone back. Its audio
    // crosses the page's main thread twice, so a dropout here is reported, not judged.
    await page.getByRole('button', { name: 'Listen to endpoint browser-mic' }).click();
    await playing(page, 'browser-mic to play');
    const loop = await eventually('the page to play the microphone back', async () => {
      const sound = await heard(page);
      const clean = Math.abs(sound.hz - MICROPHONE_HZ) <= Math.max(sound.binHz, 20) &&
        Math.abs(sound.rmsDbfs - MICROPHONE_RMS_DBFS) <= LEVEL_TOLERANCE_DB;
      return clean ? sound : null;
    });
    t.diagnostic(`endpoint browser-mic fed by the microphone: ${loop.hz.toFixed(1)} Hz at ` +
      `${loop.rmsDbfs.toFixed(2)} dBFS RMS, ${loop.stats.dropouts} dropouts, latency ${loop.stats.latencyMs?.toFixed(0)} ms`);
    await page.screenshot({ path: join(shots, 'microphone.png'), fullPage: true });
    await page.locator('table.endpoints tr', { has: control }).screenshot({ path: join(shots, 'microphone-row.png') });
    // A phone: the panel and the microphone control stack without sideways scrolling.
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the endpoints view is ${overflow} px wider than a phone`);
    await page.screenshot({ path: join(shots, 'phone-microphone.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.getByRole('button', { name: 'Stop', exact: true }).click();

    await nav('Routing').click();
    await page.getByRole('heading', { name: 'Routing' }).waitFor();
    await page.locator(`[data-link="${captureId}-browser-mic"]`).waitFor({ state: 'attached' });
    const picker = page.getByLabel(`Route of recorder main (stream ${captureId})`);
    assert.equal(await picker.inputValue(), 'browser-mic', 'the capture stream is routed to browser-mic');
    assert.match(await page.locator('[data-route-endpoint="browser-mic"]').innerText(), /fed by this browser/);
    await page.screenshot({ path: join(shots, 'microphone-route.png'), fullPage: true });

    await sleep(Math.max(0, MICROPHONE_MS - (Date.now() - fedAt)));
    const sent = await page.evaluate(() => window.paravoxListen.microphone());
    t.diagnostic(`the page sent ${sent.sentFrames} frames at ${sent.rate} Hz (${sent.droppedChunks} chunks dropped); ` +
      `the server received ${sent.serverReceivedFrames}, dropped ${sent.serverDroppedFrames}`);
    await nav('Endpoints').click();
    await page.getByRole('button', { name: 'Stop microphone for browser-mic' }).click();
    await page.locator('[data-microphone="browser-mic"]').getByText('no browser: delivers silence').waitFor();
    await eventually('the API to say no browser feeds browser-mic', async () =>
      (await api('GET', '/api/endpoints/browser-mic')).microphone?.fed === false);
  });

  await t.test('the event log shows listening and the microphone', async () => {
    await nav('Events').click();
    const log = page.locator('#event-log');
    await log.getByText(`Listening started: stream ${playbackId}`).first().waitFor();
    await log.getByText(`Listening stopped: stream ${playbackId}`).first().waitFor();
    await log.getByText('Listening started: endpoint browser-mic').first().waitFor();
    await log.getByText('A browser\'s microphone feeds endpoint browser-mic').first().waitFor();
    await log.getByText('No browser feeds endpoint browser-mic').first().waitFor();
  });

  await t.test('outside a secure context Listen plays scheduled buffers; the microphone says why not', async () => {
    const insecure = await context.newPage();
    const insecureProblems = watchProblems(insecure);
    await insecure.addInitScript(() => Object.defineProperty(window, 'isSecureContext', { value: false }));
    await login(insecure);
    await insecure.getByRole('button', { name: `Listen to ${streamLabel}` }).click();
    const started = await playing(insecure, 'the fallback to play');
    assert.equal(started.player, 'buffers');
    await sleep(500);
    const seen = await listenFor(insecure, 2000, TONE_HZ, TONE_RMS_DBFS, 'the fallback');
    t.diagnostic(`the fallback: ${describeHeard(seen)}`);
    assert.match(await insecure.locator('#listen-player').innerText(), /scheduled buffers/);
    await insecure.getByRole('button', { name: 'Stop', exact: true }).click();
    await insecure.getByRole('navigation', { name: 'Views' }).getByRole('link', { name: 'Endpoints', exact: true }).click();
    const button = insecure.getByRole('button', { name: 'Use microphone for browser-mic' });
    assert.ok(await button.isDisabled(), 'no microphone without a secure context');
    assert.match(await insecure.locator('[data-microphone="browser-mic"]').innerText(), /needs https or localhost/);
    await insecure.locator('table.endpoints tr', { has: insecure.locator('[data-microphone="browser-mic"]') })
      .screenshot({ path: join(shots, 'microphone-insecure.png') });
    await insecure.close();
    assert.deepEqual(insecureProblems, [], 'no script errors without a secure context');
  });

  assert.deepEqual(problems, [], 'no script errors or CSP violations');
  assert.deepEqual(deviations, [], 'the server speaks the protocol the page was written to');
});
