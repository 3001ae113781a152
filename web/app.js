// The paravox dashboard: cards, streams and endpoints from the REST API, kept live by
// the /api/events WebSocket (lifecycle events and 25 meter frames a second).
//
// Lists are fetched once at login and again only when an event says they changed; meters
// update their bars in place so a frame never rebuilds the page. The plugin library and
// chain editor live in plugins.js, the routing graph in routing.js, listening and the
// microphone in listen.js.

import {
  endpointTarget, isBrowserEndpoint, listenButton, microphoneControl, stopListening, stopMicrophone, streamTarget,
} from './listen.js';
import { chainSection, loadPlugins, pluginsView, updateChain } from './plugins.js';
import { routingView } from './routing.js';

const TOKEN_KEY = 'paravox.token';
const METER_FLOOR_DB = -60;
const VOLUME_MIN_DB = -120;
const VOLUME_MAX_DB = 24;
const EVENT_LOG_LIMIT = 200;
const RECONNECT_FIRST_MS = 500;
const RECONNECT_MAX_MS = 30000;

export const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  cards: [],
  streams: new Map(),
  endpoints: [],
  meters: new Map(),
  events: [],
  socket: null,
  reconnectDelay: RECONNECT_FIRST_MS,
  reconnectTimer: null,
  subscribed: '',
  /** The server has said it listens on the current socket (its first `subscribed`). */
  listening: false,
  loaded: false,
  /** The plugin library, loaded when a view first needs it (`null` until then). */
  plugins: null,
};

export const $ = (id) => document.getElementById(id);

/** Creates an element: `h('a', {href: '#/'}, 'text', child)`. Text is never parsed as HTML. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (name === 'class') element.className = value;
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

// ---- HTTP ----------------------------------------------------------------------------

export class ApiFailure extends Error {
  constructor(status, title, detail) {
    super(detail ? `${title}: ${detail}` : title);
    this.status = status;
  }
}

/** Calls the API with the token; throws an ApiFailure carrying the problem's detail. */
export async function api(method, path, body) {
  const init = { method, headers: { Authorization: `Bearer ${state.token}` } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  return send(path, init);
}

/** Sends `file` as a plugin module; returns the installed plugin. */
export async function uploadPlugin(file) {
  return send('/api/plugins', {
    method: 'POST',
    headers: { Authorization: `Bearer ${state.token}`, 'Content-Type': 'application/wasm' },
    body: file,
  });
}

async function send(path, init) {
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiFailure(0, 'paravox is not reachable', error.message);
  }
  const type = response.headers.get('content-type') || '';
  const payload = type.includes('json') ? await response.json().catch(() => null) : null;
  if (!response.ok) {
    const title = payload?.title || `${response.status} ${response.statusText}`;
    throw new ApiFailure(response.status, title, payload?.detail);
  }
  return payload;
}

export function showError(error) {
  $('error-text').textContent = error instanceof Error ? error.message : String(error);
  $('error').hidden = false;
  if (error instanceof ApiFailure && error.status === 401) logout(false);
}

export function clearError() {
  $('error').hidden = true;
}

/** Runs `work`, showing its failure; returns whether it succeeded. */
export async function attempt(work) {
  try {
    await work();
    return true;
  } catch (error) {
    showError(error);
    return false;
  }
}

// ---- Data ----------------------------------------------------------------------------

async function loadAll() {
  const [cards, streams, endpoints] = await Promise.all([
    api('GET', '/api/cards'),
    api('GET', '/api/streams'),
    api('GET', '/api/endpoints'),
  ]);
  state.cards = cards;
  state.streams = new Map(streams.map((s) => [s.id, s]));
  state.endpoints = endpoints;
  state.loaded = true;
  for (const stream of streams) seedMeter(stream);
  subscribeMeters();
  render();
}

async function loadStream(id) {
  try {
    const stream = await api('GET', `/api/streams/${id}`);
    state.streams.set(id, stream);
  } catch (error) {
    if (error.status === 404) state.streams.delete(id);
    else throw error;
  }
  render();
}

async function loadEndpoints() {
  state.endpoints = await api('GET', '/api/endpoints');
  render();
}

