// openclaw-trace dashboard. Reads the sidecar's query API (docs/API.md) and
// /v1/status from the same origin, formats what they answer and draws it as
// SVG. Nothing is computed here beyond placing and summing what the API
// gives; no build step, no dependency, no request outside the sidecar.
// Loaded as a module: strict, deferred, and its names stay its own.
const REFRESH_MS = 30000;
const TOKEN_KEY = 'openclaw-trace.token';
const HOUR = 36e5;
const DAY = 24 * HOUR;
const RANGES = {
  '24h': { ms: DAY, bucket: 'hour', words: 'the last 24 h' },
  '7d': { ms: 7 * DAY, bucket: 'day', words: 'the last 7 days' },
  '30d': { ms: 30 * DAY, bucket: 'day', words: 'the last 30 days' },
};
// Named series in the cost chart; further models are drawn as "other".
const MAX_MODELS = 8;
const SVGNS = 'http://www.w3.org/2000/svg';

// What a test (or a curious person in the console) can read: the state of
// the last load and what each chart drew.
const dash = (window.__dashboard = {
  ready: false, loads: 0, errors: [], totals: null, charts: {}, window: null, trace: null,
  refresh: () => refresh(), // what the 30 s timer calls
});

// ---- DOM helpers -------------------------------------------------------
const $ = (id) => document.getElementById(id);
const html = (tag, attrs, ...kids) => build(document.createElement(tag), attrs, kids);
const svg = (tag, attrs, ...kids) => build(document.createElementNS(SVGNS, tag), attrs, kids);
function build(el, attrs, kids) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) if (kid != null && kid !== false) el.append(kid);
  return el;
}
const empty = (text) => html('p', { class: 'empty', text });

// ---- Formatting --------------------------------------------------------
const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
function usd(v) {
  if (v == null) return '—';
  const a = Math.abs(v);
  if (a === 0) return '$0.00';
  if (a < 0.01) return '$' + v.toPrecision(2);
  if (a < 1000) return '$' + v.toFixed(2);
  if (a < 1e6) return '$' + int.format(v);
  return '$' + short(v);
}
// 1234 -> 1.23k, 45600 -> 45.6k, 7890000 -> 7.89M.
function short(v) {
  if (v == null) return '—';
  const a = Math.abs(v);
  for (const [n, unit] of [[1e9, 'B'], [1e6, 'M'], [1e3, 'k']]) {
    if (a >= n) {
      const x = v / n;
      return String(+x.toFixed(Math.abs(x) < 10 ? 2 : Math.abs(x) < 100 ? 1 : 0)) + unit;
    }
  }
  return String(+v.toFixed(a < 10 && a % 1 ? 2 : 0));
}
const count = (v) => (v == null ? '—' : int.format(v));
const plural = (n, one, many) => `${count(n)} ${n === 1 ? one : many}`;
const pct = (v) => (v == null ? '—' : String(+(v * 100).toFixed(v < 0.1 ? 1 : 0)) + '%');
function ms(v) {
  if (v == null) return '—';
  if (v < 1000) return int.format(v) + ' ms';
  if (v < 60000) return +(v / 1000).toFixed(v < 10000 ? 2 : 1) + ' s';
  return +(v / 60000).toFixed(1) + ' min';
}
function bytes(v) {
  if (v == null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i ? +v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0) : v) + ' ' + units[i];
}
function ago(iso) {
  if (!iso) return 'never';
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (s < 60) return 'just now';
  if (s < 3600) return Math.round(s / 60) + ' min ago';
  if (s < 86400) return Math.round(s / 3600) + ' h ago';
  return Math.round(s / 86400) + ' d ago';
}
const duration = (seconds) => (seconds == null ? '—' : seconds < 60 ? Math.round(seconds) + ' s'
  : seconds < 7200 ? Math.round(seconds / 60) + ' min' : seconds < 172800
    ? +(seconds / 3600).toFixed(1) + ' h' : +(seconds / 86400).toFixed(1) + ' d');
const utc = (t, opts) => new Date(t).toLocaleString('en-US', { timeZone: 'UTC', ...opts });
const dayLabel = (t) => utc(t, { month: 'short', day: 'numeric' });
const hourLabel = (t) => new Date(t).toISOString().slice(11, 16);
const when = (iso) => html('time', { datetime: iso, title: iso, text: ago(iso) });

