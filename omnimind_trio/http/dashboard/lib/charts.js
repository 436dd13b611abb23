// Charts as inline SVG, built here from data (no library). Colours come from style.css
// through classes: bars take their outcome's class (ok, fail, skip, run).

import {h} from './dom.js';
import {duration, localTime, outcomeKind} from './format.js';

const SLOTS = 20;

function tally(runs) {
  const counts = new Map();
  for (const run of runs) counts.set(run.outcome, (counts.get(run.outcome) ?? 0) + 1);
  return [...counts].map(([outcome, n]) => `${n} ${outcome}`).join(', ');
}

/** The last 20 runs as bars (height: duration, colour: outcome), oldest on the left. */
export function sparkline(recent) {
  const runs = (recent ?? []).slice(-SLOTS);
  if (runs.length === 0) return h('span', {class: 'muted'}, 'no runs');
  const label = `Last ${runs.length} runs: ${tally(runs)}`;
  const svg = h('svg:svg', {
    class: 'spark', viewBox: `0 0 ${SLOTS * 5} 20`, width: SLOTS * 5, height: 20,
    role: 'img', 'aria-label': label,
  }, h('svg:title', null, label));
  const longest = Math.max(0, ...runs.map((run) => run.duration_seconds ?? 0));
  runs.forEach((run, index) => {
    const seconds = run.duration_seconds;
    const height = longest > 0 && seconds !== null && seconds !== undefined
      ? 3 + 17 * Math.sqrt(seconds / longest) : 10;
    svg.append(h('svg:rect', {
      x: (SLOTS - runs.length + index) * 5 + 0.5, y: 20 - height, width: 4, height,
      class: `bar ${outcomeKind(run.outcome)}`,
    }, h('svg:title', null, `${run.outcome} · ${duration(seconds)}`)));
  });
  return svg;
}

function niceCeiling(value) {
  if (value <= 0) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((step) => step * magnitude).find((top) => top >= value);
}

/** The width to draw a chart at in ``box``: its own, so text is drawn at its real size. */
export function widthOf(box) {
  return Math.max(300, Math.min(1400, Math.round(box.clientWidth || 600)));
}

/** Durations of runs (oldest first) as bars coloured by outcome, with a scale. */
export function durationChart(executions, {width = 600} = {}) {
  const runs = executions.filter((run) => run.duration_seconds !== null);
  if (runs.length === 0) return h('p', {class: 'muted'}, 'No finished run yet.');
  const height = 160;
  const left = 52;
  const bottom = 22;
  const top = niceCeiling(Math.max(...runs.map((run) => run.duration_seconds)));
  const plotWidth = width - left - 4;
  const plotHeight = height - bottom - 8;
  // At least 20 slots, newest on the right: a few runs are bars, not slabs.
  const slots = Math.max(runs.length, SLOTS);
  const step = plotWidth / slots;
  const first = slots - runs.length;
  const label = `Durations of the last ${runs.length} runs: longest ${duration(top)} scale, ${tally(runs)}`;
  const svg = h('svg:svg', {
    class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label,
  }, h('svg:title', null, label));
  for (const fraction of [0, 0.5, 1]) {
    const y = 8 + plotHeight * (1 - fraction);
    svg.append(
      h('svg:line', {x1: left, x2: width - 4, y1: y, y2: y, class: 'grid'}),
      h('svg:text', {x: left - 6, y: y + 4, class: 'axis end'}, duration(top * fraction)),
    );
  }
  runs.forEach((run, index) => {
    const barHeight = Math.max(1, plotHeight * (run.duration_seconds / top));
    svg.append(h('svg:rect', {
      x: left + (first + index) * step + step * 0.15, width: Math.max(1, step * 0.7),
      y: 8 + plotHeight - barHeight, height: barHeight, class: `bar ${outcomeKind(run.outcome)}`,
    }, h('svg:title', null,
      `${localTime(run.started_at)} · ${run.outcome} · ${duration(run.duration_seconds)}`)));
  });
  svg.append(
    h('svg:text', {x: left + first * step, y: height - 4, class: 'axis'},
      runs.length > 1 ? localTime(runs[0].started_at) : ''),
    h('svg:text', {x: width - 4, y: height - 4, class: 'axis end'},
      localTime(runs.at(-1).started_at)),
  );
  return svg;
}

/**
 * Lines of percentages over time: ``lines`` [{points: [{time (ISO), value}], className}]
 * between ``from`` and ``to`` (ms), with dashed ``thresholds`` [{value, label}].
 */
export function percentChart(lines, {from, to, thresholds = [], label, width = 600}) {
  const height = 200;
  const left = 44;
  const bottom = 22;
  const plotWidth = width - left - 8;
  const plotHeight = height - bottom - 10;
  const x = (ms) => left + plotWidth * Math.min(1, Math.max(0, (ms - from) / (to - from)));
  const y = (percent) => 10 + plotHeight * (1 - Math.min(100, Math.max(0, percent)) / 100);
  const svg = h('svg:svg', {
    class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label,
  }, h('svg:title', null, label));
  for (const percent of [0, 50, 100]) {
    svg.append(
      h('svg:line', {x1: left, x2: width - 8, y1: y(percent), y2: y(percent), class: 'grid'}),
      h('svg:text', {x: left - 6, y: y(percent) + 4, class: 'axis end'}, `${percent} %`),
    );
  }
  for (const threshold of thresholds) {
    svg.append(
      h('svg:line', {
        x1: left, x2: width - 8, y1: y(threshold.value), y2: y(threshold.value),
        class: 'threshold',
      }),
      h('svg:text', {x: width - 10, y: y(threshold.value) - 4, class: 'axis end threshold-label'},
        threshold.label),
    );
  }
  for (const line of [...lines].reverse()) { // the first line on top
    const inside = line.points.filter((point) => new Date(point.time).getTime() >= from);
    if (inside.length === 0) continue;
    const coordinates = inside.map((point) =>
      `${x(new Date(point.time).getTime()).toFixed(1)},${y(point.value).toFixed(1)}`);
    svg.append(h('svg:polyline', {points: coordinates.join(' '), class: line.className}));
  }
  const minutes = Math.round((to - from) / 60000);
  svg.append(
    h('svg:text', {x: left, y: height - 4, class: 'axis'}, `${minutes} min ago`),
    h('svg:text', {x: width - 8, y: height - 4, class: 'axis end'}, 'now'),
  );
  return svg;
}
