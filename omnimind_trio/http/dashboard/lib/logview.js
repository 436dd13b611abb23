// A run's output, followed live: the last lines from GET /daemon/executions/{id}/log?tail=N,
// then every execution_output event appended. The page never holds the whole log (it may
// be 10 MB): the view keeps at most MAX_LINES lines and MAX_CHARS characters, dropping the
// oldest, and links to the full log instead.

import {ApiError, getText, segment} from './api.js';
import {h} from './dom.js';
import {subscribe} from './live.js';

const TAIL_LINES = 500;
const MAX_LINES = 2000;
const MAX_CHARS = 512 * 1024;
const FLUSH_MS = 60;

function newlines(text) {
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n += 1;
  return n;
}

/** The last ``lines`` lines of ``text``. */
export function lastLines(text, lines) {
  let end = text.endsWith('\n') ? text.length - 1 : text.length;
  let at = end;
  for (let n = 0; n < lines; n += 1) {
    at = text.lastIndexOf('\n', at - 1);
    if (at === -1) return text;
  }
  return text.slice(at + 1);
}

/** A bounded, scrolling <pre> that appends text in batches and keeps to its end. */
export class LogView {
  constructor({label = 'Output'} = {}) {
    this.pre = h('pre', {class: 'log', tabindex: 0, 'aria-label': label});
    this.notice = h('p', {class: 'muted log-notice', hidden: true});
    this.element = h('div', {class: 'log-box'}, this.notice, this.pre);
    this.chunks = [];
    this.lines = 0;
    this.chars = 0;
    this.pending = [];
    this.pendingChars = 0;
    this.timer = null;
    this.dropped = false;
  }

  /** Show ``text`` alone; ``cut``: it is only the end of the output. */
  reset(text, {cut = false} = {}) {
    this.pre.replaceChildren();
    this.chunks = [];
    this.lines = 0;
    this.chars = 0;
    this.pending = [];
    this.pendingChars = 0;
    this.dropped = cut;
    this.add(text, null);
    this.trim();
    this.showNotice();
    this.pre.scrollTop = this.pre.scrollHeight;
  }

  /** Append ``text`` (``stream``: "stderr" is marked), soon. */
  append(text, stream) {
    if (!text) return;
    this.pending.push([text, stream]);
    this.pendingChars += text.length;
    // A hidden tab runs timers rarely: what waits is bounded too.
    while (this.pendingChars > MAX_CHARS && this.pending.length > 1) {
      this.pendingChars -= this.pending.shift()[0].length;
      this.dropped = true;
    }
    this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  flush() {
    this.timer = null;
    const following = this.pre.scrollHeight - this.pre.scrollTop - this.pre.clientHeight < 40;
    for (const [text, stream] of this.pending) this.add(text, stream);
    this.pending = [];
    this.pendingChars = 0;
    this.trim();
    this.showNotice();
    if (following) this.pre.scrollTop = this.pre.scrollHeight;
  }

  add(text, stream) {
    if (!text) return;
    const node = stream === 'stderr'
      ? h('span', {class: 'stderr'}, text) : document.createTextNode(text);
    this.pre.append(node);
    const lines = newlines(text);
    this.chunks.push({node, lines, chars: text.length});
    this.lines += lines;
    this.chars += text.length;
  }

  trim() {
    while ((this.lines > MAX_LINES || this.chars > MAX_CHARS) && this.chunks.length > 1) {
      const first = this.chunks.shift();
      first.node.remove();
      this.lines -= first.lines;
      this.chars -= first.chars;
      this.dropped = true;
    }
    const [only] = this.chunks;
    if (this.chunks.length === 1 && (this.lines > MAX_LINES || this.chars > MAX_CHARS)) {
      const text = lastLines(only.node.textContent, MAX_LINES).slice(-MAX_CHARS);
      only.node.textContent = text;
      this.lines = only.lines = newlines(text);
      this.chars = only.chars = text.length;
      this.dropped = true;
    }
  }

  showNotice() {
    this.notice.hidden = !this.dropped;
    this.notice.textContent = this.dropped
      ? 'Only the end of the output is shown: the full log has the rest.' : '';
  }

  /** The lines shown (for tests and the page's own checks). */
  get lineCount() {
    return this.lines;
  }
}

/**
 * The output events of ``early`` that ``tail`` does not end with: the log was read at some
 * point among them, so it holds a first run of them (their text, in order) and not the rest.
 */
export function notYetIn(tail, early) {
  let joined = '';
  let held = 0;
  for (let k = 1; k <= early.length; k += 1) {
    joined += early[k - 1][0];
    if (tail.endsWith(joined)) held = k;
  }
  return early.slice(held);
}

/**
 * ``executionId``'s output in ``view``, followed while it runs, until ``signal`` aborts.
 * ``load()`` shows the log's last lines. Output events that arrive while it loads are kept
 * aside: those the log already holds are left out, the others appended (dropping them lost
 * a line written between the log's read and the answer's arrival); those after are
 * appended. The daemon sends a run's last output before its execution_finished, so the view
 * is complete when the run ends.
 */
export class OutputFollower {
  constructor(view, executionId, {signal}) {
    this.view = view;
    this.executionId = executionId;
    this.signal = signal;
    this.ready = false;
    this.early = [];
    const stop = subscribe((message) => {
      if (message.type !== 'execution_output') return;
      if (message.data?.execution_id !== executionId) return;
      if (this.ready) view.append(message.data.data, message.data.stream);
      else if (this.early.length < TAIL_LINES) this.early.push([message.data.data, message.data.stream]);
    });
    signal.addEventListener('abort', stop);
  }

  async load() {
    let text = '';
    try {
      const path = `/daemon/executions/${segment(this.executionId)}/log?tail=${TAIL_LINES}`;
      text = await getText(path, {signal: this.signal});
    } catch (error) {
      // A run-now id answers 404 until its run starts: nothing to show yet.
      if (!(error instanceof ApiError) || error.status !== 404) throw error;
    }
    if (this.signal.aborted) return;
    this.view.reset(text, {cut: newlines(text) >= TAIL_LINES});
    for (const [data, stream] of notYetIn(text, this.early)) this.view.append(data, stream);
    this.early = [];
    this.ready = true;
  }
}

/** A link to the whole log, as plain text. */
export function fullLogLink(executionId) {
  return h('a', {href: `/daemon/executions/${segment(executionId)}/log`, target: '_blank',
    rel: 'noopener'}, 'Full log (text)');
}
