// The plugin library (upload by drag-and-drop or a file button, manifests, versions,
// fault counters, removal) and a playback stream's effect chain editor (add, remove,
// reorder, bypass, parameters, fault state).

import {
  $, api, attempt, clearError, h, patchStream, render, state, uploadPlugin, viewHead,
} from './app.js';

/** Plugins with more parameters than this show them folded. */
const PARAMS_SHOWN_OPEN = 4;

const STAGE_STATES = {
  active: 'running',
  bypassed: 'bypassed',
  faulted: 'faulted — skipped, the stream plays on',
  refused: 'refused for this stream (see the event log)',
  pending: 'starts with the stream',
};

/** Loads the plugin library into `state.plugins` and redraws. */
export async function loadPlugins() {
  state.plugins = await api('GET', '/api/plugins');
  render();
}

function ensurePlugins() {
  if (state.plugins === null && !ensurePlugins.loading) {
    ensurePlugins.loading = true;
    attempt(loadPlugins).finally(() => { ensurePlugins.loading = false; });
  }
}

function findPlugin(name) {
  return state.plugins?.find((p) => p.name === name);
}

// ---- Library -------------------------------------------------------------------------

export function pluginsView() {
  ensurePlugins();
  const input = h('input', {
    id: 'plugin-file', type: 'file', accept: '.wasm,application/wasm', class: 'visually-hidden',
    tabindex: -1, 'aria-hidden': 'true',
  });
  input.addEventListener('change', () => {
    if (input.files.length > 0) upload(input.files[0]);
    input.value = '';
  });
  const choose = h('button', { type: 'button', 'data-key': 'plugin-choose', onclick: () => input.click() },
    'Choose a .wasm file…');
  const zone = h('div', { id: 'plugin-drop', class: 'dropzone', 'aria-labelledby': 'plugin-drop-text' },
    h('p', { id: 'plugin-drop-text' }, 'Drop a ', h('code', {}, '.wasm'), ' plugin here to install it, or'),
    choose, input,
    h('p', { id: 'upload-status', class: 'upload-status', role: 'status', 'aria-live': 'polite' }, uploadStatus));
  for (const type of ['dragenter', 'dragover']) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add('dragging');
    });
  }
  zone.addEventListener('dragleave', () => zone.classList.remove('dragging'));
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('dragging');
    const file = event.dataTransfer?.files?.[0];
    if (file) upload(file);
  });
  const section = h('section', { 'aria-labelledby': 'plugins-title' },
    viewHead('plugins-title', 'Plugins'), zone);
  if (state.plugins === null) {
    section.append(h('p', { class: 'empty', role: 'status' }, 'Loading the plugin library…'));
    return section;
  }
  section.append(h('div', { class: 'plugin-list' }, state.plugins.map(pluginCard)));
  return section;
}

let uploadStatus = '';

async function upload(file) {
  clearError();
  uploadStatus = `Installing ${file.name}…`;
  const status = $('upload-status');
  if (status) status.textContent = uploadStatus;
  const done = await attempt(async () => {
    const plugin = await uploadPlugin(file);
    uploadStatus = `Installed ${plugin.name} ${plugin.version}` +
      (plugin.streams.length > 0 ? `; streams ${plugin.streams.join(', ')} moved to it` : '');
    await loadPlugins();
  });
  if (!done) uploadStatus = `${file.name} was not installed`;
  const shown = $('upload-status');
  if (shown) shown.textContent = uploadStatus;
}

function range([low, high], unit = '') {
  return low === high ? `${low}${unit}` : `${low}–${high}${unit}`;
}