// ---- The token ---------------------------------------------------------
const tokens = {
  get() {
    try { return sessionStorage.getItem(TOKEN_KEY) || localStorage.getItem(TOKEN_KEY); } catch { return null; }
  },
  set(token, remember) {
    try {
      sessionStorage.setItem(TOKEN_KEY, token);
      if (remember) localStorage.setItem(TOKEN_KEY, token);
    } catch { /* storage off: the token lives until the page is left */ }
    memory = token;
  },
  clear() {
    try { sessionStorage.removeItem(TOKEN_KEY); localStorage.removeItem(TOKEN_KEY); } catch { /* nothing held */ }
    memory = null;
  },
};
let memory = null;
const token = () => tokens.get() || memory;

// ---- The API -----------------------------------------------------------
class ApiError extends Error {
  constructor(path, status, message) {
    super(`${path.split('?')[0]} answered ${status}: ${message}`);
    this.status = status;
  }
}
async function api(path) {
  const headers = {};
  const t = token();
  if (t) headers.Authorization = 'Bearer ' + t;
  const res = await fetch(path, { headers, cache: 'no-store' });
  if (!res.ok) {
    let message = res.statusText;
    try { message = (await res.json()).message || message; } catch { /* not JSON */ }
    throw new ApiError(path, res.status, message);
  }
  return res.json();
}

// ---- Where we are: #range=7d, #range=7d&trace=<id> ---------------------
const hashParams = () => new URLSearchParams(location.hash.slice(1));
const currentRange = () => (RANGES[hashParams().get('range')] ? hashParams().get('range') : '24h');

// ---- Charts ------------------------------------------------------------
const HEIGHT = 210;
const M = { l: 58, r: 10, t: 10, b: 24 };

// Tick values from 0 to a round top at or above `max`.
function ticks(max, n = 4, whole = false) {
  if (!(max > 0)) max = 1;
  const raw = max / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  let step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * mag;
  if (whole) step = Math.max(1, Math.round(step));
  const top = Math.ceil(max / step - 1e-9) * step;
  const out = [];
  for (let i = 0; i * step <= top + step / 2; i++) out.push(i * step);
  return { top, values: out };
}

// An empty plot area with its y grid; `x` labels are added by the caller.
// Byte ticks fall on round numbers of the unit the top is shown in.
function frame(el, label, max, fmt, whole) {
  const w = Math.max(260, Math.floor(el.clientWidth || 600));
  const root = svg('svg', { class: 'plot', width: w, height: HEIGHT, viewBox: `0 0 ${w} ${HEIGHT}`, role: 'img', 'aria-label': label });
  const unit = fmt === bytes ? 1024 ** Math.max(0, Math.floor(Math.log(Math.max(max, 1)) / Math.log(1024))) : 1;
  let { top, values } = ticks(max / unit, 4, whole);
  top *= unit;
  values = values.map((v) => v * unit);
  const pw = w - M.l - M.r;
  const ph = HEIGHT - M.t - M.b;
  const y = (v) => M.t + ph - (Math.min(v, top) / top) * ph;
  for (const v of values) {
    root.append(svg('line', { class: 'grid-line', x1: M.l, x2: w - M.r, y1: y(v), y2: y(v) }));
    root.append(svg('text', { x: M.l - 6, y: y(v) + 4, 'text-anchor': 'end', text: fmt(v) }));
  }
  root.append(svg('line', { class: 'axis', x1: M.l, x2: w - M.r, y1: y(0), y2: y(0) }));
  return { root, w, pw, ph, y };
}

// X labels at `xAt(i)` for `n` slots, thinned so they do not overlap.
function xLabels(f, n, xAt, labelOf) {
  const every = Math.max(1, Math.ceil((n * 46) / f.pw));
  for (let i = 0; i < n; i += every) {
    f.root.append(svg('text', { x: xAt(i), y: HEIGHT - 6, 'text-anchor': 'middle', text: labelOf(i) }));
  }
}

// Bars per time bucket: series stacked (`stack`) or drawn over each other
// from the axis (`overlay`, for a part in front of its whole). Returns the
// number of bars drawn.
function bars(el, { buckets, series, fmt, label, overlay = false, tip, whole }) {
  const heights = buckets.map((_, i) => (overlay
    ? Math.max(0, ...series.map((s) => s.values[i] || 0))
    : series.reduce((sum, s) => sum + (s.values[i] || 0), 0)));
  const f = frame(el, label, Math.max(0, ...heights), fmt, whole);
  const band = f.pw / buckets.length;
  const bw = Math.max(2, Math.min(44, band * 0.72));
  const cx = (i) => M.l + band * i + band / 2;
  let drawn = 0;
  buckets.forEach((b, i) => {
    const col = svg('g', { class: 'col' });
    col.append(svg('rect', { class: 'hit', x: M.l + band * i, y: M.t, width: band, height: f.ph }));
    let base = 0;
    const lines = [b.title];
    for (const s of series) {
      const v = s.values[i];
      if (v > 0) {
        const from = overlay ? 0 : base;
        col.append(svg('rect', {
          class: 'mark ' + s.cls, x: cx(i) - bw / 2, y: f.y(from + v), width: bw,
          height: Math.max(1, f.y(from) - f.y(from + v)),
        }));
        if (!overlay) base += v;
        drawn++;
      }
      if (v != null) lines.push(`${s.name}: ${fmt(v)}`);
    }
    if (tip) lines.push(...tip(i));
    col.prepend(svg('title', { text: lines.join('\n') }));
    f.root.append(col);
  });
  xLabels(f, buckets.length, cx, (i) => buckets[i].label);
  el.replaceChildren(f.root);
  return drawn;
}