function seedMeter(stream) {
  if (!state.meters.has(stream.id)) state.meters.set(stream.id, stream.meter.peak_dbfs);
}

/** Coalesces refreshes asked for by a burst of events into one request each. */
const pending = { all: false, endpoints: false, plugins: false, streams: new Set(), scheduled: false };

function refresh(what, id) {
  if (what === 'all') pending.all = true;
  else if (what === 'endpoints') pending.endpoints = true;
  else if (what === 'plugins') pending.plugins = true;
  else pending.streams.add(id);
  if (pending.scheduled) return;
  pending.scheduled = true;
  queueMicrotask(async () => {
    const { all, endpoints, plugins } = pending;
    const streams = [...pending.streams];
    pending.all = pending.endpoints = pending.plugins = pending.scheduled = false;
    pending.streams.clear();
    await attempt(async () => {
      // The library is only kept fresh once a view has loaded it.
      if (plugins && state.plugins) await loadPlugins();
      if (all) return loadAll();
      await Promise.all(streams.map(loadStream));
      if (endpoints) await loadEndpoints();
    });
  });
}

// ---- WebSocket -----------------------------------------------------------------------

function connect() {
  clearTimeout(state.reconnectTimer);
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const url = `${scheme}//${location.host}/api/events?token=${encodeURIComponent(state.token)}`;
  const socket = new WebSocket(url);
  state.socket = socket;
  state.subscribed = '';
  state.listening = false;
  setConnection('connecting');
  socket.addEventListener('open', () => {
    state.reconnectDelay = RECONNECT_FIRST_MS;
    setConnection('live');
  });
  socket.addEventListener('message', (message) => {
    let data;
    try {
      data = JSON.parse(message.data);
    } catch {
      return;
    }
    onMessage(data);
  });
  socket.addEventListener('close', () => {
    if (state.socket !== socket) return;
    state.socket = null;
    if (!state.token) return;
    const delay = state.reconnectDelay;
    state.reconnectDelay = Math.min(delay * 2, RECONNECT_MAX_MS);
    setConnection('offline', delay);
    state.reconnectTimer = setTimeout(connect, delay);
  });
}

function disconnect() {
  clearTimeout(state.reconnectTimer);
  const socket = state.socket;
  state.socket = null;
  socket?.close();
}

function setConnection(status, retryMs) {
  const element = $('connection');
  element.hidden = false;
  element.dataset.status = status;
  element.textContent =
    status === 'live' ? 'Live' :
    status === 'connecting' ? 'Connecting…' :
    `Offline, retrying in ${(retryMs / 1000).toFixed(1)} s`;
}

/** Asks for the meters of every stream we know, when that set changed. */
function subscribeMeters() {
  const socket = state.socket;
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  const streams = [...state.streams.keys()].sort((a, b) => a - b);
  const key = streams.join(',');
  if (key === state.subscribed) return;
  state.subscribed = key;
  socket.send(JSON.stringify({ subscribe: { streams, events: true } }));
}

function onMessage(message) {
  switch (message.type) {
    case 'meters':
      for (const { stream, peak_dbfs: peak } of message.streams) {
        state.meters.set(stream, peak);
        updateMeters(stream, peak);
      }
      return;
    case 'subscribed':
      if (!state.listening) {
        // The server's first message: from here on it sends every event, so what
        // changed before (while disconnected, or before the session listened) is read
        // now and nothing falls between the two.
        state.listening = true;
        attempt(loadAll);
        return;
      }
      subscribeMeters();
      return;
    case 'error':
      showError(new Error(`event stream: ${message.detail}`));
      return;
    default:
      logEvent(message);
  }
  switch (message.type) {
    case 'card_added':
    case 'card_removed':
    case 'stream_added':
    case 'stream_removed':
      refresh('all');
      break;
    case 'stream_state':
    case 'xrun':
    case 'volume':
      refresh('stream', message.stream);
      break;
    case 'route':
      refresh('stream', message.stream);
      refresh('endpoints');
      break;
    case 'device_lost':
    case 'device_recovered':
    case 'microphone_attached':
    case 'microphone_detached':
      refresh('endpoints');
      break;
    case 'chain_swapped':
      refresh('stream', message.stream);
      refresh('plugins');
      break;
    case 'plugin_fault':
      if (message.stream !== null && message.stream !== undefined) refresh('stream', message.stream);
      refresh('plugins');
      break;
    default:
      break;
  }
}