function pluginCard(plugin) {
  const id = `plugin-${plugin.name}`;
  const params = plugin.params.length === 0 ? h('p', { class: 'empty' }, 'No parameters.') :
    h('details', { class: 'params', open: plugin.params.length <= PARAMS_SHOWN_OPEN },
      h('summary', {}, `Parameters (${plugin.params.length})`),
      h('div', { class: 'table-wrap' }, h('table', {},
      h('caption', { class: 'visually-hidden' }, `Parameters of ${plugin.name}`),
      h('thead', {}, h('tr', {}, ['Parameter', 'Range', 'Default', 'Unit'].map((n) => h('th', { scope: 'col' }, n)))),
      h('tbody', {}, plugin.params.map((p) => h('tr', {},
        h('th', { scope: 'row', 'data-label': 'Parameter' }, p.name),
        h('td', { 'data-label': 'Range', class: 'number' }, `${p.min} to ${p.max}`),
        h('td', { 'data-label': 'Default', class: 'number' }, p.default),
        h('td', { 'data-label': 'Unit' }, p.unit || '—')))))));
  const facts = [
    ['Formats in', plugin.input_formats.join(', ')],
    ['Formats out', plugin.output_formats.join(', ')],
    ['Rates', `${range(plugin.rates)} Hz`],
    ['Channels', `${range(plugin.input_channels)} in, ${range(plugin.output_channels)} out`],
    ['SHA-256', h('code', { class: 'hash', title: plugin.sha256 }, `${plugin.sha256.slice(0, 16)}…`)],
    ['Streams', plugin.streams.length === 0 ? 'none' :
      plugin.streams.flatMap((s, i) => [i > 0 ? ', ' : null, h('a', { href: `#/stream/${s}` }, `stream ${s}`)])],
  ];
  const remove = plugin.source === 'installed' ? h('button', {
    type: 'button', class: 'quiet danger', 'data-key': `plugin-delete-${plugin.name}`,
    'aria-label': `Delete plugin ${plugin.name}`,
    onclick: () => attempt(async () => {
      clearError();
      await api('DELETE', `/api/plugins/${encodeURIComponent(plugin.name)}`);
      uploadStatus = `Deleted ${plugin.name}`;
      await loadPlugins();
    }),
  }, 'Delete') : null;
  return h('article', { class: 'card plugin', 'aria-labelledby': id, 'data-plugin': plugin.name },
    h('header', { class: 'card-head' },
      h('h3', { id }, plugin.name),
      h('span', { class: 'version' }, plugin.version),
      h('span', { class: 'tag' }, plugin.kind),
      h('span', { class: 'tag' }, plugin.source === 'shipped' ? 'shipped' :
        plugin.shadows_shipped ? 'installed, replaces shipped' : 'installed'),
      h('span', { class: `faults${plugin.faults > 0 ? ' has-faults' : ''}`, 'data-faults': plugin.faults },
        `${plugin.faults} fault${plugin.faults === 1 ? '' : 's'}`),
      remove),
    plugin.description ? h('p', { class: 'plugin-description' }, plugin.description) : null,
    h('dl', { class: 'facts plugin-facts' }, facts.flatMap(([t, v]) => [h('dt', {}, t), h('dd', {}, v)])),
    params);
}

// ---- Chain editor --------------------------------------------------------------------

/** The chain section of a stream's detail view, filled by `updateChain`. */
export function chainSection(stream) {
  if (stream.direction !== 'playback') return null;
  ensurePlugins();
  return h('section', { class: 'chain', 'aria-labelledby': 'chain-title' },
    h('h3', { id: 'chain-title' }, 'Plugin chain'),
    h('div', { id: 'chain-body' }));
}

/** Redraws the chain when it (or the library) changed, keeping focus on the same control. */
export function updateChain(stream, root = document) {
  const body = root.querySelector('#chain-body');
  if (!body) return;
  const key = JSON.stringify([stream.chain, stream.plugin_stages, state.plugins?.map((p) => p.name)]);
  if (body.dataset.shown === key) return;
  body.dataset.shown = key;
  const focusKey = document.activeElement?.dataset?.key;
  body.replaceChildren(...chainContent(stream).filter(Boolean));
  if (focusKey) body.querySelector(`[data-key="${CSS.escape(focusKey)}"]`)?.focus();
}

/** The chain as the API takes it. */
function chainRequest(chain) {
  return chain.map(({ plugin, params, bypass }) => ({ plugin, params: { ...params }, bypass }));
}

function setChain(stream, change) {
  const chain = chainRequest(stream.chain);
  change(chain);
  patchStream(stream.id, { chain });
}

function chainContent(stream) {
  const stages = stream.chain.map((stage, index) => stageItem(stream, stage, index));
  const effects = (state.plugins ?? []).filter((p) => p.kind === 'effect');
  const picker = h('select', { id: 'chain-add', 'data-key': 'chain-add' },
    effects.map((p) => h('option', { value: p.name }, `${p.name} ${p.version}`)));
  const add = h('button', {
    type: 'button', 'data-key': 'chain-add-button', disabled: effects.length === 0,
    onclick: () => setChain(stream, (chain) => chain.push({ plugin: picker.value, params: {}, bypass: false })),
  }, 'Add to chain');
  const native = stream.plugin_stages.filter((s) => s.stage !== 'effect');
  return [
    stages.length === 0 ? h('p', { class: 'empty' }, 'No effect stages: the stream plays through the native chain.') :
      h('ol', { class: 'stages', 'aria-label': 'Effect stages, first to last' }, stages),
    h('div', { class: 'chain-add' },
      h('label', { for: 'chain-add' }, 'Effect plugin'), picker, add),
    native.length === 0 ? null : h('p', { class: 'native-stages' }, 'Plugins serving native stages: ',
      native.flatMap((s, i) => [i > 0 ? ', ' : null,
        h('span', { class: s.fault ? 'stage-faulted' : '' },
          `${s.stage} → ${s.plugin}${s.fault ? ` (faulted: ${s.fault}; native ${s.stage} serves)` : ''}`)])),
  ];
}

