// One run: outcome and reason, result, resources, pauses, and its output (the last lines,
// then followed live while it runs; the full log is a link away).

import {ApiError, get, post, segment} from '../lib/api.js';
import {actionButton, statusLine} from '../lib/actions.js';
import {definitions, fill, h} from '../lib/dom.js';
import {duration, megabytes, outcomeBadge, seconds, timeElement} from '../lib/format.js';
import {subscribe} from '../lib/live.js';
import {LogView, OutputFollower, fullLogLink} from '../lib/logview.js';
import {coalesced} from '../lib/schedule.js';

const EVENTS = new Set(['execution_started', 'execution_finished', 'execution_frozen', 'execution_thawed']);

function pauses(run) {
  if (!run.pauses?.length) return 'none';
  return [h('ul', {class: 'plain'}, run.pauses.map((pause) => h('li', null,
    'frozen ', timeElement(pause.frozen_at, {short: true}), ', ',
    pause.thawed_at ? ['thawed ', timeElement(pause.thawed_at, {short: true})] : 'still frozen'))),
  `${duration(run.frozen_seconds)} frozen in all`];
}

export async function render(root, {params: [executionId], signal, who: whoPromise}) {
  const who = await whoPromise;
  const base = `/daemon/executions/${segment(executionId)}`;
  const status = statusLine();
  const heading = h('h1', {tabindex: -1}, `Run ${executionId.slice(0, 8)}`);
  const actions = h('div', {class: 'actions'});
  const facts = h('div');
  const reason = h('div');
  const result = h('div');
  const view = new LogView({label: 'Output'});
  fill(root,
    h('div', {class: 'page-head'}, heading, h('p', {class: 'muted'}, h('code', null, executionId))),
    actions, status.element,
    h('div', {class: 'grid'},
      h('section', {class: 'card', 'aria-labelledby': 'run-title'},
        h('h2', {id: 'run-title'}, 'Outcome'), facts, reason),
      h('section', {class: 'card', 'aria-labelledby': 'result-title'},
        h('h2', {id: 'result-title'}, 'Result'), result)),
    h('section', {class: 'card', 'aria-labelledby': 'output-title'},
      h('div', {class: 'log-head'}, h('h2', {id: 'output-title'}, 'Output'), fullLogLink(executionId)),
      view.element));

  let run = null;
  let following = false;
  const follower = new OutputFollower(view, executionId, {signal});

  async function load() {
    let record;
    try {
      record = await get(base, {signal});
    } catch (error) {
      // A run-now id answers 404 until the run starts (docs/api.md).
      if (error instanceof ApiError && error.status === 404 && run === null) {
        fill(facts, h('p', {class: 'muted'}, `${error.detail}: it may not have started yet.`));
        return;
      }
      throw error;
    }
    if (signal.aborted) return;
    run = record;
    document.title = `Run ${executionId.slice(0, 8)} of ${run.task_id} · OmniMind`;
    heading.textContent = `Run of ${run.task_id}`;
    fill(facts, definitions([
      ['Task', h('a', {href: `#/task/${segment(run.task_id)}`}, run.task_id)],
      ['Outcome', outcomeBadge(run.outcome)],
      ['Trigger', run.attempt ? `${run.trigger} (retry ${run.attempt})` : run.trigger],
      ['Scheduled', timeElement(run.scheduled_at)],
      ['Started', timeElement(run.started_at)],
      ['Finished', run.finished_at ? timeElement(run.finished_at) : null],
      ['Duration', run.outcome === 'running' ? 'running…' : duration(run.duration_seconds)],
      ['CPU seconds', seconds(run.cpu_seconds)],
      ['Memory (max_rss_mb)', megabytes(run.max_rss_mb)],
      ['Pauses', pauses(run)],
    ]));
    fill(reason, run.reason ? [h('h3', null, 'Reason'), h('pre', {class: 'reason', tabindex: 0}, run.reason)] : null);
    fill(result, run.result === null
      ? h('p', {class: 'muted'}, run.outcome === 'running' ? 'Not yet.' : 'None.')
      : h('pre', {class: 'json', tabindex: 0, 'aria-label': 'Result (JSON)'}, JSON.stringify(run.result, null, 2)));
    if (who.role === 'admin') {
      fill(actions, run.outcome === 'running'
        ? actionButton('Cancel', () => post(`/daemon/tasks/${segment(run.task_id)}/cancel`),
          {status, after: () => refresh()})
        : null);
    }
    if (!following) {
      following = true;
      await follower.load();
    }
  }

  const refresh = coalesced(load, {signal, onError: (error) => status.error(error.detail ?? String(error))});
  const stop = subscribe((message) => {
    if (message.type === 'status' && message.reconnected) refresh();
    else if (EVENTS.has(message.type) && message.data?.execution_id === executionId) refresh();
  });
  signal.addEventListener('abort', stop);
  await refresh.now();
}