// ---- Event log -----------------------------------------------------------------------

function describe(event) {
  const stream = (id) => {
    const found = state.streams.get(id);
    return found ? `stream ${id} (${found.name})` : `stream ${id}`;
  };
  const monitored = ({ stream: id, endpoint }) =>
    id !== null && id !== undefined ? stream(id) : `endpoint ${endpoint}`;
  switch (event.type) {
    case 'card_added': return `Card ${event.card} (${event.name}) added`;
    case 'card_removed': return `Card ${event.card} removed`;
    case 'stream_added': return `${event.direction} stream ${event.stream} added to card ${event.card}`;
    case 'stream_removed': return `Stream ${event.stream} removed`;
    case 'stream_state': return `${stream(event.stream)}: ${event.from} → ${event.to}`;
    case 'xrun': return `${stream(event.stream)}: xrun (${event.total} so far)`;
    case 'volume': return `${stream(event.stream)}: volume ${formatDb(event.volume_db)}${event.muted ? ', muted' : ''}`;
    case 'route': return `${stream(event.stream)}: routed to ${event.endpoint}`;
    case 'device_lost': return `Endpoint ${event.endpoint} lost its device: ${event.reason}`;
    case 'device_recovered': return `Endpoint ${event.endpoint} has its device back`;
    case 'chain_swapped': return `${stream(event.stream)}: plugin chain swapped`;
    case 'plugin_fault': return `${event.stream !== null && event.stream !== undefined ? `${stream(event.stream)}: p` : 'P'}lugin ${event.plugin} (${event.stage}) disabled: ${event.reason}`;
    case 'monitor_started': return `Listening started: ${monitored(event)} (monitor ${event.monitor})`;
    case 'monitor_stopped': return `Listening stopped: ${monitored(event)} (monitor ${event.monitor})`;
    case 'microphone_attached': return `A browser's microphone feeds endpoint ${event.endpoint}`;
    case 'microphone_detached': return `No browser feeds endpoint ${event.endpoint}: it delivers silence`;
    case 'budget_exceeded': return `Card ${event.card}${event.stream !== null && event.stream !== undefined ? `, ${stream(event.stream)}` : ''}: refused by its budget (${event.limit}: ${event.asked} asked, ${event.allowed} allowed)`;
    default: return JSON.stringify(event);
  }
}

function logEvent(event) {
  state.events.unshift({ time: new Date(), type: event.type, text: describe(event) });
  state.events.length = Math.min(state.events.length, EVENT_LOG_LIMIT);
  const list = document.querySelector('#event-log');
  if (list) list.prepend(eventItem(state.events[0]));
  while (list && list.children.length > EVENT_LOG_LIMIT) list.lastElementChild.remove();
  const empty = document.querySelector('#event-log-empty');
  if (empty) empty.hidden = true;
}

function eventItem(entry) {
  return h('li', { class: `event event-${entry.type}` },
    h('time', { datetime: entry.time.toISOString() }, entry.time.toLocaleTimeString()),
    h('span', {}, entry.text));
}

// ---- Formatting ----------------------------------------------------------------------

export function formatDb(db) {
  if (db <= VOLUME_MIN_DB) return '−∞ dB';
  const sign = db > 0 ? '+' : db < 0 ? '−' : '';
  return `${sign}${Math.abs(db).toFixed(1)} dB`;
}

function formatParams(params) {
  if (!params) return '—';
  const channels = params.channels === 1 ? 'mono' : params.channels === 2 ? 'stereo' : `${params.channels} ch`;
  return `${params.format} · ${params.rate / 1000} kHz · ${channels}`;
}

function formatPeriod(params) {
  if (!params || !params.frame_bytes || !params.rate) return '—';
  const frames = params.period_bytes / params.frame_bytes;
  return `${frames} frames (${((frames * 1000) / params.rate).toFixed(1)} ms)`;
}

function transportText(transport) {
  switch (transport.kind) {
    case 'virtio': return `virtio · ${transport.socket}`;
    case 'sndif': return `Xen sndif · domain ${transport.frontend_domid}, device ${transport.devid}`;
    default: return 'local';
  }
}

