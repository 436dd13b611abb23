// One task: what it is (code, policies, environment, notifications), when it runs next and
// why it is not running, the tasks it runs after and the ones that run after it, its latest
// run with its output followed live, its history with a duration chart, and the actions
// (run, pause or resume, cancel, edit, delete) for an admin credential.

import {ApiError, call, get, post, segment} from '../lib/api.js';
import {actionButton, statusLine} from '../lib/actions.js';
import {durationChart, widthOf} from '../lib/charts.js';
import {definitions, fill, h} from '../lib/dom.js';
import {taskFields} from '../lib/fields.js';
import {badge, duration, outcomeBadge, timeElement} from '../lib/format.js';
import {taskForm} from '../lib/form.js';
import {subscribe} from '../lib/live.js';
import {LogView, OutputFollower, fullLogLink} from '../lib/logview.js';
import {coalesced} from '../lib/schedule.js';
import {InputError} from '../lib/widgets.js';

const HISTORY = 50;
const IDENTITY = new Set(['task_id', 'name', 'description', 'priority', 'code']);
const EVENTS = new Set([
  'task_updated', 'task_waiting', 'execution_started', 'execution_finished', 'execution_frozen',
  'execution_thawed',
]);
const FOLLOWER_EVENTS = new Set(['task_added', 'task_updated']); // may name this task in after
const STATUS_KIND = {
  running: 'run', frozen: 'skip', waiting: 'wait', scheduled: 'none', paused: 'skip', done: 'ok',
};

/** Links to tasks: "a, b". */
function taskLinks(ids) {
  return ids.map((id, index) => [index ? ', ' : null, h('a', {href: `#/task/${segment(id)}`}, id)]);
}

/** A definition value as the detail gives it; ``field`` (its description) fills in a group. */
function shown(value, field) {
  if (value === null || value === undefined) return h('span', {class: 'muted'}, 'none');
  if (Array.isArray(value)) return value.length ? value.join(', ') : h('span', {class: 'muted'}, 'none');
  if (typeof value !== 'object') return String(value);
  // A group shows each of its fields, a default one included; a mapping (env) its entries.
  const entries = field?.fields
    ? field.fields.map((part) => [part.label, value[part.label] ?? part.default, part])
    : Object.entries(value);
  return h('ul', {class: 'plain pairs'}, entries.map(([key, item, part]) =>
    h('li', null, h('code', null, key), ' = ', shown(item, part))));
}

function policies(task, fields) {
  // Every definition field beyond the identity ones, as the detail shows it (the value
  // in force): a new task field appears here by itself.
  return definitions(fields.filter((field) => !IDENTITY.has(field.name)).map((field) => {
    const value = task[field.name];
    if (field.name === 'after' && value) return [field.name, taskLinks(value)];
    if (field.writeOnly && value?.length) {
      return [field.name, [h('ul', {class: 'plain'}, value.map((name) => h('li', null, h('code', null, name)))),
        h('span', {class: 'why'}, 'Values are write-only: they are never shown, only set.')]];
    }
    return [field.name, shown(value, field)];
  }));
}

function whyNotRunning(task) {
  const waiting = task.waiting;
  if (!waiting) return task.running_execution_id ? 'it is running' : null;
  return waiting.detail; // the daemon's words (the upstream tasks are linked under "Runs after")
}

function schedule(task) {
  const waiting = task.waiting;
  const upcoming = task.upcoming?.length
    ? h('ul', {class: 'plain upcoming'}, task.upcoming.map((time) => h('li', null, timeElement(time))))
    : null;
  return definitions([
    ['Status', [badge(task.status, STATUS_KIND[task.status] ?? 'none'),
      task.paused && task.status !== 'paused' ? ' (paused)' : null]],
    ['Schedule', task.schedule],
    ['Runs after', task.after?.length ? taskLinks(task.after) : null],
    ['Followed by', task.followed_by?.length ? taskLinks(task.followed_by) : null],
    ['Next run', timeElement(task.next_execution, {empty: task.status === 'done' ? 'none: it has run' : '—'})],
    ['Upcoming', upcoming],
    ['Why it is not running', whyNotRunning(task)],
    ['Expected start', waiting?.expected_start ? timeElement(waiting.expected_start) : null],
    ['Runs anyway by', waiting?.run_by ? timeElement(waiting.run_by) : null],
    ['Waiting since', task.waiting_since ? timeElement(task.waiting_since) : null],
    ['Retry attempt', task.retry_attempt ? String(task.retry_attempt) : null],
    ['Runs', `${task.execution_count} (${task.success_count} succeeded, ${task.failure_count} failed)`],
    ['Added', timeElement(task.created_at)],
  ]);
}

