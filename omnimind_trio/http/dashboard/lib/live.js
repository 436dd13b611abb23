// Live updates: one WebSocket for the whole page (docs/api.md, "Live updates"). A browser
// cannot send a Basic header on a WebSocket, so each connection first asks for a
// single-use token over HTTP. A dropped connection is opened again with a growing,
// jittered delay; events missed meanwhile are lost, so the first message of every
// connection (the status) tells the pages to fetch what they show again.

import {post} from './api.js';

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;

const listeners = new Set();
const stateListeners = new Set();
let delay = FIRST_DELAY_MS;
let socket = null;
let started = false;
let state = 'connecting';
let connections = 0;

/**
 * Call ``listener(message)`` for every message; returns the function that stops it. The
 * first message of each connection is the status, with ``reconnected`` true when events
 * may have been missed since the page was drawn (a connection before it was lost).
 */
export function subscribe(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Call ``listener(state)`` when the connection's state changes: connecting, live, retrying. */
export function onConnection(listener) {
  stateListeners.add(listener);
  listener(state);
  return () => stateListeners.delete(listener);
}

function setState(next) {
  state = next;
  for (const listener of stateListeners) listener(next);
}

function emit(message) {
  for (const listener of [...listeners]) {
    try {
      listener(message);
    } catch (error) {
      console.error('live update listener failed', error);
    }
  }
}

function retry() {
  const wait = delay * (0.75 + Math.random() / 2);
  delay = Math.min(delay * 2, MAX_DELAY_MS);
  setState('retrying');
  setTimeout(connect, wait);
}

async function connect() {
  let token;
  try {
    ({token} = await post('/daemon/ws/token'));
  } catch {
    retry();
    return;
  }
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const url = `${scheme}//${location.host}/daemon/ws?token=${encodeURIComponent(token)}`;
  socket = new WebSocket(url);
  socket.addEventListener('message', (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message.type === 'status') {
      // After a reconnection the pages fetch again what they show: events were missed.
      connections += 1;
      message.reconnected = connections > 1;
      delay = FIRST_DELAY_MS;
      setState('live');
    }
    emit(message);
  });
  socket.addEventListener('close', () => {
    socket = null;
    retry();
  });
}

/** Open the connection (once per page load). */
export function startLive() {
  if (started) return;
  started = true;
  connect();
}