// ---- Meters --------------------------------------------------------------------------

/** A level bar named `label`, silent until setMeter; `attributes` mark it for updates. */
export function levelMeter(label, attributes = {}) {
  const element = h('span', {
    class: 'meter', role: 'meter', 'aria-label': label,
    'aria-valuemin': METER_FLOOR_DB, 'aria-valuemax': 0, ...attributes,
  }, h('span', { class: 'meter-track' }, h('span', { class: 'meter-bar' })), h('span', { class: 'meter-value' }));
  setMeter(element, -120);
  return element;
}

/** A level bar for a stream, updated in place by meter frames. */
export function meter(stream) {
  const element = levelMeter(`Level of ${stream.name}`, { 'data-stream': stream.id });
  setMeter(element, state.meters.get(stream.id) ?? -120);
  return element;
}

/** Shows `peak` (dBFS) on a level bar. */
export function setMeter(element, peak) {
  const level = Math.max(METER_FLOOR_DB, Math.min(0, peak));
  const fraction = (level - METER_FLOOR_DB) / -METER_FLOOR_DB;
  element.setAttribute('aria-valuenow', level.toFixed(1));
  element.setAttribute('aria-valuetext', peak <= METER_FLOOR_DB ? 'silent' : `${peak.toFixed(1)} dBFS`);
  element.dataset.peak = peak.toFixed(1);
  element.dataset.zone = peak > -3 ? 'hot' : peak > -18 ? 'warm' : 'ok';
  element.querySelector('.meter-bar').style.transform = `scaleX(${fraction})`;
  element.querySelector('.meter-value').textContent =
    peak <= METER_FLOOR_DB ? 'silent' : `${peak.toFixed(0).replace('-', '−')} dB`;
}

function updateMeters(stream, peak) {
  for (const element of document.querySelectorAll(`.meter[data-stream="${stream}"]`)) {
    setMeter(element, peak);
  }
}

// ---- Views ---------------------------------------------------------------------------

function route() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [view, id] = hash.split('/');
  if (view === 'stream' && /^\d+$/.test(id)) return { view: 'stream', id: Number(id) };
  if (['endpoints', 'events', 'plugins', 'routing'].includes(view)) return { view };
  return { view: 'overview' };
}

