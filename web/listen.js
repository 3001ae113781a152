// Listening to a stream or an endpoint in the page, and feeding a `browser` capture endpoint
// from this browser's microphone.
//
// Listening opens `/api/…/listen`, a WebSocket of ~20 ms binary messages (a 16-byte header,
// then interleaved samples). The page converts them to f32 and hands them to a player: the
// AudioWorklet in listen-worklet.js or, outside a secure context (where neither worklets nor
// the microphone exist), AudioBufferSourceNodes scheduled back to back. The microphone runs
// through mic-worklet.js to `/api/endpoints/{name}/microphone` as s16 mono at the context's
// rate. `window.paravoxListen` shows tests the context, an analyser on what plays, and counters.

import { $, h, levelMeter, render, setMeter, showError, state } from './app.js';

const HEADER_BYTES = 16;
const FORMAT_S16 = 1;
const FORMAT_F32 = 2;
const FORMAT_OPUS = 3;
const FORMAT_NAMES = { [FORMAT_S16]: 's16', [FORMAT_F32]: 'f32', [FORMAT_OPUS]: 'Opus' };
/** What the page asks the server for: PCM needs nothing, Opus needs WebCodecs. */
const CODECS = { s16: 'PCM (exact)', opus: 'Opus (less bandwidth)' };
const CODEC_KEY = 'paravox.listen.codec';
/** The rates an AudioBuffer accepts; a header outside them is malformed. */
const RATE_MIN = 3000;
const RATE_MAX = 768000;
/** The fallback player's jitter buffer, as listen-worklet.js keeps its own. */
const START_SECONDS = 0.06;
const START_STEP_SECONDS = 0.02;
const START_MAX_SECONDS = 0.15;
const MAX_SECONDS = 0.25;
const PING_MS = 1000;
const PANEL_UPDATE_MS = 200;
const ANALYSER_FFT_SIZE = 8192;
const SILENT_DB = -120;
/** Microphone chunks of 10 ms; past half a second not yet sent, chunks are dropped. */
const MICROPHONE_CHUNK_SECONDS = 0.01;
const MICROPHONE_BACKLOG_SECONDS = 0.5;
const MICROPHONE_CONSTRAINTS = {
  audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
};
/** Refusals a WebSocket cannot show the page; a plain GET of the same URL tells why. */
const REFUSALS = [401, 404, 409, 503];

// ---- The page's audio ----------------------------------------------------------------

/** One AudioContext for listening and the microphone, made at the first click. */
const audio = { context: null, output: null, analyser: null, modules: new Set() };

function audioContext() {
  if (!audio.context) {
    const context = new AudioContext({ latencyHint: 'interactive' });
    const output = context.createGain();
    const analyser = context.createAnalyser();
    analyser.fftSize = ANALYSER_FFT_SIZE;
    output.connect(analyser);
    output.connect(context.destination);
    Object.assign(audio, { context, output, analyser });
  }
  // Suspended while idle, or by a frozen page; a click may resume it.
  if (audio.context.state !== 'running') audio.context.resume().catch(() => {});
  return audio.context;
}

async function loadModule(path) {
  if (audio.modules.has(path)) return;
  await audio.context.audioWorklet.addModule(path);
  audio.modules.add(path);
}

/** Lets the audio device sleep when nothing plays or records. */
function idleAudio() {
  if (audio.context?.state === 'running' && !monitor && !microphone) audio.context.suspend();
}

function canUseWorklets() {
  return window.isSecureContext && typeof AudioWorkletNode === 'function';
}

function canUseMicrophone() {
  return canUseWorklets() && Boolean(navigator.mediaDevices?.getUserMedia);
}