// Lines over time from `x0` to `x1` (ms); a point further than `gap` from
// the one before starts a new stretch. Points are marked when there are
// few. Returns the number of points drawn.
// `at`: labelled x positions ([time, label]), else evenly spaced ones.
function lines(el, { x0, x1, series, fmt, label, max, gap, xfmt, at }) {
  const top = max ?? Math.max(0, ...series.flatMap((s) => s.points.map((p) => p[1])));
  const f = frame(el, label, top, fmt);
  const x = (t) => M.l + ((t - x0) / (x1 - x0)) * f.pw;
  let drawn = 0;
  for (const s of series) {
    let d = '';
    let prev = null;
    for (const [t, v] of s.points) {
      d += `${prev == null || t - prev > gap ? 'M' : 'L'}${x(t).toFixed(1)},${f.y(v).toFixed(1)}`;
      prev = t;
    }
    if (d) f.root.append(svg('path', { class: 'line ' + s.cls, d }));
    const few = s.points.length <= 60;
    for (const [t, v] of s.points) {
      if (few) {
        f.root.append(svg('circle', { class: 'dot ' + s.cls, cx: x(t), cy: f.y(v), r: 3 },
          svg('title', { text: `${xfmt.title(t)}\n${s.name}: ${fmt(v)}` })));
      }
      drawn++;
    }
  }
  at = at || timeTicks(x0, x1, Math.max(2, Math.floor(f.pw / 80)));
  xLabels(f, at.length, (i) => x(at[i][0]), (i) => at[i][1]);
  el.replaceChildren(f.root);
  return drawn;
}

// At most `n` labelled times between x0 and x1, on round UTC hours or days.
function timeTicks(x0, x1, n) {
  const step = [1, 2, 3, 6, 12, 24, 48, 120, 168, 336].map((h) => h * HOUR).find((st) => (x1 - x0) / st <= n) || 28 * DAY;
  const out = [];
  for (let t = Math.ceil(x0 / step) * step; t <= x1; t += step) out.push([t, step < DAY ? hourLabel(t) : dayLabel(t)]);
  return out;
}

function legend(id, items) {
  $(id).replaceChildren(...items.map(([cls, name, value]) => html('li', { class: cls },
    html('span', { class: 'sw', 'aria-hidden': 'true' }), html('span', { text: name }),
    value != null && html('b', { text: value }))));
}

// The time buckets of a window: every UTC hour or day it touches.
function bucketsOf(kind, since, until) {
  const step = kind === 'hour' ? HOUR : DAY;
  const out = [];
  for (let t = Math.floor(since / step) * step; t <= until; t += step) {
    out.push(kind === 'hour'
      ? { t, label: hourLabel(t), title: `${dayLabel(t)}, ${hourLabel(t)} UTC` }
      : { t, label: dayLabel(t), title: utc(t, { weekday: 'short', month: 'short', day: 'numeric' }) + ' (UTC)' });
  }
  return out;
}
// A group key's bucket start, from `day` (YYYY-MM-DD) or `hour` (YYYY-MM-DDTHH:00Z).
function bucketTime(key) {
  if (key.day) return Date.parse(key.day + 'T00:00:00Z');
  return Date.parse(key.hour);
}
// values[i] for each bucket, read from `groups` with `pick`.
function perBucket(buckets, groups, pick) {
  const at = new Map(buckets.map((b, i) => [b.t, i]));
  const values = buckets.map(() => null);
  for (const g of groups) {
    const i = at.get(bucketTime(g.key));
    if (i != null) values[i] = (values[i] || 0) + pick(g);
  }
  return values;
}

// ---- Rendering the overview --------------------------------------------
let last = null; // the last answers, kept to redraw on resize