/** Rebuilds the current view, keeping keyboard focus on the same control. */
export function render() {
  const loggedIn = Boolean(state.token);
  $('login').hidden = loggedIn;
  $('nav').hidden = !loggedIn;
  $('logout').hidden = !loggedIn;
  $('connection').hidden = !loggedIn;
  const container = $('view');
  if (!loggedIn) {
    container.replaceChildren();
    return;
  }
  const current = route();
  for (const link of document.querySelectorAll('#nav a')) {
    const active = link.dataset.view === current.view ||
      (current.view === 'stream' && link.dataset.view === 'overview');
    if (active) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const shown = container.dataset.stream === String(current.id);
  if (current.view === 'stream' && shown && state.streams.has(current.id)) {
    // The detail view updates in place so a slider being dragged keeps its grip.
    updateDetail(state.streams.get(current.id));
    return;
  }
  const focusKey = document.activeElement?.dataset?.key;
  const views = {
    overview, endpoints: endpointsView, events: eventsView, stream: detail,
    plugins: pluginsView, routing: routingView,
  };
  if (!state.loaded) {
    container.replaceChildren(h('p', { class: 'empty', role: 'status' }, 'Loading…'));
    container.dataset.stream = '';
    return;
  }
  container.replaceChildren(views[current.view](current.id));
  // Only a built detail view can be updated in place.
  const built = current.view === 'stream' && state.streams.has(current.id);
  container.dataset.stream = built ? String(current.id) : '';
  if (focusKey) container.querySelector(`[data-key="${CSS.escape(focusKey)}"]`)?.focus();
}

function overview() {
  const section = h('section', { 'aria-labelledby': 'overview-title' },
    viewHead('overview-title', 'Cards and streams'));
  if (state.cards.length === 0) {
    section.append(h('p', { class: 'empty' }, 'No cards yet. Cards appear when a VM connects or when you create one over the API.'));
    return section;
  }
  for (const card of state.cards) {
    const streams = card.streams.map((id) => state.streams.get(id)).filter(Boolean);
    section.append(h('article', { class: 'card', 'aria-labelledby': `card-${card.id}` },
      h('header', { class: 'card-head' },
        h('h3', { id: `card-${card.id}` }, card.name),
        h('span', { class: 'tag' }, transportText(card.transport)),
        card.origin === 'api' ? h('span', { class: 'tag' }, 'API') : null),
      streams.length === 0 ? h('p', { class: 'empty' }, 'No streams.') : streamTable(card, streams)));
  }
  return section;
}

/** A view's heading with a Refresh button: counters (latency, load) change without events. */
export function viewHead(id, title) {
  return h('div', { class: 'view-head' },
    h('h2', { id }, title),
    h('button', {
      type: 'button', class: 'quiet', 'data-key': `refresh-${id}`, 'aria-describedby': id,
      onclick: () => attempt(loadAll),
    }, 'Refresh'));
}

function streamTable(card, streams) {
  return h('div', { class: 'table-wrap' }, h('table', { class: 'streams' },
    h('caption', { class: 'visually-hidden' }, `Streams of ${card.name}`),
    h('thead', {}, h('tr', {},
      ['Stream', 'State', 'Format', 'Period', 'Latency', 'Xruns', 'Volume', 'Level']
        .map((name) => h('th', { scope: 'col' }, name)))),
    h('tbody', {}, streams.map((stream) => h('tr', { 'data-stream-row': stream.id },
      h('th', { scope: 'row', 'data-label': 'Stream' },
        h('a', { href: `#/stream/${stream.id}`, 'data-key': `stream-link-${stream.id}` }, stream.name),
        h('span', { class: 'direction' }, ` ${stream.direction} · #${stream.id}`),
        // Under the name, so the table keeps its width on a laptop.
        h('div', { class: 'stream-listen' }, listenButton(streamTarget(stream)))),
      h('td', { 'data-label': 'State' }, h('span', { class: `state state-${stream.state}` }, stream.state)),
      h('td', { 'data-label': 'Format', class: 'nowrap' }, formatParams(stream.params)),
      h('td', { 'data-label': 'Period', class: 'nowrap' }, formatPeriod(stream.params)),
      h('td', { 'data-label': 'Latency', class: 'number' }, `${stream.latency_ms.toFixed(1)} ms`),
      h('td', { 'data-label': 'Xruns', class: 'number' }, stream.xruns),
      h('td', { 'data-label': 'Volume', class: 'number' },
        stream.muted ? h('span', { class: 'muted-tag' }, 'muted') : formatDb(stream.volume_db[0] ?? 0)),
      h('td', { 'data-label': 'Level', class: 'level' }, meter(stream)))))));
}

function detail(id) {
  const stream = state.streams.get(id);
  const back = h('p', {}, h('a', { href: '#/', 'data-key': 'back' }, '← All streams'));
  if (!stream) {
    return h('section', {}, back, h('h2', {}, `Stream ${id}`), h('p', { class: 'empty' }, 'No such stream (it may have been removed with its card).'));
  }
  const card = state.cards.find((c) => c.id === stream.card);
  const volume = h('input', {
    id: 'volume', type: 'range', min: VOLUME_MIN_DB, max: VOLUME_MAX_DB, step: 0.5,
    value: stream.volume_db[0] ?? 0, 'aria-describedby': 'volume-value',
  });
  const volumeValue = h('output', { id: 'volume-value', for: 'volume' }, formatDb(Number(volume.value)));
  volume.addEventListener('input', () => {
    volumeValue.textContent = formatDb(Number(volume.value));
    volume.setAttribute('aria-valuetext', formatDb(Number(volume.value)));
  });
  volume.addEventListener('change', () => patchStream(id, { volume_db: Number(volume.value) }));
  // A toggle keeps its name; aria-pressed (and the style) says whether it is on.
  const mute = h('button', { id: 'mute', type: 'button', class: 'toggle', 'aria-pressed': stream.muted }, 'Mute');
  mute.addEventListener('click', () => {
    const current = state.streams.get(id);
    patchStream(id, { muted: !current.muted });
  });
  const routePicker = h('select', { id: 'route' });
  routePicker.addEventListener('change', () => {
    patchStream(id, { route: routePicker.value === '' ? null : routePicker.value });
  });
  const facts = h('dl', { class: 'facts' });
  const section = h('section', { class: 'detail', 'aria-labelledby': 'detail-title' },
    back,
    h('h2', { id: 'detail-title' }, `${stream.name} `, h('span', { class: 'direction' }, `${stream.direction} · ${card ? card.name : `card ${stream.card}`}`)),
    h('div', { class: 'detail-meter' }, meter(stream)),
    h('div', { class: 'controls' },
      h('div', { class: 'control' },
        h('label', { for: 'volume' }, 'Volume'),
        h('div', { class: 'slider' }, volume, volumeValue)),
      h('div', { class: 'control' }, h('span', { class: 'control-label' }, 'Output'), mute),
      h('div', { class: 'control' }, h('span', { class: 'control-label' }, 'Listen in this browser'), listenButton(streamTarget(stream))),
      h('div', { class: 'control' },
        h('label', { for: 'route' }, `Route (${stream.direction} endpoint)`), routePicker)),
    chainSection(stream),
    facts);
  updateDetail(stream, section);
  return section;
}

/** Refreshes the detail view's values without rebuilding its controls. */
function updateDetail(stream, root = document) {
  if (!stream) return;
  const volume = root.querySelector('#volume');
  if (volume && document.activeElement !== volume) {
    volume.value = stream.volume_db[0] ?? 0;
    root.querySelector('#volume-value').textContent = formatDb(Number(volume.value));
  }
  volume?.setAttribute('aria-valuetext', formatDb(Number(volume.value)));
  const mute = root.querySelector('#mute');
  if (mute) {
    mute.setAttribute('aria-pressed', String(stream.muted));
  }
  const routePicker = root.querySelector('#route');
  if (routePicker) {
    const candidates = state.endpoints.filter((e) => e.direction === stream.direction);
    const fallback = candidates.find((e) => e.default);
    routePicker.replaceChildren(
      h('option', { value: '' }, `Default${fallback ? ` (${fallback.name})` : ''}`),
      ...candidates.map((e) => h('option', { value: e.name }, `${e.name} — ${e.spec}`)));
    routePicker.value = stream.route ?? '';
  }
  updateChain(stream, root);
  const facts = root.querySelector('.facts');
  if (facts) {
    const rows = [
      ['State', stream.state],
      ['Format', formatParams(stream.params)],
      ['Period', formatPeriod(stream.params)],
      ['Buffer', stream.params ? `${stream.params.buffer_bytes / stream.params.frame_bytes} frames` : '—'],
      ['Endpoint', stream.endpoint ?? '—'],
      ['Latency', `${stream.latency_ms.toFixed(1)} ms`],
      ['Xruns', stream.xruns],
      ['Plugin faults', stream.plugin_faults ?? 0],
      ['Position', `${stream.position_frames} frames`],
      ['Volume per channel', stream.volume_db.map(formatDb).join(', ') || '—'],
    ];
    facts.replaceChildren(...rows.flatMap(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]));
  }
}