function socketUrl(path, query = {}) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${path}?${new URLSearchParams({ token: state.token, ...query })}`;
}

/** Why the server refused to upgrade `path`, from its problem document, or `fallback`. */
async function refusal(path, query, fallback) {
  try {
    const response = await fetch(`${path}?${new URLSearchParams({ token: state.token, ...query })}`);
    const type = response.headers.get('content-type') || '';
    if (REFUSALS.includes(response.status) && type.includes('json')) {
      const problem = await response.json();
      return problem.detail || problem.title || fallback;
    }
  } catch {
    // Not reachable at all: the fallback says as much.
  }
  return fallback;
}

function decibels(peak) {
  return peak > 0 ? Math.max(SILENT_DB, 20 * Math.log10(peak)) : SILENT_DB;
}

/** Opus decodes in the page only where WebCodecs exists (secure contexts). */
function canDecodeOpus() {
  return typeof AudioDecoder === 'function' && typeof EncodedAudioChunk === 'function';
}

/** The codec this page listens with: the one last picked, if the page can decode it. */
function preferredCodec() {
  let saved = null;
  try {
    saved = localStorage.getItem(CODEC_KEY);
  } catch {
    // Storage refused (private mode): PCM.
  }
  return saved === 'opus' && canDecodeOpus() ? 'opus' : 's16';
}

// ---- Monitor messages ----------------------------------------------------------------

/** The header of a binary monitor message, or null when it is too short. */
function parseHeader(buffer) {
  if (buffer.byteLength < HEADER_BYTES) return null;
  const header = new DataView(buffer, 0, HEADER_BYTES);
  return {
    rate: header.getUint32(0, true),
    channels: header.getUint16(4, true),
    format: header.getUint16(6, true),
    frame: Number(header.getBigUint64(8, true)),
  };
}

/**
 * A binary monitor message as `{rate, channels, format, frame, frames, samples, peak}`
 * (samples interleaved f32), or null when malformed. Typed arrays read the platform's byte
 * order, little-endian on every platform a browser runs on, as the wire's is.
 */
function parseAudio(buffer) {
  if (buffer.byteLength < HEADER_BYTES) return null;
  const header = new DataView(buffer, 0, HEADER_BYTES);
  const rate = header.getUint32(0, true);
  const channels = header.getUint16(4, true);
  const format = header.getUint16(6, true);
  const frame = Number(header.getBigUint64(8, true));
  const sampleBytes = format === FORMAT_S16 ? 2 : format === FORMAT_F32 ? 4 : 0;
  const bytes = buffer.byteLength - HEADER_BYTES;
  if (rate < RATE_MIN || rate > RATE_MAX || channels === 0 || sampleBytes === 0 ||
      bytes % (sampleBytes * channels) !== 0) return null;
  const count = bytes / sampleBytes;
  const samples = new Float32Array(count);
  if (format === FORMAT_S16) {
    const source = new Int16Array(buffer, HEADER_BYTES, count);
    for (let i = 0; i < count; i++) samples[i] = source[i] / 32768;
  } else {
    samples.set(new Float32Array(buffer, HEADER_BYTES, count));
  }
  let peak = 0;
  for (const sample of samples) peak = Math.max(peak, Math.abs(sample));
  return { rate, channels, format, frame, frames: count / channels, samples, peak };
}

// ---- Players -------------------------------------------------------------------------

/** Plays through the AudioWorklet processor in listen-worklet.js. */
class WorkletPlayer {
  static async create(context) {
    await loadModule('/listen-worklet.js');
    const node = new AudioWorkletNode(context, 'paravox-listen', {
      numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [2],
    });
    return new WorkletPlayer(node);
  }

  constructor(node) {
    this.kind = 'worklet';
    this.node = node;
    this.report = { bufferedSeconds: 0, playing: false, started: false, dropouts: 0, skippedFrames: 0 };
    node.port.onmessage = (event) => { this.report = event.data; };
    node.connect(audio.output);
  }

  push({ rate, channels, samples }) {
    this.node.port.postMessage({ rate, channels, samples }, [samples.buffer]);
  }

  stats() {
    return this.report;
  }

  close() {
    this.node.port.onmessage = null;
    this.node.port.close();
    this.node.disconnect();
  }
}

/** The fallback outside secure contexts: one AudioBufferSourceNode per chunk, back to back. */
class BufferPlayer {
  constructor(context) {
    this.kind = 'buffers';
    this.context = context;
    /** Context time at which the audio scheduled so far ends. */
    this.end = 0;
    this.start = START_SECONDS;
    this.playing = false;
    this.started = false;
    this.dropouts = 0;
    this.skippedFrames = 0;
    this.sources = new Set();
  }

  push({ rate, channels, samples, frames }) {
    const now = this.context.currentTime;
    if (this.playing && this.end < now) {
      this.playing = false;
      this.dropouts += 1;
      this.start = Math.min(START_MAX_SECONDS, this.start + START_STEP_SECONDS);
    }
    if (!this.playing) {
      this.end = now + this.start;
      this.playing = true;
      this.started = true;
    }
    // Scheduled nodes cannot be taken back: past the bound, new audio is what is skipped.
    if (this.end - now > MAX_SECONDS) {
      this.skippedFrames += frames;
      return;
    }
    const buffer = this.context.createBuffer(2, frames, rate);
    const left = buffer.getChannelData(0);
    const right = buffer.getChannelData(1);
    for (let i = 0; i < frames; i++) {
      left[i] = samples[i * channels];
      right[i] = channels === 1 ? left[i] : samples[i * channels + 1];
    }
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(audio.output);
    source.addEventListener('ended', () => this.sources.delete(source));
    source.start(this.end);
    this.sources.add(source);
    this.end += frames / rate;
  }

  stats() {
    const bufferedSeconds = Math.max(0, this.end - this.context.currentTime);
    return {
      bufferedSeconds,
      startSeconds: this.start,
      playing: this.playing && bufferedSeconds > 0,
      started: this.started,
      dropouts: this.dropouts,
      skippedFrames: this.skippedFrames,
    };
  }

  close() {
    for (const source of this.sources) {
      source.stop();
      source.disconnect();
    }
    this.sources.clear();
  }
}

// ---- Listening -----------------------------------------------------------------------

/** What a Listen button listens to: `{key, path, label}`. */
export function streamTarget(stream) {
  const card = state.cards.find((c) => c.id === stream.card)?.name ?? `card ${stream.card}`;
  return { key: `stream-${stream.id}`, path: `/api/streams/${stream.id}/listen`, label: `${card} · ${stream.name} (stream ${stream.id})` };
}

export function endpointTarget(endpoint) {
  return {
    key: `endpoint-${endpoint.name}`,
    path: `/api/endpoints/${encodeURIComponent(endpoint.name)}/listen`,
    label: `endpoint ${endpoint.name}`,
  };
}

/** One monitor WebSocket and its player, from the click to Stop (or the server's close). */
class Monitor {
  constructor(target, codec) {
    this.target = target;
    this.codec = codec;
    this.decoder = null;
    this.decoderFormat = null;
    this.socket = null;
    this.player = null;
    this.opened = false;
    this.closed = false;
    this.ended = null;
    this.info = null;
    this.rate = null;
    this.channels = null;
    this.format = null;
    this.receivedFrames = 0;
    this.expectedFrame = null;
    this.gapFrames = 0;
    this.malformed = 0;
    this.serverStats = null;
    this.rttMs = null;
    this.peak = 0;
    this.timers = [];
  }

  async start() {
    try {
      const context = audioContext();
      const player = canUseWorklets() ? await WorkletPlayer.create(context) : new BufferPlayer(context);
      if (this.closed) {
        player.close();
        return;
      }
      this.player = player;
    } catch (error) {
      this.end(`the page cannot play audio: ${error.message}`);
      return;
    }
    const socket = new WebSocket(socketUrl(this.target.path, { format: this.codec }));
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    socket.addEventListener('open', () => {
      this.opened = true;
      this.ping();
    });
    socket.addEventListener('message', (message) => this.receive(message.data));
    socket.addEventListener('close', (event) => this.onClose(event));
    this.timers.push(setInterval(() => this.ping(), PING_MS));
  }

  ping() {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify({ ping: performance.now() }));
  }

  receive(data) {
    if (typeof data !== 'string') {
      this.play(data);
      return;
    }
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    switch (message.type) {
      case 'listening':
        this.info = message;
        break;
      case 'monitor_stats':
        this.serverStats = { sent: message.sent_frames, dropped: message.dropped_frames };
        break;
      case 'pong':
        if (typeof message.ping === 'number') this.rttMs = performance.now() - message.ping;
        break;
      case 'ended':
        this.end(message.reason || 'what it listened to is gone');
        break;
      default:
        break;
    }
  }

  play(buffer) {
    if (parseHeader(buffer)?.format === FORMAT_OPUS) {
      this.decodeOpus(buffer);
      return;
    }
    const chunk = parseAudio(buffer);
    if (!chunk) {
      this.malformed += 1;
      return;
    }
    this.accept(chunk);
  }

  /** Hands one Opus packet to WebCodecs; `decoded` plays what comes out. */
  decodeOpus(buffer) {
    const header = parseHeader(buffer);
    const key = `${header.rate}/${header.channels}`;
    if (!canDecodeOpus() || header.channels < 1 || header.channels > 2) {
      this.malformed += 1;
      return;
    }
    if (this.decoderFormat !== key) {
      this.decoder?.close();
      this.decoder = new AudioDecoder({
        output: (data) => this.decoded(data, header.format),
        error: (error) => this.end(`the page cannot decode Opus: ${error.message}`),
      });
      this.decoder.configure({ codec: 'opus', sampleRate: header.rate, numberOfChannels: header.channels });
      this.decoderFormat = key;
      this.opusFrames = new Map();
    }
    const timestamp = Math.round((header.frame * 1e6) / header.rate);
    this.opusFrames.set(timestamp, header.frame);
    this.decoder.decode(new EncodedAudioChunk({
      type: 'key', timestamp, data: new Uint8Array(buffer, HEADER_BYTES),
    }));
  }

  decoded(data, format) {
    const channels = data.numberOfChannels;
    const frames = data.numberOfFrames;
    const samples = new Float32Array(frames * channels);
    const plane = new Float32Array(frames);
    for (let channel = 0; channel < channels; channel++) {
      data.copyTo(plane, { planeIndex: channel, format: 'f32-planar' });
      for (let i = 0; i < frames; i++) samples[i * channels + channel] = plane[i];
    }
    let peak = 0;
    for (const sample of samples) peak = Math.max(peak, Math.abs(sample));
    const frame = this.opusFrames.get(data.timestamp) ?? this.expectedFrame ?? 0;
    this.opusFrames.delete(data.timestamp);
    const rate = data.sampleRate;
    data.close();
    if (!this.closed) this.accept({ rate, channels, format: FORMAT_OPUS, frame, frames, samples, peak });
  }

  accept(chunk) {
    // The server skips frames a slow page could not take; its frame index shows the gap.
    if (this.expectedFrame !== null && chunk.frame > this.expectedFrame) this.gapFrames += chunk.frame - this.expectedFrame;
    this.expectedFrame = chunk.frame + chunk.frames;
    this.receivedFrames += chunk.frames;
    this.rate = chunk.rate;
    this.channels = chunk.channels;
    this.format = chunk.format;
    this.peak = Math.max(this.peak, chunk.peak);
    this.player?.push(chunk);
  }

  async onClose(event) {
    if (this.closed) return;
    if (!this.opened) {
      this.end(await refusal(this.target.path, { format: this.codec }, 'the server refused to play it'));
      return;
    }
    this.end(`the server stopped it${event.reason ? `: ${event.reason}` : ''}`);
  }

  /** Milliseconds from the server to the ear, or null before the first pong. */
  latencyMs() {
    if (!this.player || this.rttMs === null) return null;
    return this.rttMs / 2 + this.player.stats().bufferedSeconds * 1000 + outputLatencyMs();
  }

  status() {
    if (this.ended) return 'ended';
    if (!this.info) return 'connecting';
    // An endpoint with no stream running sleeps, and a monitor of it hears nothing yet.
    if (this.receivedFrames === 0) return 'waiting';
    return this.player?.stats().playing ? 'playing' : 'buffering';
  }

  /** Stops for a reason the panel keeps showing until closed. */
  end(reason) {
    this.release();
    this.ended = reason;
    updatePanel();
    syncListenButtons();
  }

  close() {
    this.closed = true;
    this.release();
  }

  release() {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    if (this.decoder && this.decoder.state !== 'closed') this.decoder.close();
    this.decoder = null;
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) this.socket.close(1000);
    this.player?.close();
  }
}

function outputLatencyMs() {
  const context = audio.context;
  return context ? ((context.baseLatency || 0) + (context.outputLatency || 0)) * 1000 : 0;
}

/** The one monitor this page plays (null when none). */
let monitor = null;
let panelTimer = null;

function toggleListening(target) {
  const same = monitor && !monitor.ended && monitor.target.key === target.key;
  stopListening();
  if (same) return;
  monitor = new Monitor(target, preferredCodec());
  showPanel();
  syncListenButtons();
  monitor.start();
}

export function stopListening() {
  monitor?.close();
  monitor = null;
  clearInterval(panelTimer);
  panelTimer = null;
  $('listen').hidden = true;
  $('listen').replaceChildren();
  syncListenButtons();
  idleAudio();
}

/** A Listen toggle; pressed while this page plays `target`. */
export function listenButton(target) {
  return h('button', {
    type: 'button', class: 'listen-toggle', 'data-listen': target.key, 'data-key': `listen-${target.key}`,
    'aria-label': `Listen to ${target.label}`, 'aria-pressed': String(isListening(target.key)),
    onclick: () => toggleListening(target),
  }, 'Listen');
}

function isListening(key) {
  return Boolean(monitor && !monitor.ended && monitor.target.key === key);
}

function syncListenButtons() {
  for (const button of document.querySelectorAll('[data-listen]')) {
    button.setAttribute('aria-pressed', String(isListening(button.dataset.listen)));
  }
}

function showPanel() {
  const panel = $('listen');
  const fact = (term, id) => h('div', {}, h('dt', {}, term), h('dd', { id }));
  panel.replaceChildren(
    h('div', { class: 'listen-head' },
      h('h2', { id: 'listen-title' }, 'Listening to ', h('span', { class: 'listen-target' }, monitor.target.label)),
      h('span', { id: 'listen-status', class: 'state', role: 'status' }),
      h('button', { type: 'button', id: 'listen-stop', class: 'quiet', onclick: stopListening }, 'Stop')),
    h('div', { class: 'listen-meter' }, levelMeter('Level of the audio listened to', { id: 'listen-meter' })),
    h('dl', { class: 'listen-facts' },
      fact('Latency', 'listen-latency'),
      fact('Dropouts', 'listen-dropouts'),
      fact('Dropped by the server', 'listen-dropped'),
      fact('Format', 'listen-format'),
      fact('Player', 'listen-player'),
      h('div', {},
        h('dt', {}, h('label', { for: 'listen-codec' }, 'Sent as')),
        h('dd', {}, codecPicker()))),
    h('p', { id: 'listen-ended', class: 'listen-ended', hidden: true }));
  panel.hidden = false;
  clearInterval(panelTimer);
  panelTimer = setInterval(updatePanel, PANEL_UPDATE_MS);
  updatePanel();
}

/** PCM or Opus; a change starts the monitor again with the new codec, and is kept. */
function codecPicker() {
  const opus = canDecodeOpus();
  return h('select', {
    id: 'listen-codec',
    title: opus ? 'Opus needs far less bandwidth; PCM is exact' : 'Opus needs WebCodecs, which browsers offer on https or localhost only',
    onchange: (event) => {
      try {
        localStorage.setItem(CODEC_KEY, event.target.value);
      } catch {
        // Not kept across reloads; still used now.
      }
      const target = monitor?.target;
      stopListening();
      if (target) toggleListening(target);
    },
  }, ...Object.entries(CODECS).map(([value, label]) => h('option', {
    value, selected: value === (monitor?.codec ?? 's16'), disabled: value === 'opus' && !opus,
  }, label)));
}

const STATUS_TEXT = {
  connecting: 'Connecting…', waiting: 'Waiting for audio…', buffering: 'Buffering…', playing: 'Playing', ended: 'Stopped',
};

/** Refreshes the panel's values in place; the meter shows the loudest sample since the last call. */
function updatePanel() {
  if (!monitor || $('listen').hidden) return;
  const status = monitor.status();
  const statusElement = $('listen-status');
  if (statusElement.textContent !== STATUS_TEXT[status]) {
    statusElement.textContent = STATUS_TEXT[status];
    statusElement.className = `state ${status === 'playing' ? 'state-running' : status === 'ended' ? 'state-lost' : 'state-idle'}`;
  }
  setMeter($('listen-meter'), status === 'ended' ? SILENT_DB : decibels(monitor.peak));
  monitor.peak = 0;
  const player = monitor.player?.stats();
  const latency = monitor.latencyMs();
  $('listen-latency').textContent = latency === null ? '—' : `${Math.round(latency)} ms`;
  $('listen-latency').title = latency === null ? '' :
    `network ${Math.round(monitor.rttMs / 2)} ms + buffered ${Math.round(player.bufferedSeconds * 1000)} ms + audio output ${Math.round(outputLatencyMs())} ms`;
  const skipped = player?.skippedFrames && monitor.rate ? `, skipped ${Math.round((player.skippedFrames / monitor.rate) * 1000)} ms to catch up` : '';
  $('listen-dropouts').textContent = `${player?.dropouts ?? 0}${skipped}`;
  const dropped = monitor.serverStats?.dropped ?? monitor.gapFrames;
  $('listen-dropped').textContent = `${dropped} frames`;
  $('listen-format').textContent = monitor.rate
    ? `${monitor.rate / 1000} kHz · ${monitor.channels} ch · ${FORMAT_NAMES[monitor.format]}${audio.context && audio.context.sampleRate !== monitor.rate ? ` → ${audio.context.sampleRate / 1000} kHz` : ''}`
    : '—';
  $('listen-player').textContent = !monitor.player ? '—' :
    monitor.player.kind === 'worklet' ? 'AudioWorklet' : 'scheduled buffers (no AudioWorklet outside https or localhost)';
  const ended = $('listen-ended');
  ended.hidden = !monitor.ended;
  ended.textContent = monitor.ended ? `Stopped: ${monitor.ended}.` : '';
  $('listen-stop').textContent = monitor.ended ? 'Close' : 'Stop';
}

// ---- Microphone ----------------------------------------------------------------------

/** Whether `endpoint` is fed by a browser's microphone (spec `browser`). */
export function isBrowserEndpoint(endpoint) {
  return endpoint.direction === 'capture' &&
    (Boolean(endpoint.microphone) || /^browser(,|$)/.test(endpoint.spec));
}

/** This page's microphone feeding one endpoint, from the click to Stop (or the server's close). */
class Microphone {
  constructor(endpoint) {
    this.endpoint = endpoint;
    this.path = `/api/endpoints/${encodeURIComponent(endpoint)}/microphone`;
    this.query = null;
    this.context = null;
    this.media = null;
    this.socket = null;
    this.source = null;
    this.node = null;
    this.opened = false;
    this.closed = false;
    this.sentFrames = 0;
    this.droppedChunks = 0;
    this.info = null;
    this.serverStats = null;
    this.peak = 0;
    this.timer = null;
  }

  async start() {
    try {
      this.context = audioContext();
      await loadModule('/mic-worklet.js');
      const media = await navigator.mediaDevices.getUserMedia(MICROPHONE_CONSTRAINTS);
      if (this.closed) {
        for (const track of media.getTracks()) track.stop();
        return;
      }
      this.media = media;
    } catch (error) {
      this.fail(`the microphone is not available: ${error.message}`);
      return;
    }
    this.query = { rate: String(this.context.sampleRate), channels: '1', format: 's16' };
    const socket = new WebSocket(socketUrl(this.path, this.query));
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    socket.addEventListener('open', () => this.connect());
    socket.addEventListener('message', (message) => this.receive(message.data));
    socket.addEventListener('close', (event) => this.onClose(event));
  }

  /** Starts sending once the server has taken the socket. */
  connect() {
    this.opened = true;
    const chunkFrames = Math.round(this.context.sampleRate * MICROPHONE_CHUNK_SECONDS);
    this.source = this.context.createMediaStreamSource(this.media);
    this.node = new AudioWorkletNode(this.context, 'paravox-microphone', {
      numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1],
      channelCount: 1, channelCountMode: 'explicit', channelInterpretation: 'speakers',
      processorOptions: { chunkFrames },
    });
    this.node.port.onmessage = (event) => this.send(event.data);
    this.source.connect(this.node);
    // A node runs only while something pulls it; its output is silence.
    this.node.connect(this.context.destination);
    this.timer = setInterval(() => this.showLevel(), PANEL_UPDATE_MS);
    render();
  }

  send({ samples, peak }) {
    this.peak = Math.max(this.peak, peak);
    if (this.socket.readyState !== WebSocket.OPEN) return;
    // A stalled connection must not grow the page without bound: late audio is dropped.
    if (this.socket.bufferedAmount > this.context.sampleRate * 2 * MICROPHONE_BACKLOG_SECONDS) {
      this.droppedChunks += 1;
      return;
    }
    this.socket.send(samples);
    this.sentFrames += samples.byteLength / 2;
  }

  receive(data) {
    if (typeof data !== 'string') return;
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (message.type === 'microphone') this.info = message;
    if (message.type === 'microphone_stats') {
      this.serverStats = { received: message.received_frames, dropped: message.dropped_frames };
      const received = document.querySelector(`[data-microphone-received="${CSS.escape(this.endpoint)}"]`);
      if (received) received.textContent = receivedText(this);
    }
  }

  showLevel() {
    const element = document.querySelector(`[data-microphone-meter="${CSS.escape(this.endpoint)}"]`);
    if (element) setMeter(element, decibels(this.peak));
    this.peak = 0;
  }

  async onClose(event) {
    if (this.closed) return;
    const reason = this.opened
      ? `the server stopped it${event.reason ? `: ${event.reason}` : ''}`
      : await refusal(this.path, this.query, 'the server refused it');
    this.fail(reason);
  }

  fail(reason) {
    showError(new Error(`Microphone for ${this.endpoint}: ${reason}`));
    stopMicrophone();
  }

  close() {
    this.closed = true;
    clearInterval(this.timer);
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) this.socket.close(1000);
    for (const track of this.media?.getTracks() ?? []) track.stop();
    this.source?.disconnect();
    if (this.node) {
      this.node.port.onmessage = null;
      this.node.disconnect();
    }
  }
}

/** The one microphone feed of this page (null when none). */
let microphone = null;

function startMicrophone(endpoint) {
  stopMicrophone();
  microphone = new Microphone(endpoint);
  microphone.start();
  render();
}

export function stopMicrophone() {
  if (!microphone) return;
  microphone.close();
  microphone = null;
  render();
  idleAudio();
}

function feeding(name) {
  return microphone?.endpoint === name;
}

function receivedText(feed) {
  if (!feed.serverStats) return '';
  const seconds = feed.context ? feed.serverStats.received / feed.context.sampleRate : 0;
  return `${seconds.toFixed(1)} s received${feed.serverStats.dropped ? `, ${feed.serverStats.dropped} frames dropped` : ''}`;
}

/** What feeds a browser endpoint, in a few words. */
export function microphoneSummary(endpoint) {
  if (feeding(endpoint.name)) return microphone.opened ? 'fed by this browser' : 'connecting…';
  if (endpoint.microphone?.fed) return 'fed by another browser';
  return 'no browser: delivers silence';
}

/** The microphone control of a browser endpoint: the button, what feeds it, its level. */
export function microphoneControl(endpoint) {
  const name = endpoint.name;
  const ours = feeding(name);
  const statusId = `microphone-status-${name}`;
  const button = h('button', {
    type: 'button', class: ours ? 'quiet' : '', 'data-key': `microphone-${name}`,
    'aria-label': `${ours ? 'Stop microphone' : 'Use microphone'} for ${name}`,
    'aria-describedby': statusId, disabled: !canUseMicrophone(),
    onclick: () => (feeding(name) ? stopMicrophone() : startMicrophone(name)),
  }, ours ? 'Stop microphone' : 'Use microphone');
  const status = canUseMicrophone() ? microphoneSummary(endpoint) : 'The microphone needs https or localhost.';
  const meter = levelMeter(`Level of this browser's microphone on ${name}`, { 'data-microphone-meter': name });
  meter.hidden = !(ours && microphone.opened);
  return h('div', { class: 'microphone', 'data-microphone': name },
    h('div', { class: 'microphone-row' }, button,
      h('span', { id: statusId, class: `microphone-status${ours ? ' microphone-ours' : ''}` }, status)),
    meter,
    h('span', { class: 'microphone-received', 'data-microphone-received': name }, ours ? receivedText(microphone) : ''));
}

