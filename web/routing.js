// The routing view: for each direction, streams on the left, endpoints on the right, a
// line from each stream to the endpoint it plays to (or records from), and a picker on
// each stream to re-route it. A browser endpoint says what feeds it (listen.js).

import { h, patchStream, state, viewHead } from './app.js';
import { isBrowserEndpoint, microphoneSummary } from './listen.js';

/** Height of one row of the graph in CSS pixels (matches `.route-row` in style.css). */
const ROW = 64;
const SVG_NS = 'http://www.w3.org/2000/svg';

function svg(tag, attributes = {}) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  return element;
}

export function routingView() {
  const section = h('section', { 'aria-labelledby': 'routing-title' },
    viewHead('routing-title', 'Routing'),
    h('p', { class: 'hint' }, 'Each stream plays to (or records from) one endpoint. Pick another to move it; it keeps playing.'));
  for (const direction of ['playback', 'capture']) {
    const streams = [...state.streams.values()].filter((s) => s.direction === direction);
    const endpoints = state.endpoints.filter((e) => e.direction === direction);
    if (streams.length === 0 && endpoints.length === 0) continue;
    section.append(graph(direction, streams, endpoints));
  }
  if (section.children.length === 2) section.append(h('p', { class: 'empty' }, 'No streams or endpoints yet.'));
  return section;
}

function graph(direction, streams, endpoints) {
  const id = `routing-${direction}`;
  const rows = Math.max(streams.length, endpoints.length, 1);
  const row = (element, index) => {
    element.style.gridRow = String(index + 1);
    return element;
  };
  const cardName = (stream) => state.cards.find((c) => c.id === stream.card)?.name ?? `card ${stream.card}`;
  const streamNodes = streams.map((stream, index) => {
    const picker = h('select', {
      id: `route-${stream.id}`, 'data-key': `route-${stream.id}`, class: 'route-picker',
      'aria-label': `Route of ${cardName(stream)} ${stream.name} (stream ${stream.id})`,
    },
    h('option', { value: '' }, 'Default'),
    endpoints.map((e) => h('option', { value: e.name }, e.name)));
    picker.value = stream.route ?? '';
    picker.addEventListener('change', () => patchStream(stream.id, { route: picker.value === '' ? null : picker.value }));
    return row(h('div', { class: `route-row route-stream${stream.state === 'running' ? ' route-live' : ''}`, 'data-route-stream': stream.id },
      h('a', { href: `#/stream/${stream.id}`, class: 'route-name' }, `${cardName(stream)} · ${stream.name}`),
      picker), index);
  });
  const endpointNodes = endpoints.map((endpoint, index) => row(
    h('div', { class: 'route-row route-endpoint', 'data-route-endpoint': endpoint.name },
      h('span', { class: 'route-name' }, endpoint.name, endpoint.default ? h('span', { class: 'tag' }, 'default') : null),
      h('span', { class: 'direction' }, `${endpoint.attached_streams} attached`,
        isBrowserEndpoint(endpoint) ? ` · ${microphoneSummary(endpoint)}` : '')), index));
  // The links: from the middle of a stream's row to the middle of its endpoint's row.
  const links = svg('svg', {
    class: 'route-links', viewBox: `0 0 100 ${rows * ROW}`, preserveAspectRatio: 'none', 'aria-hidden': 'true',
  });
  links.style.height = `${rows * ROW}px`;
  streams.forEach((stream, from) => {
    const to = endpoints.findIndex((e) => e.name === stream.endpoint);
    if (to < 0) return;
    const y1 = from * ROW + ROW / 2;
    const y2 = to * ROW + ROW / 2;
    links.append(svg('path', {
      d: `M 0 ${y1} C 50 ${y1}, 50 ${y2}, 100 ${y2}`,
      class: `route-link${stream.state === 'running' ? ' live' : ''}`,
      'vector-effect': 'non-scaling-stroke',
      'data-link': `${stream.id}-${stream.endpoint}`,
    }));
  });
  const streamsColumn = h('div', { class: 'route-column' }, streamNodes);
  const endpointsColumn = h('div', { class: 'route-column' }, endpointNodes);
  for (const column of [streamsColumn, endpointsColumn]) column.style.gridTemplateRows = `repeat(${rows}, ${ROW}px)`;
  return h('article', { class: 'card routing', 'aria-labelledby': id },
    h('header', { class: 'card-head' }, h('h3', { id }, direction === 'playback' ? 'Playback: streams → endpoints' : 'Capture: endpoints → streams')),
    h('div', { class: 'route-graph' },
      h('div', { class: 'route-heading' }, 'Streams'), h('div'), h('div', { class: 'route-heading' }, 'Endpoints'),
      streamsColumn, links, endpointsColumn));
}