/** Per stream: whether a PATCH is in flight, and the changes waiting behind it. */
const patchQueues = new Map();

/**
 * Sends `change` to stream `id`. One PATCH per stream is in flight at a time and the ones
 * asked for meanwhile are merged, so a burst of slider steps cannot land out of order.
 */
export async function patchStream(id, change) {
  let queue = patchQueues.get(id);
  if (!queue) {
    queue = { running: false, next: null };
    patchQueues.set(id, queue);
  }
  queue.next = { ...queue.next, ...change };
  if (queue.running) return;
  queue.running = true;
  while (queue.next) {
    const next = queue.next;
    queue.next = null;
    await sendPatch(id, next);
  }
  queue.running = false;
}

async function sendPatch(id, change) {
  clearError();
  await attempt(async () => {
    const stream = await api('PATCH', `/api/streams/${id}`, change);
    state.streams.set(id, stream);
    render();
  });
  // A refused change leaves the controls showing the stream as it is.
  if (!$('error').hidden) updateDetail(state.streams.get(id));
}

function endpointsView() {
  const section = h('section', { 'aria-labelledby': 'endpoints-title' },
    viewHead('endpoints-title', 'Endpoints'));
  if (state.endpoints.length === 0) {
    section.append(h('p', { class: 'empty' }, 'No endpoints open.'));
    return section;
  }
  section.append(h('div', { class: 'table-wrap panel' }, h('table', { class: 'endpoints' },
    h('caption', { class: 'visually-hidden' }, 'Host endpoints'),
    h('thead', {}, h('tr', {},
      ['Endpoint', 'Direction', 'Spec', 'Format', 'Streams', 'Device xruns', 'Load', 'Device', 'Listen']
        .map((name) => h('th', { scope: 'col' }, name)))),
    h('tbody', {}, state.endpoints.map((e) => {
      const cycleNs = (e.format.period_frames * 1e9) / e.format.rate;
      const cycling = e.stats.activity === 'running';
      const load = cycling && cycleNs > 0 ? `${((e.stats.busy_ns / cycleNs) * 100).toFixed(1)} %` : '—';
      return h('tr', {},
        h('th', { scope: 'row', 'data-label': 'Endpoint' }, e.name, e.default ? h('span', { class: 'tag' }, 'default') : null),
        h('td', { 'data-label': 'Direction' }, e.direction),
        h('td', { 'data-label': 'Spec', class: 'spec' }, h('code', {}, e.spec)),
        h('td', { 'data-label': 'Format' }, `${e.format.rate / 1000} kHz · ${e.format.channels} ch · ${e.format.period_frames} frames`),
        h('td', { 'data-label': 'Streams', class: 'number' }, e.attached_streams),
        h('td', { 'data-label': 'Device xruns', class: 'number' }, e.stats.device_xruns),
        h('td', { 'data-label': 'Load', class: 'number' }, load),
        h('td', { 'data-label': 'Device' }, deviceState(e.stats)),
        h('td', { 'data-label': 'Listen', class: 'listen-cell' }, h('div', {},
          listenButton(endpointTarget(e)), isBrowserEndpoint(e) ? microphoneControl(e) : null)));
    })))));
  return section;
}

