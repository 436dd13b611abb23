// The task list: one page of 100 rows from the server (filters, sort and paging are the
// API's: GET /daemon/dashboard/tasks), so 10,000 tasks cost the browser 100 rows. Live:
// any task or execution event asks for the visible page again, at most every 250 ms.

import {get, query, segment} from '../lib/api.js';
import {sparkline} from '../lib/charts.js';
import {fill, h} from '../lib/dom.js';
import {badge, count, duration, outcomeBadge, timeElement} from '../lib/format.js';
import {subscribe} from '../lib/live.js';
import {coalesced, debounced} from '../lib/schedule.js';

const PAGE_SIZE = 100;
const PRIORITIES = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW'];
const STATUSES = ['running', 'frozen', 'waiting', 'scheduled', 'paused', 'done'];
const SORTS = [
  ['', 'Order added'],
  ['task_id', 'Task id'],
  ['name', 'Name'],
  ['priority', 'Priority (CRITICAL first)'],
  ['status', 'Status'],
  ['next_execution', 'Next run (soonest first)'],
  ['-last_execution', 'Last run (latest first)'],
  ['-execution_count', 'Runs (most first)'],
  ['-failure_count', 'Failures (most first)'],
  ['-created_at', 'Added (newest first)'],
];
const REFETCH_MS = 150;
const REFETCH_ON = new Set([
  'task_added', 'task_updated', 'task_removed', 'task_waiting', 'execution_started',
  'execution_finished', 'execution_frozen', 'execution_thawed', 'gates_changed',
]);
const STATUS_KIND = {
  running: 'run', frozen: 'skip', waiting: 'wait', scheduled: 'none', paused: 'skip', done: 'ok',
};

async function fetchPage(filters, signal) {
  const parameters = query({
    q: filters.q, priority: filters.priority, status: filters.status, sort: filters.sort,
    limit: PAGE_SIZE, offset: (filters.page - 1) * PAGE_SIZE,
  });
  return get(`/daemon/dashboard/tasks${parameters}`, {signal});
}

function stateCell(task) {
  const why = task.status === 'waiting' || task.status === 'frozen'
    ? task.waiting?.detail ?? task.waiting_reason : null;
  return [badge(task.status, STATUS_KIND[task.status] ?? 'none'),
    why ? h('span', {class: 'why'}, why) : null];
}

function nextRunCell(task) {
  if (task.status === 'running' || task.status === 'frozen') {
    return h('span', {class: 'muted'}, 'running now');
  }
  const when = timeElement(task.next_execution, {empty: task.status === 'done' ? 'done' : '—', short: true});
  return task.status === 'waiting' ? ['due ', when] : when;
}

function lastRunCell(task) {
  if (!task.last_outcome) return h('span', {class: 'muted'}, 'never');
  return [outcomeBadge(task.last_outcome), ' ', h('span', {class: 'num'},
    duration(task.last_duration_seconds))];
}

function row(task) {
  // Each cell holds one <div>: on a narrow screen the cell is a grid of its label and it.
  const cell = (label, ...content) => h('td', {'data-label': label}, h('div', null, ...content));
  return h('tr', {dataset: {task: task.task_id}},
    h('th', {scope: 'row', 'data-label': 'Task'}, h('div', null,
      h('a', {href: `#/task/${segment(task.task_id)}`, dataset: {key: task.task_id}}, task.task_id),
      task.name && task.name !== task.task_id ? h('span', {class: 'sub'}, task.name) : null)),
    cell('Priority', badge(task.priority, `prio-${task.priority.toLowerCase()}`)),
    cell('State', stateCell(task)),
    cell('Schedule', task.schedule), // the daemon's words: "every 5 minutes", "after backup"
    cell('Next run', nextRunCell(task)),
    cell('Last run', lastRunCell(task)),
    cell('Last 20 runs', sparkline(task.recent)),
  );
}

function select(id, label, options, value) {
  const element = h('select', {id, name: id});
  for (const [optionValue, text] of options) element.append(h('option', {value: optionValue}, text));
  element.value = value ?? '';
  return [h('label', {for: id}, label), element];
}

function readFilters(search) {
  const parameters = new URLSearchParams(search ?? '');
  const page = Number.parseInt(parameters.get('page') ?? '1', 10);
  return {
    q: parameters.get('q') ?? '',
    priority: parameters.get('priority') ?? '',
    status: parameters.get('status') ?? '',
    sort: parameters.get('sort') ?? '',
    page: Number.isFinite(page) && page > 0 ? page : 1,
  };
}

