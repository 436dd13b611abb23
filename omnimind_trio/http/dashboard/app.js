// The dashboard's entry point: who is logged in, the live connection, and a hash router
// (#/tasks, #/task/ID, #/run/ID, #/machine, #/add) that mounts one page at a time. Each
// page gets an AbortSignal that ends its requests, timers and subscriptions when another
// page replaces it.

import {ApiError, whoami} from './lib/api.js';
import {fill, h} from './lib/dom.js';
import {refreshTimes} from './lib/format.js';
import {onConnection, startLive} from './lib/live.js';
import * as tasksPage from './pages/tasks.js';

// The tasks page (the first one shown) comes with the app; the others are loaded when first
// visited, so a cold first visit fetches and compiles only what it shows.
const ROUTES = [
  {pattern: /^#\/tasks(?:\?(.*))?$/, page: async () => tasksPage, nav: 'tasks', raw: true}, // a query string
  {pattern: /^#\/task\/([^/?]+)$/, page: () => import('./pages/task.js'), nav: 'tasks'},
  {pattern: /^#\/run\/([^/?]+)$/, page: () => import('./pages/run.js'), nav: 'tasks'},
  {pattern: /^#\/machine$/, page: () => import('./pages/machine.js'), nav: 'machine'},
  {pattern: /^#\/add$/, page: () => import('./pages/add.js'), nav: 'add'},
];

const main = document.getElementById('main');
let controller = null;
let first = true;

function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

async function route() {
  const hash = location.hash || '#/tasks';
  if (!hash.startsWith('#/')) return; // an anchor inside the page
  const found = ROUTES.map((r) => ({...r, match: r.pattern.exec(hash)})).find((r) => r.match);
  controller?.abort();
  controller = new AbortController();
  const {signal} = controller;
  const root = h('div', {class: 'page'});
  fill(main, root);
  for (const link of document.querySelectorAll('[data-nav]')) {
    if (link.dataset.nav === found?.nav) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (!found) {
    document.title = 'Not found · OmniMind';
    fill(root, h('h1', {tabindex: -1}, 'Not found'),
      h('p', null, 'No such page. ', h('a', {href: '#/tasks'}, 'Go to the tasks.')));
    return;
  }
  try {
    const params = found.match.slice(1).map((part) =>
      (part === undefined || found.raw ? part : decodeURIComponent(part)));
    // ``who`` is a promise: a page that needs no role (the task list) does not wait for it.
    const page = await found.page();
    if (signal.aborted) return;
    await page.render(root, {params, signal, who: whoami(), navigate});
  } catch (error) {
    if (signal.aborted || error?.name === 'AbortError') return;
    fill(root, h('h1', {tabindex: -1}, 'Something went wrong'),
      h('p', {class: 'form-error', role: 'alert'},
        error instanceof ApiError ? error.detail : String(error)));
    if (!(error instanceof ApiError)) console.error(error);
  }
  if (!first && !signal.aborted) {
    // Keyboard and screen-reader users land on the new page's heading.
    root.querySelector('h1')?.focus({preventScroll: true});
  }
  first = false;
}

async function showWho() {
  const who = await whoami();
  document.getElementById('who').textContent =
    who.role === 'viewer' ? `· ${who.user} (read only)` : `· ${who.user}`;
  if (who.role === 'viewer') {
    document.body.classList.add('viewer');
    for (const element of document.querySelectorAll('.admin-only')) element.remove();
  }
}

function showConnection() {
  const element = document.getElementById('live');
  const words = {connecting: 'connecting…', live: 'live', retrying: 'reconnecting…'};
  onConnection((state) => {
    element.textContent = words[state];
    element.className = `live ${state}`;
  });
}

document.querySelector('.skip').addEventListener('click', (event) => {
  event.preventDefault();
  main.focus();
});
window.addEventListener('hashchange', route);
setInterval(() => refreshTimes(), 10000);
showConnection();
startLive();
showWho().catch((error) => console.error(error));
route();