// What an endpoint's device is doing: lost, running, or asleep with nothing to play.
function deviceState(stats) {
  if (stats.device_lost) return h('span', { class: 'state state-lost' }, 'lost');
  switch (stats.activity) {
    case 'paused': return h('span', { class: 'state state-idle', title: 'No stream runs: the thread sleeps, the device stays open' }, 'idle');
    case 'closed': return h('span', { class: 'state state-idle', title: 'No stream ran for its idle time: closed until the next start' }, 'closed');
    default: return h('span', { class: 'state state-running' }, 'running');
  }
}

function eventsView() {
  return h('section', { 'aria-labelledby': 'events-title' },
    h('h2', { id: 'events-title' }, 'Event log'),
    h('p', { id: 'event-log-empty', class: 'empty', hidden: state.events.length > 0 },
      'No events since this page opened.'),
    h('ol', { id: 'event-log', class: 'event-log', 'aria-live': 'polite', 'aria-relevant': 'additions' },
      state.events.map(eventItem)));
}

// ---- Session -------------------------------------------------------------------------

async function login(token) {
  state.token = token;
  clearError();
  try {
    await loadAll();
  } catch (error) {
    state.token = null;
    showError(error);
    render();
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  connect();
  $('main').focus();
}

function logout(clear = true) {
  stopListening();
  stopMicrophone();
  state.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  disconnect();
  state.streams.clear();
  state.cards = [];
  state.endpoints = [];
  state.loaded = false;
  if (clear) clearError();
  render();
  $('token').focus();
}

function start() {
  $('login').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = $('token').value.trim();
    $('token').value = '';
    if (token) login(token);
  });
  $('logout').addEventListener('click', () => logout());
  $('error-close').addEventListener('click', clearError);
  window.addEventListener('hashchange', () => {
    $('view').dataset.stream = '';
    render();
    // Chains and counters change without events: a detail view starts from a fresh copy.
    const current = route();
    if (current.view === 'stream' && state.loaded) refresh('stream', current.id);
  });
  render();
  if (state.token) login(state.token);
}

start();