// ---- Lifecycle and tests -------------------------------------------------------------

// A frozen or hidden page may come back with its context suspended.
document.addEventListener('resume', () => {
  if (monitor || microphone) audioContext();
});

window.paravoxListen = {
  get context() {
    return audio.context;
  },
  /** An AnalyserNode on everything the page plays. */
  get analyser() {
    return audio.analyser;
  },
  stats() {
    const player = monitor?.player?.stats();
    return {
      target: monitor?.target.label ?? null,
      status: monitor?.status() ?? 'idle',
      /** The server's first message. */
      info: monitor?.info ?? null,
      player: monitor?.player?.kind ?? null,
      started: Boolean(player?.started),
      playing: Boolean(player?.playing),
      dropouts: player?.dropouts ?? 0,
      skippedFrames: player?.skippedFrames ?? 0,
      bufferedFrames: Math.round((player?.bufferedSeconds ?? 0) * (audio.context?.sampleRate ?? 0)),
      receivedFrames: monitor?.receivedFrames ?? 0,
      gapFrames: monitor?.gapFrames ?? 0,
      malformed: monitor?.malformed ?? 0,
      serverSentFrames: monitor?.serverStats?.sent ?? null,
      serverDroppedFrames: monitor?.serverStats?.dropped ?? null,
      rttMs: monitor?.rttMs ?? null,
      latencyMs: monitor?.latencyMs() ?? null,
      rate: monitor?.rate ?? null,
      channels: monitor?.channels ?? null,
      contextRate: audio.context?.sampleRate ?? null,
      contextState: audio.context?.state ?? null,
      contextTime: audio.context?.currentTime ?? null,
    };
  },
  microphone() {
    return microphone && {
      endpoint: microphone.endpoint,
      connected: microphone.opened,
      info: microphone.info,
      sentFrames: microphone.sentFrames,
      droppedChunks: microphone.droppedChunks,
      serverReceivedFrames: microphone.serverStats?.received ?? null,
      serverDroppedFrames: microphone.serverStats?.dropped ?? null,
      rate: microphone.context?.sampleRate ?? null,
    };
  },
};