function render(d) {
  last = d;
  const { range, summary, byTime, byTimeModel, byModel, bySession, status } = d;
  const R = RANGES[range];
  const t = summary.totals;
  const none = !(t.calls > 0 || t.tokens.total > 0 || t.cost_usd.total > 0);

  // Totals.
  setKpi('kpi-cost', usd(t.cost_usd.total), t.cost_usd.total);
  $('kpi-cost-sub').textContent = [
    `${usd(t.cost_usd.reported)} reported`,
    t.cost_usd.estimated > 0 ? `${usd(t.cost_usd.estimated)} estimated` : null,
    t.cost_usd.unpriced_calls > 0 ? `${count(t.cost_usd.unpriced_calls)} unpriced` : null,
  ].filter(Boolean).join(' · ');
  setKpi('kpi-calls', count(t.calls), t.calls);
  $('kpi-calls-sub').textContent = `${count(t.errors)} failed`;
  setKpi('kpi-error-rate', t.calls > 0 ? pct(t.error_rate) : '—', t.error_rate);
  $('kpi-errors-sub').textContent = `in ${R.words}`;
  setKpi('kpi-tokens', short(t.tokens.total), t.tokens.total);
  $('kpi-tokens-sub').textContent = `${short(t.tokens.input)} in · ${short(t.tokens.output)} out · ${short(t.tokens.cache_read)} cache`;
  setKpi('kpi-p50', ms(t.latency_ms.p50), t.latency_ms.p50);
  $('kpi-latency-sub').textContent = `p95 ${ms(t.latency_ms.p95)} · p99 ${ms(t.latency_ms.p99)}`;
  dash.totals = {
    cost_usd: t.cost_usd.total, calls: t.calls, errors: t.errors, error_rate: t.error_rate,
    tokens: t.tokens.total, latency_p50_ms: t.latency_ms.p50,
  };

  drawCharts();
  $('cost-title').textContent = `Cost per ${R.bucket} by model`;

  // Models and sessions.
  $('models').replaceChildren(byModel.groups.length ? table(
    ['Model', ['Calls', 'num'], ['Tokens', 'num'], ['p95', 'num opt'], ['Cost', 'num']],
    byModel.groups.map((g) => [
      html('span', { class: 'clip', title: g.key.model, text: g.key.model ?? '(none)' }),
      count(g.calls), short(g.tokens.total), ms(g.latency_ms.p95), usd(g.cost_usd.total)]),
  ) : empty(`No LLM calls in ${R.words}`));
  const sessions = bySession.groups.filter((g) => g.key.session != null);
  $('sessions').replaceChildren(sessions.length ? table(
    ['Session', ['Calls', 'num'], ['Tokens', 'num'], ['Cost', 'num']],
    sessions.map((g) => [html('span', { class: 'clip mono', title: g.key.session, text: g.key.session }),
      count(g.calls), short(g.tokens.total), usd(g.cost_usd.total)]),
  ) : empty(none ? `No LLM calls in ${R.words}` : `No calls with a session in ${R.words}`));

  renderErrors(d);
  renderSidecar(status);

  const skipped = summary.sources?.skipped || [];
  $('sources').textContent = [
    summary.sources?.used?.length ? `LLM figures from: ${summary.sources.used.join(', ')}.` : '',
    ...skipped.map((s) => `Left out: ${s.source} (${count(s.rows)} rows): ${s.reason}.`),
    [byTime, byTimeModel, byModel].some((a) => a.truncated) ? 'Some groups were cut at the API\'s limit.' : '',
  ].filter(Boolean).join(' ');
}

function setKpi(id, text, value) {
  const el = $(id);
  el.textContent = text;
  el.dataset.value = value == null ? '' : String(value);
}