export async function render(root, {params, signal}) {
  document.title = 'Tasks · OmniMind';
  const filters = readFilters(params[0]);
  const heading = h('h1', {tabindex: -1}, 'Tasks');
  const total = h('p', {class: 'muted', 'aria-live': 'polite'});
  const [searchLabel, search] = [h('label', {for: 'q'}, 'Search'),
    h('input', {id: 'q', name: 'q', type: 'search', value: filters.q, autocomplete: 'off',
      placeholder: 'id, name or description'})];
  const priority = select('priority', 'Priority', [['', 'All'], ...PRIORITIES.map((p) => [p, p])],
    filters.priority);
  const status = select('status', 'Status', [['', 'All'], ...STATUSES.map((s) => [s, s])],
    filters.status);
  const sort = select('sort', 'Sort by', SORTS, filters.sort);
  const body = h('tbody');
  const caption = h('caption', {class: 'visually-hidden'});
  const table = h('table', {class: 'tasks'}, caption,
    h('thead', null, h('tr', null, ...['Task', 'Priority', 'State', 'Schedule', 'Next run',
      'Last run', 'Last 20 runs'].map((name) => h('th', {scope: 'col'}, name)))),
    body);
  const previous = h('button', {type: 'button'}, 'Previous page');
  const next = h('button', {type: 'button'}, 'Next page');
  const place = h('span', {class: 'muted'});
  const pager = h('nav', {class: 'pager', 'aria-label': 'Pages'}, previous, place, next);
  fill(root,
    h('div', {class: 'page-head'}, heading, total),
    h('form', {class: 'filters', role: 'search', onsubmit: (e) => e.preventDefault()},
      h('div', {class: 'filter'}, searchLabel, search),
      h('div', {class: 'filter'}, ...priority), h('div', {class: 'filter'}, ...status),
      h('div', {class: 'filter'}, ...sort)),
    h('div', {class: 'table-wrap'}, table), pager);

  async function load() {
    const answer = await fetchPage(filters, signal);
    if (signal.aborted) return;
    const pages = Math.max(1, Math.ceil(answer.total_tasks / PAGE_SIZE));
    if (filters.page > pages) {
      filters.page = pages;
      refresh();
      return;
    }
    const focused = document.activeElement?.dataset?.key;
    if (answer.tasks.length === 0) {
      fill(body, h('tr', null, h('td', {colspan: 7, class: 'empty'},
        answer.total_tasks === 0 && !filters.q && !filters.priority && !filters.status
          ? 'No tasks yet.' : 'No task matches these filters.')));
    } else {
      fill(body, ...answer.tasks.map(row));
    }
    if (focused) body.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
    const first = (filters.page - 1) * PAGE_SIZE;
    const shown = answer.tasks.length ? `${count(first + 1)}–${count(first + answer.tasks.length)}` : '0';
    total.textContent = `${count(answer.total_tasks)} ${answer.total_tasks === 1 ? 'task' : 'tasks'}`;
    place.textContent = `${shown} of ${count(answer.total_tasks)}`;
    caption.textContent = `Tasks, page ${filters.page} of ${pages}`;
    previous.disabled = filters.page <= 1;
    next.disabled = filters.page >= pages;
  }

  // At most one refetch per REFETCH_MS: a burst of 1,000 events costs a few, and a run's
  // end that arrives while its start is being fetched shows within REFETCH_MS.
  const refresh = coalesced(load, {signal, intervalMs: REFETCH_MS});
  function changed() {
    const parameters = new URLSearchParams();
    for (const key of ['q', 'priority', 'status', 'sort']) if (filters[key]) parameters.set(key, filters[key]);
    if (filters.page > 1) parameters.set('page', String(filters.page));
    const text = parameters.toString();
    // The address keeps the view (back, reload, a shared link) without a new navigation.
    history.replaceState(null, '', `#/tasks${text ? `?${text}` : ''}`);
    refresh();
  }
  const typed = debounced(() => {
    filters.q = search.value.trim();
    filters.page = 1;
    changed();
  }, 200);
  search.addEventListener('input', typed);
  for (const [control, key] of [[priority[1], 'priority'], [status[1], 'status'], [sort[1], 'sort']]) {
    control.addEventListener('change', () => {
      filters[key] = control.value;
      filters.page = 1;
      changed();
    });
  }
  previous.addEventListener('click', () => {
    filters.page -= 1;
    changed();
  });
  next.addEventListener('click', () => {
    filters.page += 1;
    changed();
  });
  const stop = subscribe((message) => {
    if (REFETCH_ON.has(message.type) || message.reconnected) refresh();
  });
  signal.addEventListener('abort', stop);
  await refresh.now();
  performance.mark('omnimind:tasks-shown');
}
