// The machine: the daemon's state with Start and Stop, the gates that admit each priority
// (idle, low activity, sleep window), what tasks' conditions are judged by (the person's
// presence, the power supply, the network), and the measured CPU over the last minutes.

import {get, post} from '../lib/api.js';
import {actionButton, statusLine} from '../lib/actions.js';
import {percentChart, widthOf} from '../lib/charts.js';
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
const CONDITIONS = [
  ['user_away', 'Person away', 'user_idle_seconds'],
  ['on_ac_power', 'On mains power', 'on_ac_power'],
  ['unmetered_network', 'Network not metered', 'network_metered'],
];
const STATE_KIND = {idle: 'ok', working: 'run', sleeping: 'none', stopped: 'skip', error: 'fail'};

function gateWords(name, gate) {
  if (name === 'sleep_window') return `between ${gate.window}`;
  return `CPU outside the daemon below ${gate.threshold_percent} %`;
}

function measured(name, reading, awaySeconds) {
  if (reading.value === null) return `unknown: ${reading.detail ?? 'no source works'} (counts as holding)`;
  const from = reading.source ? `, from ${reading.source}` : '';
  if (name === 'user_away') {
    return `no input for ${Math.round(reading.value)} s (away after ${awaySeconds} s)${from}`;
  }
  if (name === 'on_ac_power') return `${reading.value ? 'on mains power' : 'on battery'}${from}`;
  return `${reading.value ? 'metered' : 'not metered'}${from}`;
}

export async function render(root, {signal, who: whoPromise}) {
  const who = await whoPromise;
  document.title = 'Machine · OmniMind';
  const status = statusLine();
  const daemon = h('div');
  const gates = h('ul', {class: 'gates'});
  const conditions = h('ul', {class: 'gates'});
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
        h('h2', {id: 'gates-title'}, 'Gates'), gates),
      h('section', {class: 'card', 'aria-labelledby': 'conditions-title'},
        h('h2', {id: 'conditions-title'}, 'Conditions'), conditions)),
    h('section', {class: 'card', 'aria-labelledby': 'cpu-title'},
      h('h2', {id: 'cpu-title'}, 'CPU, last 10 minutes'), now, chart));

  let machine = null;

  async function load() {
    const fetched = await get('/daemon/machine', {signal});
    if (signal.aborted) return;
    machine = fetched;
    draw();
  }

  // A ``metrics`` event carries the new sample: it is added to the chart here, so the
  // daemon builds the 10-minute history once per visit, not once a second.
  function addSample(message) {
    if (!machine) return;
    const {cpu_percent: cpu, external_cpu_percent: external} = message.data;
    // The person's idle time grows every second: the sample carries it.
    const idle = machine.conditions.user_idle_seconds;
    if (idle.value !== null && message.data.user_idle_seconds !== null) {
      idle.value = message.data.user_idle_seconds;
    }
    const cutoff = Date.now() - WINDOW_MS;
    machine.cpu_history = machine.cpu_history
      .filter((sample) => Date.parse(sample.time) >= cutoff)
      .concat([{time: message.time, cpu_percent: cpu, external_cpu_percent: external}]);
    draw();
  }

  function draw() {
    fill(daemon, definitions([
      ['State', badge(machine.state, STATE_KIND[machine.state] ?? 'none')],
      ['Scheduler', machine.running ? 'running' : 'stopped (Start runs tasks again)'],
      ['May start now', machine.open_priorities.length ? machine.open_priorities.join(', ') : 'nothing'],
    ]));
    if (buttons) {
      buttons.start.disabled = machine.running;
      buttons.stop.disabled = !machine.running;
    }
    fill(gates, GATES.map(([name, title, admits]) => {
      const gate = machine.gates[name];
      return h('li', {class: 'gate'}, h('strong', null, title), ' ',
        badge(gate.open ? 'open' : 'closed', gate.open ? 'ok' : 'none'),
        h('span', {class: 'why'}, [gateWords(name, gate), gate.open ? `: ${admits}` : ''].join('')));
    }));
    const around = machine.conditions;
    fill(conditions, CONDITIONS.map(([name, title, key]) => {
      const holds = around.holding.includes(name);
      return h('li', {class: 'gate'}, h('strong', null, title), ' ',
        badge(holds ? 'holds' : 'does not hold', holds ? 'ok' : 'none'),
        h('span', {class: 'why'}, measured(name, around[key], around.away_seconds)));
    }));
    const samples = machine.cpu_history;
    const lines = [
      {label: 'outside the daemon (what the gates judge)', className: 'line', key: 'key',
        points: samples.map((sample) => ({time: sample.time, value: sample.external_cpu_percent}))},
      {label: 'whole machine', className: 'line secondary', key: 'key secondary',
        points: samples.map((sample) => ({time: sample.time, value: sample.cpu_percent}))},
    ];
    const thresholds = [['idle', 'idle'], ['low_activity', 'low activity']]
      .map(([name, label]) => ({value: machine.gates[name].threshold_percent, label: `${label} < ${machine.gates[name].threshold_percent} %`}));
    const last = samples.at(-1);
    const peak = samples.reduce((top, sample) => Math.max(top, sample.external_cpu_percent), 0);
    now.textContent = last
      ? `Now ${last.external_cpu_percent.toFixed(0)} % outside the daemon (${last.cpu_percent.toFixed(0)} % in all); ` +
        `highest ${peak.toFixed(0)} % over the last ${samples.length} samples.`
      : 'No sample yet.';
    const to = Date.now();
    fill(chart, percentChart(lines, {
      from: to - WINDOW_MS, to, thresholds, width: widthOf(chart),
      label: last ? `CPU outside the daemon over the last 10 minutes, now ${last.external_cpu_percent.toFixed(0)} %`
        : 'CPU: no sample yet',
    }), h('p', {class: 'legend'}, ...lines.map((line) =>
      h('span', {class: line.key}, line.label))));
  }

  const refresh = coalesced(load, {signal, intervalMs: 1000,
    onError: (error) => status.error(error.detail ?? String(error))});
  const stop = subscribe((message) => {
    if (message.type === 'metrics' && !message.reconnected) addSample(message);
    else if (message.reconnected || ['gates_changed', 'state_changed'].includes(message.type)) refresh();
  });
  signal.addEventListener('abort', stop);
  await refresh.now();
}