// The charts, from the last answers; redrawn on resize.
function drawCharts() {
  if (!last || $('overview').hidden) return;
  const { range, since, until, byTime, byTimeModel, byModel, host, summary } = last;
  const R = RANGES[range];
  const buckets = bucketsOf(R.bucket, since, until);
  const per = R.bucket;
  const none = `No LLM calls in ${R.words}`;
  const charts = {};
  const hasCalls = summary.totals.calls > 0 || summary.totals.tokens.total > 0;

  // Cost by model, stacked; models in the API's order (highest cost first).
  const named = byModel.groups.slice(0, MAX_MODELS).map((g) => g.key.model);
  const series = named.map((model, i) => ({
    name: model ?? '(none)', cls: 's' + i,
    values: perBucket(buckets, byTimeModel.groups.filter((g) => g.key.model === model), (g) => g.cost_usd.total),
  }));
  if (byModel.groups.length > MAX_MODELS) {
    series.push({
      name: 'other models', cls: 's8',
      values: perBucket(buckets, byTimeModel.groups.filter((g) => !named.includes(g.key.model)), (g) => g.cost_usd.total),
    });
  }
  charts.cost = hasCalls ? bars($('chart-cost'), {
    buckets, series, fmt: usd, label: `Cost per ${per} by model, ${R.words}: ${usd(summary.totals.cost_usd.total)} in all`,
  }) : show($('chart-cost'), none);
  legend('legend-cost', hasCalls ? byModel.groups.slice(0, MAX_MODELS).map((g, i) => ['s' + i, g.key.model ?? '(none)', usd(g.cost_usd.total)])
    .concat(byModel.groups.length > MAX_MODELS ? [['s8', 'other models', null]] : []) : []);

  // Tokens by type, stacked.
  const types = [['input', 's0'], ['output', 's1'], ['cache_read', 's2'], ['cache_write', 's3']];
  charts.tokens = hasCalls ? bars($('chart-tokens'), {
    buckets, fmt: short, label: `Tokens per ${per} by type, ${R.words}: ${short(summary.totals.tokens.total)} in all`,
    series: types.map(([k, cls]) => ({ name: k.replace('_', ' '), cls, values: perBucket(buckets, byTime.groups, (g) => g.tokens[k]) })),
  }) : show($('chart-tokens'), none);
  legend('legend-tokens', hasCalls ? types.map(([k, cls]) => [cls, k.replace('_', ' '), short(summary.totals.tokens[k])]) : []);

  // Calls, with the failed ones in front.
  const rate = new Map(byTime.groups.map((g) => [bucketTime(g.key), g.error_rate]));
  charts.calls = summary.totals.calls > 0 ? bars($('chart-calls'), {
    buckets, fmt: short, overlay: true, whole: true, label: `LLM calls per ${per}, ${R.words}: ${count(summary.totals.calls)} calls, ${count(summary.totals.errors)} failed`,
    series: [
      { name: 'calls', cls: 's0', values: perBucket(buckets, byTime.groups, (g) => g.calls) },
      { name: 'failed', cls: 'sbad', values: perBucket(buckets, byTime.groups, (g) => g.errors) },
    ],
    tip: (i) => (rate.has(buckets[i].t) ? [`error rate: ${pct(rate.get(buckets[i].t))}`] : []),
  }) : show($('chart-calls'), none);
  legend('legend-calls', summary.totals.calls > 0 ? [['s0', 'calls', count(summary.totals.calls)],
    ['sbad', 'failed', `${count(summary.totals.errors)} (${pct(summary.totals.error_rate)})`]] : []);

  // Latency percentiles per bucket, at the bucket's middle.
  const step = R.bucket === 'hour' ? HOUR : DAY;
  const pcts = [['p50', 's2'], ['p95', 's1'], ['p99', 's4']];
  const latency = pcts.map(([p, cls]) => ({
    name: p, cls,
    points: byTime.groups.filter((g) => g.latency_ms[p] != null).map((g) => [bucketTime(g.key) + step / 2, g.latency_ms[p]]),
  }));
  const axis = { title: (t) => buckets.find((b) => b.t === t - step / 2)?.title ?? '' };
  const x0 = buckets[0].t;
  const x1 = buckets[buckets.length - 1].t + step;
  // Drawn p99 first, so p50 lies on top where the lines meet.
  charts.latency = latency.some((s) => s.points.length) ? lines($('chart-latency'), {
    x0, x1, series: [...latency].reverse(), fmt: ms, gap: step * 1.5, xfmt: axis, at: buckets.map((b) => [b.t + step / 2, b.label]),
    label: `Latency percentiles per ${per}, ${R.words}: p50 ${ms(summary.totals.latency_ms.p50)}, p95 ${ms(summary.totals.latency_ms.p95)}, p99 ${ms(summary.totals.latency_ms.p99)}`,
  }) : show($('chart-latency'), hasCalls ? `No call with a latency in ${R.words}` : none);
  legend('legend-latency', charts.latency ? pcts.map(([p, cls]) => [cls, p, ms(summary.totals.latency_ms[p])]) : []);

  // Host utilisation and the agent's memory, over the window.
  const hx = { title: (t) => utc(t, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }) + ' UTC' };
  const pts = (name) => (host.series[name] || []).map(([t, v]) => [Date.parse(t), v]);
  const lastOf = (p) => (p.length ? p[p.length - 1][1] : null);
  const util = [['cpu_utilization', 'CPU', 's0'], ['memory_utilization', 'memory', 's3'],
    ['disk_utilization', `disk ${host.mountpoint || ''}`.trim(), 's1'], ['agent_cpu_utilization', 'agent CPU', 's5']]
    .map(([k, name, cls]) => ({ name, cls, points: pts(k) }));
  const gap = host.step_seconds * 1000 * 2.5;
  charts.host = util.some((s) => s.points.length) ? lines($('chart-host'), {
    x0: since, x1: until, series: util, fmt: pct, max: 1, gap, xfmt: hx,
    label: `Host utilisation, ${R.words}: ` + util.map((s) => `${s.name} ${pct(lastOf(s.points))}`).join(', '),
  }) : show($('chart-host'), `No host samples in ${R.words}`);
  legend('legend-host', util.filter((s) => s.points.length).map((s) => [s.cls, s.name, `${pct(lastOf(s.points))} now`]));
  const rss = [{ name: 'agent RSS', cls: 's0', points: pts('agent_rss_bytes') }];
  charts.rss = rss[0].points.length ? lines($('chart-rss'), {
    x0: since, x1: until, series: rss, fmt: bytes, gap, xfmt: hx,
    label: `Agent memory, ${R.words}: ${bytes(lastOf(rss[0].points))} now`,
  }) : show($('chart-rss'), `No agent process seen in ${R.words}`);
  legend('legend-rss', rss[0].points.length ? [['s0', 'agent RSS', `${bytes(lastOf(rss[0].points))} now`]] : []);
  dash.charts = charts;
}