function historyTable(executions) {
  if (executions.length === 0) return h('p', {class: 'muted'}, 'It has not run yet.');
  return h('div', {class: 'table-wrap'}, h('table', {class: 'history'},
    h('thead', null, h('tr', null, ...['Started', 'Outcome', 'Duration', 'Trigger', 'Run']
      .map((name) => h('th', {scope: 'col'}, name)))),
    h('tbody', null, executions.map((run) => {
      const cell = (label, ...content) => h('td', {'data-label': label}, h('div', null, ...content));
      return h('tr', null,
        cell('Started', timeElement(run.started_at ?? run.scheduled_at, {short: true})),
        cell('Outcome', outcomeBadge(run.outcome)),
        cell('Duration', h('span', {class: 'num'}, duration(run.duration_seconds))),
        cell('Trigger', run.trigger),
        cell('Run', h('a', {href: `#/run/${segment(run.execution_id)}`}, run.execution_id.slice(0, 8))));
    }))));
}

export async function render(root, {params: [taskId], signal, who: whoPromise, navigate}) {
  const who = await whoPromise;
  const base = `/daemon/tasks/${segment(taskId)}`;
  const admin = who.role === 'admin';
  const status = statusLine();
  const heading = h('h1', {tabindex: -1}, taskId);
  const subtitle = h('p', {class: 'muted'});
  const actions = h('div', {class: 'actions'});
  const state = h('div');
  const latestHead = h('div', {class: 'latest-head'});
  const latestBody = h('div');
  const chart = h('div', {class: 'chart-box'});
  const history = h('div');
  const definition = h('div');
  const code = h('pre', {class: 'code', tabindex: 0, 'aria-label': 'Code'});
  const editor = h('section', {class: 'card', hidden: true, 'aria-labelledby': 'edit-title'});
  fill(root,
    h('div', {class: 'page-head'}, heading, subtitle),
    admin ? actions : null, status.element,
    h('div', {class: 'grid'},
      h('section', {class: 'card', 'aria-labelledby': 'state-title'},
        h('h2', {id: 'state-title'}, 'Schedule'), state),
      h('section', {class: 'card', 'aria-labelledby': 'latest-title'},
        h('h2', {id: 'latest-title'}, 'Latest run'), latestHead, latestBody)),
    editor,
    h('section', {class: 'card', 'aria-labelledby': 'history-title'},
      h('h2', {id: 'history-title'}, 'History'), chart, history),
    h('section', {class: 'card', 'aria-labelledby': 'definition-title'},
      h('h2', {id: 'definition-title'}, 'Definition'), definition,
      h('h3', null, 'Code'), code));

  let task = null;
  let fields = null;
  let shownRun = null; // {id, controller, view}
  let deleted = false;

  function showLatest(run) {
    const id = run?.execution_id ?? null;
    if (!id) {
      fill(latestHead, h('p', {class: 'muted'}, 'It has not run yet.'));
      latestBody.replaceChildren();
      shownRun?.controller.abort();
      shownRun = null;
      return;
    }
    fill(latestHead, definitions([
      ['Run', h('a', {href: `#/run/${segment(id)}`}, id)],
      ['Outcome', outcomeBadge(run.outcome)],
      ['Started', timeElement(run.started_at)],
      ['Duration', run.outcome === 'running' ? 'running…' : duration(run.duration_seconds)],
      ['Reason', run.reason ? h('span', {class: 'reason'}, run.reason.split('\n')[0]) : null],
    ]));
    if (shownRun?.id !== id) {
      shownRun?.controller.abort();
      const controller = new AbortController();
      signal.addEventListener('abort', () => controller.abort());
      const view = new LogView({label: 'Output of the latest run'});
      const follower = new OutputFollower(view, id, {signal: controller.signal});
      shownRun = {id, controller};
      fill(latestBody, h('div', {class: 'log-head'}, h('h3', null, 'Output'), fullLogLink(id)),
        view.element);
      follower.load().catch(report);
    }
  }

  function report(error) {
    if (error?.name !== 'AbortError' && !signal.aborted) status.error(error.detail ?? String(error));
  }

  // The buttons are made once and shown or hidden as the task changes, so a refresh never
  // takes the keyboard focus away from the one just pressed.
  const after = () => refresh();
  const buttons = admin ? {
    run: actionButton('Run now', () => post(`${base}/run`), {status, after, className: 'primary'}),
    pause: actionButton('Pause', () => post(`${base}/pause`), {status, after}),
    resume: actionButton('Resume', () => post(`${base}/resume`), {status, after}),
    cancel: actionButton('Cancel', () => post(`${base}/cancel`), {status, after}),
    edit: h('button', {type: 'button', class: 'action', 'aria-expanded': 'false',
      onclick: () => openEditor().catch(report)}, 'Edit'),
    remove: actionButton('Delete', async () => {
      if (!window.confirm(`Delete the task ${taskId}? Its history stays.`)) return false;
      return call('DELETE', base);
    }, {status, className: 'danger', after: () => navigate('#/tasks')}),
  } : null;
  if (buttons) fill(actions, ...Object.values(buttons));

  function showActions() {
    if (!buttons) return;
    if (deleted) {
      actions.replaceChildren();
      return;
    }
    const visible = {
      pause: !task.paused, resume: task.paused, cancel: Boolean(task.running_execution_id),
      remove: task.kind === 'code',
    };
    for (const [name, shown] of Object.entries(visible)) {
      const button = buttons[name];
      if (button.hidden === !shown) continue;
      const hadFocus = document.activeElement === button;
      button.hidden = !shown;
      if (hadFocus) (name === 'pause' ? buttons.resume : name === 'resume' ? buttons.pause : buttons.run).focus();
    }
    buttons.edit.setAttribute('aria-expanded', String(!editor.hidden));
  }

  async function openEditor() {
    fields ??= await taskFields();
    // Filled in with the detail (secrets: their names only, so they are never sent back).
    const form = taskForm(fields.filter((field) => task.kind === 'code' || field.name !== 'code'),
      {values: task, readOnly: ['task_id'], submitLabel: 'Save changes', idPrefix: 'edit'});
    form.element.addEventListener('submit', async (event) => {
      event.preventDefault();
      form.clearErrors();
      try {
        const changes = form.read({changedOnly: true});
        if (Object.keys(changes).length === 0) {
          form.showError('Nothing to update: change a field first');
          return;
        }
        const answer = await call('PATCH', base, changes);
        status.ok(answer.message);
        editor.hidden = true;
        showActions();
        refresh();
      } catch (error) {
        if (!(error instanceof ApiError || error instanceof InputError)) throw error;
        form.showError(error.detail);
      }
    });
    fill(editor, h('h2', {id: 'edit-title'}, 'Edit'), form.element,
      h('button', {type: 'button', class: 'action', onclick: () => {
        editor.hidden = true;
        showActions();
      }}, 'Discard changes'));
    editor.hidden = false;
    showActions();
    editor.querySelector('input:not([disabled]), textarea, select')?.focus();
  }

  async function load() {
    let detail;
    try {
      detail = await get(base, {signal});
    } catch (error) {
      if (error instanceof ApiError && error.status === 404 && task !== null) {
        markDeleted();
        return;
      }
      throw error;
    }
    const runs = await get(`${base}/executions?limit=${HISTORY}`, {signal});
    if (signal.aborted) return;
    if (deleted) {
      // Added again under this id: a new task (its own registration), whose history and
      // counters start empty; the deleted one's runs stay in the history of every run.
      deleted = false;
      if (buttons) fill(actions, ...Object.values(buttons));
      status.ok('A new task was added under this id: its history starts empty.');
    }
    task = detail;
    document.title = `${task.task_id} · OmniMind`;
    heading.textContent = task.name;
    fill(subtitle, h('code', null, task.task_id), ' · ', badge(task.priority,
      `prio-${task.priority.toLowerCase()}`), task.description ? ` · ${task.description}` : '');
    fill(state, schedule(task));
    const executions = runs.executions;
    const running = task.running_execution_id
      ? executions.find((run) => run.execution_id === task.running_execution_id)
        ?? {execution_id: task.running_execution_id, outcome: 'running'}
      : executions.find((run) => run.outcome !== 'skipped') ?? executions[0];
    showLatest(running);
    fill(chart, durationChart([...executions].reverse(), {width: widthOf(chart)}));
    fill(history, historyTable(executions),
      runs.total > executions.length
        ? h('p', {class: 'muted'}, `The last ${executions.length} of ${runs.total} runs.`) : null);
    fields ??= await taskFields().catch(() => null);
    const shownFields = fields ?? Object.keys(task).map((name) => ({name}));
    fill(definition, policies(task, shownFields.filter((field) => field.name in task)));
    code.textContent = task.code ?? '(an in-process task: its code is part of the program running the daemon)';
    showActions();
  }

  function markDeleted() {
    deleted = true;
    editor.hidden = true;
    showActions();
    status.error('This task was deleted. Its history stays.');
  }

  const refresh = coalesced(load, {signal, onError: report});
  const stop = subscribe((message) => {
    const about = message.data?.task_id;
    if (message.type === 'status' && message.reconnected) refresh();
    else if (message.type === 'task_removed' && about === taskId) markDeleted();
    else if (message.type === 'task_added' && about === taskId) refresh(); // added again
    else if (EVENTS.has(message.type) && about === taskId) refresh();
    else if (message.type === 'execution_finished' && task?.after?.includes(about)) refresh();
    // Another task added, changed or removed may run after this one (its events do not
    // say); a removed one is asked about only if it followed this one.
    else if (message.type === 'task_removed' && task?.followed_by?.includes(about)) refresh();
    else if (FOLLOWER_EVENTS.has(message.type) && about !== taskId) refresh();
  });
  signal.addEventListener('abort', stop);
  await refresh.now();
}
