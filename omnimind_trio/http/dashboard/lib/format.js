// Words for values: times (the API's ISO-8601 UTC, shown in local time and relative to
// now), durations, sizes. A schedule's words are the daemon's (a task's ``schedule``).

import {h} from './dom.js';

const LOCAL = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: 'numeric',
  hour: '2-digit', minute: '2-digit', second: '2-digit',
});

/** Local date and time of an ISO string; '' for null. */
export function localTime(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : LOCAL.format(date);
}

/** "in 5 min", "3 h ago", "now" for an ISO time (``now`` in ms, default the clock). */
export function relative(iso, now = Date.now()) {
  if (!iso) return '';
  const seconds = (new Date(iso).getTime() - now) / 1000;
  if (Number.isNaN(seconds)) return '';
  const size = Math.abs(seconds);
  let amount;
  if (size < 5) return 'now';
  if (size < 60) amount = `${Math.round(size)} s`;
  else if (size < 3600) amount = `${Math.round(size / 60)} min`;
  else if (size < 86400 * 2) amount = `${Math.round(size / 3600)} h`;
  else amount = `${Math.round(size / 86400)} d`;
  return seconds > 0 ? `in ${amount}` : `${amount} ago`;
}

/**
 * A <time> showing local time and relative time: "26 Nov 2026, 15:11:33 (in 5 min)".
 * The relative part is kept current by ``refreshTimes``. '—' for null.
 */
export function timeElement(iso, {empty = '—', short = false} = {}) {
  if (!iso) return h('span', {class: 'muted'}, empty);
  const rel = h('span', {class: 'rel', 'data-time': iso}, relative(iso));
  if (short) return h('time', {datetime: iso, title: localTime(iso)}, rel);
  return h('time', {datetime: iso, title: iso}, localTime(iso), ' (', rel, ')');
}

/** Bring every relative time on the page up to date. */
export function refreshTimes(root = document) {
  const now = Date.now();
  for (const element of root.querySelectorAll('.rel[data-time]')) {
    const text = relative(element.dataset.time, now);
    if (element.textContent !== text) element.textContent = text;
  }
}

/** "0.42 s", "12 s", "3 min 4 s", "2 h 5 min"; '—' for null. */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  if (seconds < 10) return `${seconds.toFixed(seconds < 1 ? 2 : 1)} s`;
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** "15.8 MB"; '—' for null. */
export function megabytes(value) {
  if (value === null || value === undefined) return '—';
  return `${value >= 100 ? Math.round(value) : value.toFixed(1)} MB`;
}

/** "1.25 s" of CPU; '—' for null. */
export function seconds(value) {
  if (value === null || value === undefined) return '—';
  return `${value.toFixed(value < 10 ? 2 : 1)} s`;
}

/** A number with thousands separators. */
export const count = (value) => new Intl.NumberFormat().format(value);

/** The class an outcome is drawn with: ok, fail, skip or run. */
export function outcomeKind(outcome) {
  if (outcome === 'succeeded') return 'ok';
  if (outcome === 'running') return 'run';
  if (outcome === 'skipped') return 'skip';
  if (!outcome) return 'none';
  return 'fail';
}

/** A badge for an outcome or a status: text and a class. */
export function badge(text, kind) {
  return h('span', {class: `badge ${kind}`}, text ?? '—');
}

/** An outcome's badge ("succeeded", "failed"...). */
export const outcomeBadge = (outcome) => badge(outcome ?? 'never ran', outcomeKind(outcome));