function show(el, text) {
  el.replaceChildren(empty(text));
  return 0;
}

function table(head, rows) {
  const th = head.map((h) => (Array.isArray(h) ? html('th', { scope: 'col', class: h[1], text: h[0] }) : html('th', { scope: 'col', text: h })));
  return html('table', null, html('thead', null, html('tr', null, th)),
    html('tbody', null, rows.map((r) => html('tr', null, r.map((c, i) => html('td', { class: Array.isArray(head[i]) ? head[i][1] : null }, c))))));
}

// /v1/traces/{id} takes 32 hex digits (OTLP) or a UUID (native records).
const TRACE_ID = /^([0-9a-f]{32}|[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12})$/i;
const traceLink = (id) => (id && TRACE_ID.test(id)
  ? html('a', { class: 'trace-link', href: `#${new URLSearchParams({ range: currentRange(), trace: id })}`, text: 'trace' })
  : html('span', { class: 'muted', title: id || null, text: id ? 'other id' : '—' }));

// Errors and failed LLM calls, newest first.
function renderErrors({ errors, failed, range }) {
  const rows = [
    ...errors.errors.map((e) => ({ time: e.time, what: e.error_type, detail: e.message, kind: e.severity || 'error', trace: e.trace_id })),
    ...failed.calls.map((c) => ({ time: c.time, what: c.error_type || 'LLM call failed', detail: `${c.provider} / ${c.model}`, kind: 'LLM call', trace: c.trace_id })),
  ].sort((a, b) => Date.parse(b.time) - Date.parse(a.time)).slice(0, 10);
  $('errors').replaceChildren(rows.length ? table(['When', 'Error', ['Kind', 'opt'], 'Detail', 'Trace'], rows.map((r) => [
    when(r.time), html('b', { text: r.what }), html('span', { class: 'badge muted', text: r.kind }),
    html('span', { class: 'msg', text: r.detail }), traceLink(r.trace),
  ])) : empty(`No errors in ${RANGES[range].words}`));
}

function renderSidecar(s) {
  const facts = [];
  const fact = (term, ...value) => facts.push(html('div', null, html('dt', { text: term }), html('dd', null, ...value)));
  const p = s.push || {};
  if (p.enabled) {
    fact('Push', html('span', { class: p.last_error ? 'bad' : 'ok', text: p.last_error ? 'failing' : p.last_success ? 'ok' : 'pending' }),
      ` · ${p.format} to `, html('span', { class: 'mono', text: p.endpoint }));
    fact('Last push', p.last_success ? when(p.last_success) : 'none yet', p.last_attempt ? [' (tried ', when(p.last_attempt), ')'] : '');
    fact('Waiting to be pushed', `${count(p.pending_rows)} rows (~${bytes(p.pending_bytes_estimate)})`);
    if (p.last_error) fact('Last push error', html('span', { class: 'bad', text: `${p.last_error} (${count(p.consecutive_failures)} failures in a row)` }));
    if (p.dead_lettered_rows) fact('Dead-lettered rows', count(p.dead_lettered_rows));
  } else {
    fact('Push', html('span', { class: 'muted', text: 'off' }), ` · ${p.reason || ''}`);
  }
  const db = s.database || {};
  const size = (db.size_bytes || 0) + (db.wal_size_bytes || 0);
  fact('Database', `${bytes(size)} of ${bytes(db.max_bytes)}`,
    html('meter', { min: 0, max: db.max_bytes || 1, value: size, 'aria-label': 'database size against its bound' }));
  const r = s.rotation || {};
  fact('Rotation', r.last_run ? ['last ', when(r.last_run)] : 'not run yet',
    r.dropped_total ? html('span', { class: 'bad', text: ` · ${count(r.dropped_total)} unpushed rows dropped` }) : '');
  fact('Sidecar', `v${s.version} · up ${duration(s.uptime_seconds)}`);
  fact('Database file', html('span', { class: 'mono', text: db.path || '—' }));
  $('sidecar').replaceChildren(...facts);
}