function stageItem(stream, stage, index) {
  const last = stream.chain.length - 1;
  const name = `${stage.plugin} (stage ${index + 1})`;
  const move = (offset) => setChain(stream, (chain) => {
    const [moved] = chain.splice(index, 1);
    chain.splice(index + offset, 0, moved);
  });
  const manifest = findPlugin(stage.plugin);
  const params = (manifest?.params ?? []).map((param) => paramControl(stream, stage, index, param));
  return h('li', { class: `stage stage-${stage.state}`, 'data-stage': index },
    h('div', { class: 'stage-head' },
      h('span', { class: 'stage-name' }, stage.plugin,
        manifest ? h('span', { class: 'version' }, ` ${manifest.version}`) : null),
      h('span', { class: `state state-${stage.state}`, 'data-state': stage.state }, STAGE_STATES[stage.state] ?? stage.state),
      stage.fault ? h('span', { class: 'stage-fault' }, stage.fault) : null),
    h('div', { class: 'stage-actions' },
      h('button', {
        type: 'button', class: 'quiet', 'data-key': `stage-up-${index}`, disabled: index === 0,
        'aria-label': `Move ${name} up`, onclick: () => move(-1),
      }, '↑ Up'),
      h('button', {
        type: 'button', class: 'quiet', 'data-key': `stage-down-${index}`, disabled: index === last,
        'aria-label': `Move ${name} down`, onclick: () => move(1),
      }, '↓ Down'),
      h('button', {
        type: 'button', class: 'toggle', 'data-key': `stage-bypass-${index}`, 'aria-pressed': String(stage.bypass),
        'aria-label': `Bypass ${name}`,
        onclick: () => setChain(stream, (chain) => { chain[index].bypass = !chain[index].bypass; }),
      }, 'Bypass'),
      h('button', {
        type: 'button', class: 'quiet danger', 'data-key': `stage-remove-${index}`,
        'aria-label': `Remove ${name}`,
        onclick: () => setChain(stream, (chain) => { chain.splice(index, 1); }),
      }, 'Remove')),
    params.length === 0 ? null : params.length <= PARAMS_SHOWN_OPEN ? h('div', { class: 'stage-params' }, params) :
      h('details', { class: 'stage-more', open: openStages.has(`${stream.id}/${index}`),
        ontoggle: (event) => rememberOpen(`${stream.id}/${index}`, event.target.open) },
      h('summary', {}, `Parameters (${params.length})`),
      h('div', { class: 'stage-params' }, params)));
}

/** Folded parameter lists the user opened, so a redraw keeps them open. */
const openStages = new Set();

function rememberOpen(key, open) {
  if (open) openStages.add(key);
  else openStages.delete(key);
}

function paramControl(stream, stage, index, param) {
  const id = `param-${index}-${param.name}`;
  const value = stage.params[param.name] ?? param.default;
  const step = (param.max - param.min) / 100 || 0.01;
  const input = h('input', {
    id, type: 'range', min: param.min, max: param.max, step, value,
    'data-key': id, 'aria-describedby': `${id}-value`,
  });
  const shown = h('output', { id: `${id}-value`, for: id }, formatParam(value, param.unit));
  input.addEventListener('input', () => { shown.textContent = formatParam(Number(input.value), param.unit); });
  input.addEventListener('change', () => setChain(stream, (chain) => {
    chain[index].params[param.name] = Number(input.value);
  }));
  return h('div', { class: 'slider param' },
    h('label', { for: id }, `${param.name} `, h('span', { class: 'visually-hidden' }, `of ${stage.plugin} (stage ${index + 1})`)),
    input, shown);
}

function formatParam(value, unit) {
  return `${Number(value).toFixed(2)}${unit ? ` ${unit}` : ''}`;
}
