// The machine: the daemon's state with Start and Stop, the gates that admit each priority
// (idle, low activity, sleep window), and the measured CPU over the last minutes.

import {ApiError, get, post} from '../lib/api.js';
import {actionButton, statusLine} from '../lib/actions.js';
import {percentChart} from '../lib/charts.js';
import {definitions, fill, h} from '../lib/dom.js';
import {badge} from '../lib/format.js';
import {subscribe} from '../lib/live.js';
import {coalesced} from '../lib/schedule.js';

const WINDOW_MS = 10 * 60 * 1000;
const GATES = [
  ['idle', 'Idle', 'HIGH tasks start'],
  ['low_activity', 'Low activity', 'MEDIUM tasks start'],
  ['sleep_window', 'Sleep window', 'LOW tasks start'],
];
const STATE_KIND = {idle: 'ok', working: 'run', sleeping: 'none', stopped: 'skip', error: 'fail'};

let useStatus = false; // BACKEND-FALLBACK: the daemon has no /daemon/machine
const sampled = []; // BACKEND-FALLBACK: CPU samples seen on this page, without cpu_history

async function fetchMachine(signal) {
  if (!useStatus) {
    try {
      return await get('/daemon/machine', {signal});
    } catch (error) {
      if (!(error instanceof ApiError) || !error.noSuchRoute) throw error;
      useStatus = true;
    }
  }
  const status = await get('/daemon/status', {signal});
  return {
    state: status.state,
    running: status.running,
    gates: {
      idle: {open: status.metrics.is_idle},
      sleep_window: {open: status.metrics.is_sleep_time},
    },
    cpu_history: sampled,
  };
}

function gateWords(name, gate) {
  if (name === 'sleep_window') return gate.window ? `between ${gate.window}` : '';
  return gate.threshold_percent !== undefined ? `CPU outside the daemon below ${gate.threshold_percent} %` : '';
}

export async function render(root, {signal, who}) {
  document.title = 'Machine · OmniMind';
  const status = statusLine();
  const daemon = h('div');
  const gates = h('ul', {class: 'gates'});
  const chart = h('div', {class: 'chart-box'});
  const now = h('p', {class: 'muted'});
  const buttons = who.role === 'admin' ? {
    start: actionButton('Start', () => post('/daemon/start'), {status, after: () => refresh()}),
    stop: actionButton('Stop', () => post('/daemon/stop'), {status, after: () => refresh(), className: 'danger'}),
  } : null;
  fill(root,
    h('div', {class: 'page-head'}, h('h1', {tabindex: -1}, 'Machine')),
    buttons ? h('div', {class: 'actions'}, buttons.start, buttons.stop) : null, status.element,
    h('div', {class: 'grid'},
      h('section', {class: 'card', 'aria-labelledby': 'daemon-title'},
        h('h2', {id: 'daemon-title'}, 'Daemon'), daemon),
      h('section', {class: 'card', 'aria-labelledby': 'gates-title'},
        h('h2', {id: 'gates-title'}, 'Gates'), gates)),
    h('section', {class: 'card', 'aria-labelledby': 'cpu-title'},
      h('h2', {id: 'cpu-title'}, 'CPU, last 10 minutes'), now, chart));

  async function load() {
    const machine = await fetchMachine(signal);
    if (signal.aborted) return;
    fill(daemon, definitions([
      ['State', badge(machine.state, STATE_KIND[machine.state] ?? 'none')],
      ['Scheduler', machine.running ? 'running' : 'stopped (Start runs tasks again)'],
    ]));
    if (buttons) {
      buttons.start.disabled = machine.running;
      buttons.stop.disabled = !machine.running;
    }
    fill(gates, GATES.filter(([name]) => machine.gates[name]).map(([name, title, admits]) => {
      const gate = machine.gates[name];
      return h('li', {class: 'gate'}, h('strong', null, title), ' ',
        badge(gate.open ? 'open' : 'closed', gate.open ? 'ok' : 'none'),
        h('span', {class: 'why'}, [gateWords(name, gate), gate.open ? `: ${admits}` : ''].join('')));
    }));
    const points = machine.cpu_history.map((sample) => ({time: sample.time, value: sample.cpu_percent}));
    const thresholds = [['idle', 'idle'], ['low_activity', 'low activity']]
      .filter(([name]) => machine.gates[name]?.threshold_percent !== undefined)
      .map(([name, label]) => ({value: machine.gates[name].threshold_percent, label}));
    const last = points.at(-1);
    const peak = points.reduce((top, point) => Math.max(top, point.value), 0);
    now.textContent = last
      ? `Now ${last.value.toFixed(0)} %, highest ${peak.toFixed(0)} % over ${points.length} samples.`
      : 'No sample yet.';
    const to = Date.now();
    fill(chart, percentChart(points, {
      from: to - WINDOW_MS, to, thresholds,
      label: last ? `CPU over the last 10 minutes, now ${last.value.toFixed(0)} %` : 'CPU: no sample yet',
    }));
  }

  const refresh = coalesced(load, {signal, intervalMs: 1000,
    onError: (error) => status.error(error.detail ?? String(error))});
  const stop = subscribe((message) => {
    if (message.type === 'metrics' && useStatus) {
      sampled.push({time: message.time, cpu_percent: message.data.external_cpu_percent ?? message.data.cpu_percent});
      while (sampled.length && new Date(sampled[0].time).getTime() < Date.now() - WINDOW_MS) sampled.shift();
    }
    if (['status', 'metrics', 'gates_changed', 'state_changed'].includes(message.type)) refresh();
  });
  signal.addEventListener('abort', stop);
  await load();
}