function renderWarnings(list) {
  const ul = $('warnings');
  ul.hidden = !list.length;
  ul.replaceChildren(...list.map((w) => html('li', { text: w })));
}

// ---- Loading -------------------------------------------------------------
let timer = null;
let loadSeq = 0;
let waitingForToken = false;

async function refresh() {
  clearTimeout(timer);
  timer = setTimeout(refresh, REFRESH_MS);
  if (waitingForToken) return;
  if (document.hidden && dash.ready) return;
  const seq = ++loadSeq;
  const range = currentRange();
  const R = RANGES[range];
  const until = Date.now();
  const since = until - R.ms;
  const w = `since=${new Date(since).toISOString()}&until=${new Date(until).toISOString()}`;
  const summary = (group) => api(`/v1/llm/summary?${w}&group_by=${group}&limit=1000`);
  try {
    const status = await api('/v1/status');
    $('agent').textContent = `${status.agent_id} · v${status.version}`;
    if (status.config && status.config.ingest_token && !token()) return askToken();
    const [byTimeModel, byTime, byModel, bySession, errors, failed, host] = await Promise.all([
      summary(`${R.bucket},model`), summary(R.bucket), summary('model'),
      api(`/v1/llm/summary?${w}&group_by=session&limit=10`),
      api(`/v1/errors?${w}&limit=10`),
      api(`/v1/llm/calls?${w}&status=error&limit=10`),
      api(`/v1/host?${w}`),
    ]);
    if (seq !== loadSeq) return; // a newer load (another range) has started
    renderWarnings(status.warnings || []);
    $('notice').hidden = true;
    showView();
    // byModel's totals are the window's totals: one group-less figure.
    render({ range, since, until, summary: byModel, byTime, byTimeModel, byModel, bySession, errors, failed, host, status });
    dash.window = { range, since: byModel.since, until: byModel.until };
    dash.loads++;
    dash.ready = true;
    $('updated').textContent = `Updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    if (seq !== loadSeq) return;
    if (e.status === 401) return askToken(token() ? 'The sidecar refused this token.' : null);
    dash.errors.push(String(e.message || e));
    const n = $('notice');
    n.textContent = `Could not read the sidecar: ${e.message || e}. Trying again in 30 s.`;
    n.hidden = false;
  }
}

function askToken(problem) {
  waitingForToken = true;
  $('overview').hidden = true;
  $('trace').hidden = true;
  $('auth').hidden = false;
  $('updated').textContent = 'Waiting for the token';
  $('auth-error').hidden = !problem;
  $('auth-error').textContent = problem || '';
  $('token').focus();
}

$('auth-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const value = $('token').value.trim();
  if (!value) return;
  tokens.set(value, $('remember').checked);
  $('token').value = '';
  $('auth').hidden = true;
  $('forget').hidden = false;
  waitingForToken = false;
  $('updated').textContent = 'Loading…';
  route(true);
});
$('forget').addEventListener('click', () => {
  tokens.clear();
  $('forget').hidden = true;
  location.reload();
});
$('forget').hidden = !token();

// ---- The trace view --------------------------------------------------------
let shownRange = null;

function showView() {
  if (waitingForToken) return;
  const id = hashParams().get('trace');
  $('trace').hidden = !id;
  const wasHidden = $('overview').hidden;
  $('overview').hidden = !!id;
  if (!id && wasHidden) drawCharts();
}

async function showTrace(id) {
  $('trace-title').textContent = `Trace ${id}`;
  $('trace-back').href = `#range=${currentRange()}`;
  $('trace-body').replaceChildren(html('p', { class: 'muted', text: 'Loading…' }));
  dash.trace = null;
  try {
    const t = await api(`/v1/traces/${encodeURIComponent(id)}`);
    if (hashParams().get('trace') !== id) return;
    renderTrace(t);
  } catch (e) {
    if (e.status === 401) return askToken(token() ? 'The sidecar refused this token.' : null);
    const text = e.status === 404 ? 'Nothing of this trace is held: no span, LLM call or error (rotation may have deleted it).' : String(e.message || e);
    $('trace-body').replaceChildren(html('p', { class: e.status === 404 ? 'muted' : 'bad', text }));
    dash.trace = { id, error: e.status || String(e) };
  }
}

// OTLP span kinds, by number.
const KINDS = [null, 'internal', 'server', 'client', 'producer', 'consumer'];

function renderTrace(t) {
  const all = [];
  const walk = (s) => { all.push(s); (s.children || []).forEach(walk); };
  t.spans.forEach(walk);
  const t0 = Math.min(...all.map((s) => Date.parse(s.start)));
  const t1 = Math.max(...all.map((s) => Date.parse(s.end)));
  const callsBySpan = new Map();
  for (const c of t.llm_calls) if (c.span_id) callsBySpan.set(c.span_id, [...(callsBySpan.get(c.span_id) || []), c]);
  const item = (s) => {
    const bar = html('div', { class: 'bar' + (s.status_code === 2 ? ' error' : '') });
    const span = Math.max(1, t1 - t0);
    bar.style.left = `${((Date.parse(s.start) - t0) / span) * 100}%`;
    bar.style.width = `${((Date.parse(s.end) - Date.parse(s.start)) / span) * 100}%`;
    const calls = (callsBySpan.get(s.span_id) || []).map((c) => html('div', { class: 'call' },
      `${c.model}: ${short(c.tokens.total)} tokens · ${usd(c.cost_usd)}`));
    return html('li', null,
      html('div', { class: 'span-row' },
        html('div', null,
          html('span', { class: 'name', text: s.name }), ' ',
          html('span', { class: 'meta', text: [s.service_name, KINDS[s.kind], ms(s.duration_ms)].filter(Boolean).join(' · ') }),
          s.status_message ? html('div', { class: 'bad small', text: s.status_message }) : null, calls),
        html('div', { class: 'timeline', title: `${ms(s.duration_ms)} from ${s.start}` }, bar)),
      s.children && s.children.length ? html('ol', null, s.children.map(item)) : null);
  };
  const body = [
    html('p', { class: 'muted', text: `${plural(all.length, 'span', 'spans')} · ${plural(t.llm_calls.length, 'LLM call', 'LLM calls')} · ${plural(t.errors.length, 'error', 'errors')}` + (all.length ? ` · ${ms(t1 - t0)}` : '') }),
    html('h3', { text: 'Spans' }),
    all.length ? html('ol', { class: 'tree', id: 'trace-tree' }, t.spans.map(item)) : empty('No spans held for this trace (native records carry no spans).'),
    html('h3', { text: 'LLM calls' }),
    t.llm_calls.length ? html('div', { class: 'table' }, table(
      ['When', 'Model', 'Status', ['Tokens', 'num'], ['Latency', 'num'], ['Cost', 'num']],
      t.llm_calls.map((c) => [when(c.time), `${c.provider} / ${c.model}`,
        html('span', { class: c.status === 'ok' ? 'ok' : 'bad', text: c.status + (c.error_type ? ` (${c.error_type})` : '') }),
        short(c.tokens.total), ms(c.latency_ms), c.cost_usd == null ? '—' : usd(c.cost_usd)]),
    )) : empty('No LLM calls in this trace.'),
    html('h3', { text: 'Errors' }),
    t.errors.length ? html('div', { class: 'table' }, table(['When', 'Error'], t.errors.map((e) => [when(e.time),
      html('div', { class: 'msg' }, html('b', { text: e.error_type }), ' ', e.message,
        e.stack_trace ? html('details', null, html('summary', { text: 'stack trace' }), html('pre', { text: e.stack_trace })) : null)]))) : empty('No errors in this trace.'),
  ];
  $('trace-body').replaceChildren(...body);
  dash.trace = { id: t.trace_id, spans: all.length, llm_calls: t.llm_calls.length, errors: t.errors.length };
}

// ---- Navigation ------------------------------------------------------------
function route(force) {
  const range = currentRange();
  for (const a of document.querySelectorAll('.ranges a')) {
    a.setAttribute('aria-current', String(a.dataset.range === range));
    a.href = `#range=${a.dataset.range}`;
  }
  if (waitingForToken) return;
  showView();
  const id = hashParams().get('trace');
  if (id) showTrace(id);
  if (force || range !== shownRange || !dash.ready) {
    shownRange = range;
    refresh();
  }
}
window.addEventListener('hashchange', () => route(false));
document.addEventListener('visibilitychange', () => { if (!document.hidden) refresh(); });
let resizeTimer = null;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(drawCharts, 150);
});
route(true);
