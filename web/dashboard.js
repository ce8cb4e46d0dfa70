
// The goroutined dashboard: polls /v1/pools, /v1/stats and /v1/functions,
// keeps a few minutes of samples in memory to draw rates, lists a pool's
// tasks or the jobs a page at a time, opens one record (its attempts,
// progress, logs and outcome) and acts on it, and drives the forms.
// The list and the open record follow the event stream (GET /v1/events,
// read with fetch so that the token goes in a header, which EventSource
// cannot send); events are gathered for a moment and applied together,
// and when the stream cannot be read the page polls instead.
// Plain DOM, no framework; every text from the server goes in with
// textContent, never as markup.
'use strict';
(() => {
  const POLL_MS = 1500;
  const WINDOW_MS = 5 * 60 * 1000; // what the charts keep
  const MIN_SPAN_MS = 30 * 1000; // the narrowest a chart's time axis gets
  const FALLBACK_WAIT_S = 1; // long polls on the open record without a stream
  const COALESCE_MS = 200; // events gathered before they are applied
  const RELOAD_GAP_MS = 500; // the least time between two loads of the list
  const STREAM_RETRY_MS = 5000; // how long the page polls before it tries the stream again
  const LOG_LINES = 50; // the last log lines shown
  const REQUEST_TIMEOUT_MS = 20000; // a long poll waits FALLBACK_WAIT_S at most
  const TOKEN_KEY = 'goroutined.token';
  const TERMINAL = new Set(['succeeded', 'failed', 'timed_out', 'cancelled']);
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const numberFormat = new Intl.NumberFormat('en-US');
  const rateFormat = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

  const $ = (id) => document.getElementById(id);

  const state = {
    authNeeded: false,
    pools: new Map(), // name -> [{t, completed, failed, submitted}]
    server: [], // [{t, alive, bytes}]
    poolNames: [],
    createdPool: null, // selected in the task form once it is listed
    access: null, // 'read' or 'submit' once the probe answered
    timer: 0,
  };

  // ---- talking to the server ---------------------------------------------

  function storedToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || '';
    } catch (e) {
      return '';
    }
  }

  function storeToken(token) {
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) {
      // Storage refused (a private mode): the token lasts until reload.
    }
    memoryToken = token;
  }

  let memoryToken = storedToken();

  class ApiError extends Error {
    constructor(status, problem, message) {
      super(message);
      this.status = status;
      this.problem = problem;
    }
  }

  // "Title (status): detail", plus the field a problem names.
  function describeProblem(status, problem, text) {
    if (problem && typeof problem === 'object' && (problem.title || problem.detail)) {
      let s = `${problem.title || 'Error'} (${problem.status || status})`;
      if (problem.detail) s += `: ${problem.detail}`;
      if (problem.field) s += ` [field: ${problem.field}]`;
      return s;
    }
    const snippet = (text || '').trim().slice(0, 200);
    return `HTTP ${status}${snippet ? `: ${snippet}` : ''}`;
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json, application/problem+json' };
    if (memoryToken) headers.Authorization = `Bearer ${memoryToken}`;
    // A request that never answers must not stop the polls that wait for it.
    const init = { method, headers, cache: 'no-store', credentials: 'omit', signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, null, `the server cannot be reached (${e.message})`);
    }
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (e) {
      data = null;
    }
    if (res.status === 401) needToken(data);
    if (!res.ok) throw new ApiError(res.status, data, describeProblem(res.status, data, text));
    return { status: res.status, data };
  }

  // ---- the token ---------------------------------------------------------

  function needToken(problem) {
    const first = !state.authNeeded;
    state.authNeeded = true;
    $('token-reason').textContent = memoryToken
      ? `The token was not accepted: ${(problem && problem.detail) || 'unauthorized'}.`
      : 'Enter the token the server was started with (--token, or a read-only token).';
    $('token-panel').hidden = false;
    setConnection('Waiting for a bearer token', true);
    if (first) $('token-input').focus();
  }

  function useToken(event) {
    event.preventDefault();
    const token = $('token-input').value.trim();
    if (!token) return;
    storeToken(token);
    $('token-input').value = '';
    $('token-panel').hidden = true;
    state.authNeeded = false;
    $('forget-token').hidden = false;
    restart();
  }

  function forgetToken() {
    storeToken('');
    $('forget-token').hidden = true;
    restart();
  }

  // ---- formatting ---------------------------------------------------------

  function count(v) {
    return typeof v === 'number' ? numberFormat.format(v) : '\u2013';
  }

  function bytes(v) {
    if (typeof v !== 'number') return '\u2013';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return `${i ? v.toFixed(1) : v} ${units[i]}`;
  }

  function when(iso) {
    return iso ? new Date(iso).toLocaleString('en-GB') : '\u2013';
  }

  function runTime(ms) {
    return typeof ms === 'number' ? `${numberFormat.format(ms)} ms` : '';
  }

  function stateText(s) {
    return String(s || 'unknown').replace('_', ' ');
  }

  function duration(seconds) {
    if (typeof seconds !== 'number') return '';
    const s = Math.floor(seconds);
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    if (d) return `${d} d ${h} h`;
    if (h) return `${h} h ${m} min`;
    if (m) return `${m} min ${s % 60} s`;
    return `${s} s`;
  }

  // A status region: screen readers hear it when it changes, so the
  // time of the last update stays outside it.
  function setConnection(text, bad, updated) {
    const el = $('connection');
    if (el.textContent !== text) el.textContent = text;
    el.parentElement.classList.toggle('error', !!bad);
    $('updated').textContent = updated ? `\u00b7 updated ${updated}` : '';
  }

  // ---- charts --------------------------------------------------------------

  // A line over the time the page has watched, up to WINDOW_MS: points
  // are [{t, v}], oldest first. The svg says how many points it has
  // (data-points) and, for screen readers, what it shows (aria-label).
  function chart(points, opts) {
    const w = 260;
    const h = 56;
    const top = 12; // room for the labels
    const now = opts.now;
    const span = Math.min(WINDOW_MS, Math.max(MIN_SPAN_MS, points.length ? now - points[0].t : 0));
    const svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('class', 'chart');
    svg.setAttribute('width', w);
    svg.setAttribute('height', h);
    svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
    svg.setAttribute('role', 'img');
    svg.dataset.points = String(points.length);
    const highest = Math.max(0, ...points.map((p) => p.v), ...(opts.second || []).map((p) => p.v));
    const peak = Math.max(opts.minPeak || 1, highest);
    const x = (t) => Math.max(0, w - ((now - t) / span) * w);
    const y = (v) => h - 1 - (v / peak) * (h - top - 2);
    const add = (name, attrs) => {
      const el = document.createElementNS(SVG_NS, name);
      for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
      svg.appendChild(el);
      return el;
    };
    add('rect', { class: 'frame', x: 0.5, y: top - 0.5, width: w - 1, height: h - top });
    const line = (series, cls) => {
      if (!series.length) return;
      const coords = series.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`);
      if (cls === 'line') {
        const first = x(series[0].t).toFixed(1);
        const last = x(series[series.length - 1].t).toFixed(1);
        add('polygon', { class: 'area', points: `${first},${h - 1} ${coords.join(' ')} ${last},${h - 1}` });
      }
      add('polyline', { class: cls, points: coords.join(' ') });
    };
    line(points, 'line');
    if (opts.second && opts.second.some((p) => p.v > 0)) line(opts.second, 'line bad');
    const label = add('text', { x: 2, y: top - 2 });
    label.textContent = `peak ${opts.format(highest)}`;
    const spanLabel = add('text', { x: w - 2, y: top - 2, 'text-anchor': 'end' });
    spanLabel.textContent = span < 60000 ? `last ${Math.round(span / 1000)} s` : `last ${Math.round(span / 60000)} min`;
    svg.setAttribute('aria-label', opts.describe(points, highest));
    return svg;
  }

  // Per-second rates between successive samples of a counter.
  function rates(samples, key) {
    const out = [];
    for (let i = 1; i < samples.length; i++) {
      const dt = (samples[i].t - samples[i - 1].t) / 1000;
      const dv = samples[i][key] - samples[i - 1][key];
      if (dt > 0) out.push({ t: samples[i].t, v: Math.max(0, dv) / dt });
    }
    return out;
  }

  function trim(samples, now) {
    while (samples.length && samples[0].t < now - WINDOW_MS - POLL_MS) samples.shift();
  }

  // ---- small helpers ------------------------------------------------------------

  const enc = encodeURIComponent;

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }

  function button(text, label, onClick, cls) {
    const b = el('button', text, cls);
    b.type = 'button';
    if (label) b.setAttribute('aria-label', label);
    b.addEventListener('click', onClick);
    return b;
  }

  // Puts the rows of keys into tbody in that order, making a row with
  // make(key) only for a key it has not seen: rows that stay are not
  // rebuilt or moved needlessly, so a focused button in one keeps focus.
  function reconcile(tbody, keys, make) {
    const have = new Map([...tbody.children].map((tr) => [tr.dataset.key, tr]));
    keys.forEach((key, i) => {
      let tr = have.get(key);
      if (!tr) {
        tr = make(key);
        tr.dataset.key = key;
      }
      have.delete(key);
      if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
    });
    for (const tr of have.values()) tr.remove();
  }

  function outcome(id, text, good) {
    const node = $(id);
    node.textContent = text;
    node.className = `outcome ${good ? 'good' : 'bad'}`;
  }

  // ---- pools ----------------------------------------------------------------

  function remember(pool, now) {
    let samples = state.pools.get(pool.name);
    const last = samples && samples[samples.length - 1];
    // A counter that went back means the pool was closed and made again.
    if (!samples || (last && (pool.submitted < last.submitted || pool.completed < last.completed))) {
      samples = [];
      state.pools.set(pool.name, samples);
    }
    samples.push({ t: now, completed: pool.completed, failed: pool.failed, submitted: pool.submitted });
    trim(samples, now);
    return samples;
  }

  // A pool's row, made once; updatePoolRow fills it at every poll.
  function poolRow(name) {
    const tr = el('tr');
    tr.dataset.pool = name;
    const cell = (field, cls, tag) => {
      const td = el(tag || 'td', '', cls);
      if (field) td.dataset.field = field;
      tr.appendChild(td);
      return td;
    };
    const th = cell('name', 'pool-name', 'th');
    th.scope = 'row';
    th.textContent = name;
    for (const field of ['workers', 'active', 'queued', 'completed', 'failed']) cell(field, 'num');
    cell('chart', 'chart-cell-td');
    cell('', 'row-actions').appendChild(button('Show tasks', `Show tasks of pool ${name}`, () => showPoolTasks(name, '')));
    return tr;
  }

  function updatePoolRow(tr, pool, samples, now) {
    const field = (name) => tr.querySelector(`[data-field="${name}"]`);
    field('workers').textContent = count(pool.workers);
    field('active').textContent = count(pool.active);
    field('queued').textContent = `${count(pool.queued)} / ${count(pool.queue_size)}`;
    field('completed').textContent = count(pool.completed);
    const failed = field('failed');
    failed.title = `${count(pool.timed_out)} timed out, ${count(pool.cancelled)} cancelled, ${count(pool.rejected)} rejected`;
    failed.classList.toggle('failed-some', pool.failed > 0);
    // A failed count leads to those tasks.
    let link = failed.querySelector('button');
    if (pool.failed > 0) {
      if (!link) {
        link = button('', '', () => showPoolTasks(pool.name, 'failed'), 'link');
        failed.replaceChildren(link);
      }
      link.textContent = count(pool.failed);
      link.setAttribute('aria-label', `${count(pool.failed)} failed: show the failed tasks of pool ${pool.name}`);
    } else {
      failed.textContent = count(pool.failed);
    }
    const done = rates(samples, 'completed');
    const failures = rates(samples, 'failed');
    const wrap = el('div', undefined, 'chart-cell');
    const fmt = (v) => `${rateFormat.format(v)}/s`;
    wrap.appendChild(
      chart(done, {
        now,
        second: failures,
        format: fmt,
        describe: (pts, peak) =>
          pts.length
            ? `Completions per second in pool ${pool.name}: now ${fmt(pts[pts.length - 1].v)}, peak ${fmt(peak)} over ${pts.length} samples`
            : `Completions per second in pool ${pool.name}: collecting samples`,
      }),
    );
    wrap.appendChild(el('span', done.length ? `${fmt(done[done.length - 1].v)} now` : 'measuring\u2026', 'rate-now'));
    field('chart').replaceChildren(wrap);
  }

  function renderPools(pools, now) {
    pools.sort((a, b) => a.name.localeCompare(b.name));
    const names = pools.map((p) => p.name);
    for (const name of [...state.pools.keys()]) if (!names.includes(name)) state.pools.delete(name);
    const body = $('pools-body');
    reconcile(body, names, poolRow);
    pools.forEach((pool, i) => updatePoolRow(body.children[i], pool, remember(pool, now), now));
    $('pools-table').hidden = pools.length === 0;
    $('pools-empty').hidden = pools.length !== 0;
    state.poolNames = names;
    fillPoolChoices(names);
    fillSourceChoices(names);
  }

  function options(select, entries) {
    const current = [...select.options].map((o) => `${o.value}\t${o.textContent}`);
    if (current.join('\n') === entries.map(([v, t]) => `${v}\t${t}`).join('\n')) return;
    const keep = select.value;
    select.replaceChildren(
      ...entries.map(([value, text]) => {
        const o = el('option', text);
        o.value = value;
        return o;
      }),
    );
    select.value = keep;
  }

  function fillPoolChoices(names) {
    const select = $('task-pool');
    let want = select.value;
    if (state.createdPool && names.includes(state.createdPool)) {
      want = state.createdPool;
      state.createdPool = null;
    }
    options(select, names.length ? names.map((n) => [n, n]) : [['', '(create a pool first)']]);
    if (names.includes(want)) select.value = want;
  }

  // The lists the page can show: each pool's tasks and the jobs. A pool
  // that was closed while shown stays a choice: its tasks are listed
  // until they expire.
  function fillSourceChoices(names) {
    const source = list.source;
    const entries = names.map((n) => [`pool:${n}`, `Tasks of pool ${n}`]);
    if (source.startsWith('pool:') && !names.includes(source.slice(5)))
      entries.push([source, `Tasks of pool ${source.slice(5)} (closed)`]);
    entries.push(['jobs', 'Jobs']);
    options($('list-source'), entries);
    $('list-source').value = source;
  }

  // ---- stored functions ---------------------------------------------------------

  function functionRow(name) {
    const tr = el('tr');
    tr.dataset.function = name;
    const th = el('th', '', 'name');
    th.scope = 'row';
    th.dataset.field = 'name';
    th.appendChild(button(name, `Open function ${name}`, () => openFunction(name), 'link'));
    tr.append(th);
    for (const [field, cls] of [['version', 'num'], ['created'], ['sha256', 'mono']]) {
      const td = el('td', '', cls);
      td.dataset.field = field;
      tr.append(td);
    }
    return tr;
  }

  function renderFunctions(items) {
    const body = $('functions-body');
    reconcile(body, items.map((f) => f.name), functionRow);
    items.forEach((f, i) => {
      const tr = body.children[i];
      tr.querySelector('[data-field="version"]').textContent = numberFormat.format(f.version);
      tr.querySelector('[data-field="created"]').textContent = when(f.created_at);
      tr.querySelector('[data-field="sha256"]').textContent = String(f.sha256 || '').slice(0, 12);
    });
    $('functions-table').hidden = items.length === 0;
    $('functions-empty').hidden = items.length !== 0;
  }

  // A function's code and every version of it.
  async function openFunction(name) {
    const panel = $('function-detail');
    panel.hidden = false;
    $('function-name').textContent = name;
    let f;
    try {
      f = (await api('GET', `/v1/functions/${enc(name)}`)).data;
    } catch (err) {
      $('function-latest').textContent = `Cannot read the function: ${err.message}`;
      $('function-code').textContent = '';
      $('function-versions-body').replaceChildren();
      panel.focus();
      return;
    }
    $('function-latest').textContent = `Latest version ${f.version}, stored ${when(f.created_at)}; ${f.versions.length} version${f.versions.length === 1 ? '' : 's'} in all.`;
    $('function-code').textContent = f.code;
    $('function-versions-body').replaceChildren(
      ...f.versions.map((v) => {
        const tr = el('tr');
        tr.dataset.version = String(v.version);
        tr.append(el('td', numberFormat.format(v.version), 'num'), el('td', when(v.created_at)), el('td', v.sha256, 'mono'));
        return tr;
      }),
    );
    panel.focus();
  }

  // ---- the server's own figures ---------------------------------------------

  // Which store records the tasks, whether they outlive the process, and
  // why it cannot write when it cannot.
  function renderStore(store) {
    const node = $('store');
    if (!store || typeof store.kind !== 'string') {
      node.textContent = '\u2013';
      return;
    }
    let text = `${store.kind} (${store.durable ? 'durable' : 'not durable'})`;
    if (store.error) text += `: cannot write: ${store.error}`;
    node.textContent = text;
    node.classList.toggle('bad', !!store.error);
  }

  function renderStats(stats, now) {
    $('stats-unavailable').hidden = true;
    $('server-figures').hidden = false;
    $('server-charts').hidden = false;
    const g = stats.goroutines || {};
    const http = stats.http || {};
    $('goroutines-alive').textContent = count(g.alive);
    $('goroutines-parked').textContent = count(g.parked);
    $('goroutines-running').textContent = count(g.running);
    $('goroutines-spawned').textContent = count(g.spawned);
    $('workers').textContent = count(stats.workers);
    $('lua-memory').textContent = bytes(stats.lua_bytes);
    $('pool-count').textContent = count(stats.pools);
    $('long-polls').textContent = count(stats.long_polls);
    $('http-requests').textContent = count(http.requests);
    $('http-in-flight').textContent = count(http.in_flight);
    renderStore(stats.store);
    $('version').textContent = stats.version ? `version ${stats.version}` : '';
    $('uptime').textContent = typeof stats.uptime_s === 'number' ? `up ${duration(stats.uptime_s)}` : '';

    state.server.push({ t: now, alive: g.alive || 0, bytes: stats.lua_bytes || 0 });
    trim(state.server, now);
    const alive = state.server.map((s) => ({ t: s.t, v: s.alive }));
    const memory = state.server.map((s) => ({ t: s.t, v: s.bytes }));
    $('goroutines-chart').replaceChildren(
      chart(alive, {
        now,
        format: count,
        describe: (pts, peak) => `Goroutines alive: now ${count(g.alive)}, peak ${count(peak)}`,
      }),
    );
    $('memory-chart').replaceChildren(
      chart(memory, {
        now,
        minPeak: 1024,
        format: bytes,
        describe: (pts, peak) => `Lua memory: now ${bytes(stats.lua_bytes)}, peak ${bytes(peak)}`,
      }),
    );
  }

  function statsUnavailable(err) {
    const why = err.status === 501 ? 'this server does not report them yet' : err.message;
    const note = $('stats-unavailable');
    note.textContent = `Server stats unavailable: ${why}.`;
    note.hidden = false;
    $('server-figures').hidden = true;
    $('server-charts').hidden = true;
    state.server = [];
  }

  // ---- what the token may do -----------------------------------------------------

  // The probe: POST /v1/jobs/await with an empty body. The server checks
  // the token before anything else (api.c, precheck: a read-only token on
  // a route without API_READ gets 403 read-only-token, and this route is
  // not a reader's in routes.c); with the submit token, or on a server
  // without tokens, the handler (api__await_jobs) refuses the body at once
  // with 400 ("ids" is required) before it looks up or waits for any job.
  // Even a valid await only waits: it starts, changes and keeps nothing,
  // and it is no route that a stopping server refuses (API_STARTS_WORK).
  // So the answer is 403 for a read-only token, 400 for one that may
  // submit, and nothing happens either way.
  async function probeAccess() {
    try {
      await api('POST', '/v1/jobs/await', {});
      return 'submit';
    } catch (err) {
      if (err.status === 403 && err.problem && /read-only-token$/.test(err.problem.type || '')) return 'read';
      if (err.status === 400) return 'submit';
      return null; // unknown: the forms stay, and the server refuses what it must
    }
  }

  // With a read-only token every control that changes something is hidden
  // (the class read-only on body hides each .submit-only).
  function setAccess(access) {
    state.access = access;
    const badge = $('access');
    badge.hidden = !access;
    badge.textContent = access === 'read' ? 'read-only access' : access === 'submit' ? 'submit access' : '';
    document.body.classList.toggle('read-only', access === 'read');
    $('read-only-note').hidden = access !== 'read';
  }

  // ---- polling ----------------------------------------------------------------

  function pollSoon(ms) {
    clearTimeout(state.timer);
    state.timer = setTimeout(poll, ms);
  }

  // After a token was entered or forgotten: find out what it may do, then
  // read everything again.
  function restart() {
    setAccess(null);
    stopStream();
    pollSoon(0);
  }

  async function poll() {
    if (state.authNeeded) return;
    try {
      await pollOnce();
    } finally {
      if (!state.authNeeded) pollSoon(POLL_MS);
    }
  }

  async function pollOnce() {
    const [pools, stats, functions] = await Promise.allSettled([
      api('GET', '/v1/pools'),
      api('GET', '/v1/stats'),
      api('GET', '/v1/functions?limit=100'),
    ]);
    const now = Date.now();
    if (state.authNeeded) return; // a 401: the token panel is up
    $('forget-token').hidden = !memoryToken;
    if (pools.status === 'fulfilled') {
      renderPools((pools.value.data && pools.value.data.pools) || [], now);
      setConnection('Live', false, new Date(now).toLocaleTimeString('en-GB'));
    } else {
      setConnection(`Cannot read the pools: ${pools.reason.message}. Retrying.`, true);
    }
    if (stats.status === 'fulfilled' && stats.value.data) renderStats(stats.value.data, now);
    else if (stats.status === 'rejected') statsUnavailable(stats.reason);
    if (functions.status === 'fulfilled' && functions.value.data) renderFunctions(functions.value.data.items || []);
    if (state.access === null) setAccess(await probeAccess());
    if (!list.loaded) await loadList();
    syncStream();
    // Without the event stream, the list and the open record are polled.
    if (stream.down) await Promise.allSettled([loadList(), refreshDetail(true)]);
  }

  // ---- the list of tasks or jobs ------------------------------------------------

  // source: 'pool:NAME' or 'jobs'; cursors[i] opens page i (null: the
  // first); the items are the page shown.
  const list = {
    source: 'jobs',
    filter: '',
    limit: 25,
    cursors: [null],
    page: 0,
    next: null,
    items: [],
    loaded: false,
    generation: 0,
    reloadTimer: 0,
    lastLoad: 0,
  };

  const sourcePool = () => (list.source.startsWith('pool:') ? list.source.slice(5) : null);

  function recordPath(rec) {
    return rec.pool ? `/v1/pools/${enc(rec.pool)}/tasks/${enc(rec.id)}` : `/v1/jobs/${enc(rec.id)}`;
  }

  function listPath() {
    const q = new URLSearchParams({ limit: String(list.limit) });
    if (list.filter) q.set('state', list.filter);
    const cursor = list.cursors[list.page];
    if (cursor) q.set('cursor', cursor);
    const pool = sourcePool();
    return `${pool ? `/v1/pools/${enc(pool)}/tasks` : '/v1/jobs'}?${q}`;
  }

  // Whether a record belongs in the list as chosen (any page).
  function belongs(rec) {
    const pool = sourcePool();
    return (pool ? rec.pool === pool : !rec.pool) && (!list.filter || rec.state === list.filter);
  }

  async function loadList() {
    const generation = ++list.generation;
    clearTimeout(list.reloadTimer);
    list.reloadTimer = 0;
    list.lastLoad = Date.now();
    let data;
    try {
      data = (await api('GET', listPath())).data;
    } catch (err) {
      if (generation !== list.generation) return;
      list.items = [];
      list.next = null;
      renderList(`Cannot read the list: ${err.message}`);
      return;
    }
    if (generation !== list.generation) return; // a newer load is under way
    list.loaded = true;
    list.items = data.items || [];
    list.next = data.next_cursor || null;
    renderList();
  }

  // Loads the list again, at most once per RELOAD_GAP_MS however many
  // events ask for it.
  function reloadListSoon() {
    if (list.reloadTimer) return;
    const wait = Math.max(0, list.lastLoad + RELOAD_GAP_MS - Date.now());
    list.reloadTimer = setTimeout(loadList, wait);
  }

  function recordRow(id) {
    const tr = el('tr');
    tr.dataset.id = id;
    const th = el('th', '', 'mono');
    th.scope = 'row';
    th.dataset.field = 'id';
    // The row's own record when the list no longer has it: a row stays
    // shown while another list loads (chooseList empties list.items first).
    th.appendChild(button(id, `Open ${id}`, () => openRecord(list.items.find((r) => r.id === id) || tr.record), 'link'));
    tr.appendChild(th);
    for (const [field, cls] of [['state'], ['attempt', 'num'], ['created'], ['duration', 'num'], ['outcome', 'summary']]) {
      const td = el('td', '', cls);
      td.dataset.field = field;
      tr.appendChild(td);
    }
    return tr;
  }

  function summary(rec) {
    if (rec.success === true) return JSON.stringify(rec.values).slice(0, 80);
    if (rec.success === false) return String(rec.error || '').split('\n')[0].slice(0, 120);
    if (rec.progress) return `${Math.round(rec.progress.fraction * 100)}%${rec.progress.message ? ` ${rec.progress.message}` : ''}`;
    return '';
  }

  function updateRecordRow(tr, rec) {
    const set = (field, text) => {
      const td = tr.querySelector(`[data-field="${field}"]`);
      if (td.textContent !== text) td.textContent = text;
      return td;
    };
    set('state', stateText(rec.state)).className = `state ${rec.state}`;
    set('attempt', `${rec.attempt || 1} of ${rec.max_attempts || 1}`);
    set('created', when(rec.created_at));
    set('duration', runTime(rec.duration_ms));
    set('outcome', summary(rec));
    tr.dataset.state = rec.state;
    tr.record = rec;
  }

  function renderList(problem) {
    const pool = sourcePool();
    const body = $('list-body');
    reconcile(body, list.items.map((r) => r.id), recordRow);
    list.items.forEach((rec, i) => updateRecordRow(body.children[i], rec));
    const what = pool ? 'tasks' : 'jobs';
    const empty = $('list-empty');
    empty.hidden = list.items.length !== 0;
    empty.textContent = problem || `No ${list.filter ? `${stateText(list.filter)} ` : ''}${what}${list.page ? ' on this page' : ''}.`;
    $('list-table').hidden = list.items.length === 0;
    $('page-label').textContent = `Page ${list.page + 1}${list.next ? '' : ' (the last)'}, ${list.items.length} ${what} shown, newest first`;
    $('page-first').disabled = list.page === 0;
    $('page-prev').disabled = list.page === 0;
    $('page-next').disabled = !list.next;
    $('pool-actions').hidden = !pool;
    if (pool) $('close-pool').hidden = !state.poolNames.includes(pool);
  }

  // Shows another list (or the same one filtered otherwise) from its first page.
  function chooseList(source, filter) {
    list.source = source;
    list.filter = filter;
    list.cursors = [null];
    list.page = 0;
    list.items = [];
    $('list-source').value = source;
    $('list-state').value = filter;
    $('list-outcome').textContent = '';
    fillSourceChoices(state.poolNames);
    loadList();
    syncStream();
  }

  function showPoolTasks(pool, filter) {
    chooseList(`pool:${pool}`, filter);
    $('records').focus();
  }

  // A pager button that the new page disables hands the focus on to its
  // neighbour rather than dropping it.
  async function turnPage(to) {
    if (to === 'next') {
      if (!list.next) return;
      list.cursors[list.page + 1] = list.next;
      list.page++;
    } else if (to === 'prev') {
      list.page = Math.max(0, list.page - 1);
    } else {
      list.page = 0;
    }
    await loadList();
    const focused = document.activeElement;
    if (focused && focused.disabled) $(to === 'next' ? 'page-prev' : 'page-next').focus();
  }

  // ---- pool actions ---------------------------------------------------------------

  async function retryFailed() {
    const pool = sourcePool();
    if (!pool) return;
    const b = $('retry-failed');
    b.disabled = true;
    try {
      const { data } = await api('POST', `/v1/pools/${enc(pool)}/retry`, { state: 'failed' });
      const n = data.retried;
      outcome('list-outcome', `${numberFormat.format(n)} failed task${n === 1 ? '' : 's'} of pool ${pool} queued again.`, true);
      loadList();
      pollSoon(0);
    } catch (err) {
      outcome('list-outcome', `Retry of the failed tasks refused: ${err.message}`, false);
    } finally {
      b.disabled = false;
    }
  }

  // A closed pool is gone for good (its queued tasks are cancelled), so
  // the page asks first, in a modal dialog that starts on "Keep it".
  function confirmClose(pool) {
    const dialog = $('confirm');
    $('confirm-title').textContent = `Close pool ${pool}?`;
    $('confirm-text').textContent = `Pool ${pool} takes no more tasks: its running tasks finish, its queued ones are cancelled. Its tasks can still be read until they expire.`;
    return new Promise((resolve) => {
      const done = (yes) => {
        dialog.removeEventListener('close', onClose);
        if (dialog.open) dialog.close();
        resolve(yes);
      };
      const onClose = () => done(false);
      dialog.addEventListener('close', onClose);
      $('confirm-yes').onclick = () => done(true);
      $('confirm-no').onclick = () => done(false);
      dialog.showModal();
    });
  }

  async function closePool() {
    const pool = sourcePool();
    if (!pool || !(await confirmClose(pool))) {
      $('close-pool').focus();
      return;
    }
    try {
      await api('DELETE', `/v1/pools/${enc(pool)}`);
      outcome('list-outcome', `Pool ${pool} closed.`, true);
      state.poolNames = state.poolNames.filter((n) => n !== pool);
      renderList();
      pollSoon(0);
    } catch (err) {
      outcome('list-outcome', `Closing pool ${pool} refused: ${err.message}`, false);
    }
    $('list-source').focus();
  }

  // ---- one record, opened ---------------------------------------------------------

  // {id, pool (null for a job), record, work (GET .../work, once), logsTimer,
  // generation}
  let detail = null;

  function openRecord(rec) {
    if (!rec) return;
    detail = { id: rec.id, pool: rec.pool || null, record: rec, logsTimer: 0, generation: 0 };
    $('detail').hidden = false;
    $('detail-outcome').textContent = '';
    $('detail-log').textContent = '(none yet)';
    renderDetail();
    refreshDetail(false);
    showWork(detail);
    syncStream();
    $('detail').focus();
  }

  // What the record runs, as it was given (its code or function, and its
  // arguments): read once, since it never changes.
  async function showWork(d) {
    try {
      const work = (await api('GET', `${recordPath(d.record)}/work`)).data;
      if (detail !== d) return;
      d.work = work;
    } catch (err) {
      if (detail !== d) return;
      d.work = { error: err.message };
    }
    renderDetail();
  }

  function hideDetail() {
    if (detail) clearTimeout(detail.logsTimer);
    detail = null;
    $('detail').hidden = true;
    syncStream();
    $('records').focus();
  }

  // The record read again (a long poll of FALLBACK_WAIT_S when it has not
  // ended and wait is asked), and its log lines.
  async function refreshDetail(wait) {
    if (!detail) return;
    const d = detail;
    const generation = ++d.generation;
    const long = wait && !TERMINAL.has(d.record.state);
    try {
      const rec = (await api('GET', `${recordPath(d.record)}${long ? `?wait=${FALLBACK_WAIT_S}` : ''}`)).data;
      if (detail !== d || generation !== d.generation) return;
      d.record = rec;
      renderDetail();
    } catch (err) {
      if (detail === d) outcome('detail-outcome', `Cannot read it: ${err.message}`, false);
    }
    await showLogs(d);
  }

  function field(dl, name, key, value, mono) {
    const wrap = el('div');
    wrap.dataset.field = key;
    const dd = el('dd');
    if (value instanceof Node) dd.appendChild(value);
    else dd.textContent = value;
    if (mono) dd.className = 'mono';
    wrap.append(el('dt', name), dd);
    dl.appendChild(wrap);
  }

  function callbackText(cb) {
    let text = `${cb.url}: ${cb.state}, ${cb.attempts} attempt${cb.attempts === 1 ? '' : 's'}`;
    if (typeof cb.last_status === 'number') text += `, last answer ${cb.last_status}`;
    if (cb.last_error) text += `, last error: ${cb.last_error}`;
    if (cb.next_at) text += `, next at ${when(cb.next_at)}`;
    if (cb.delivered_at) text += `, delivered at ${when(cb.delivered_at)}`;
    if (cb.failed_at) text += `, given up at ${when(cb.failed_at)}`;
    return text;
  }

  function renderDetail() {
    const rec = detail.record;
    const ended = TERMINAL.has(rec.state);
    $('detail-kind').textContent = rec.pool ? 'Task' : 'Job';
    $('detail-id').textContent = rec.id;
    const st = $('detail-state');
    st.textContent = stateText(rec.state);
    st.className = `state ${rec.state}`;
    $('detail-duration').textContent = typeof rec.duration_ms === 'number' ? `in ${runTime(rec.duration_ms)}` : '';
    $('detail-cancel').hidden = ended;
    $('detail-retry').hidden = !ended;
    const what = rec.pool ? 'task' : 'job';
    $('detail-cancel').textContent = `Cancel this ${what}`;
    $('detail-retry').textContent = `Retry this ${what}`;

    const progress = $('detail-progress');
    progress.hidden = !rec.progress;
    if (rec.progress) {
      $('detail-progress-bar').value = rec.progress.fraction;
      const pct = Math.round(rec.progress.fraction * 100);
      $('detail-progress-text').textContent = `${pct}%${rec.progress.message ? ` \u2014 ${rec.progress.message}` : ''}`;
    }

    // The code (or the stored function) and the arguments come from
    // GET .../work, read once when the record is opened.
    const dl = el('dl', undefined, 'fields');
    dl.id = 'detail-fields';
    if (rec.pool) field(dl, 'Pool', 'pool', rec.pool);
    const work = detail.work;
    if (rec.function) {
      field(dl, 'Function', 'function', button(`${rec.function.name}, version ${rec.function.version}`, `Open function ${rec.function.name}`, () => openFunction(rec.function.name), 'link'));
    } else if (work && typeof work.code === 'string') {
      field(dl, 'Code', 'code', el('pre', work.code));
    } else {
      field(dl, 'Code', 'code', !work ? 'reading\u2026' : work.error ? `cannot read it: ${work.error}` : 'not kept (submitted from Lua)');
    }
    if (work && Array.isArray(work.args)) field(dl, 'Arguments', 'args', work.args.length ? JSON.stringify(work.args) : 'none', true);
    field(dl, 'Attempt', 'attempt', `${rec.attempt || 1} of ${rec.max_attempts || 1}`);
    field(dl, 'Created', 'created', when(rec.created_at));
    field(dl, 'Started', 'started', when(rec.started_at));
    field(dl, 'Finished', 'finished', when(rec.finished_at));
    if (rec.callback) field(dl, 'Callback', 'callback', callbackText(rec.callback));
    $('detail-fields').replaceWith(dl);

    const body = $('detail-body');
    $('detail-body-title').textContent = rec.success === true ? 'Values' : rec.success === false ? 'Error' : 'Outcome';
    if (rec.success === true) body.textContent = JSON.stringify(rec.values, null, 2);
    else if (rec.success === false) body.textContent = rec.error || '(no error message)';
    else body.textContent = ended ? '(none)' : 'Waiting for the result\u2026';

    const attempts = rec.attempts || [];
    $('detail-attempts-none').hidden = attempts.length !== 0;
    $('detail-attempts').replaceChildren(
      ...attempts.map((a) => {
        const li = el('li');
        li.dataset.attempt = String(a.attempt);
        li.append(el('span', `Attempt ${a.attempt}: ${stateText(a.state)}`, `state ${a.state}`));
        if (a.error) li.append(el('pre', a.error));
        return li;
      }),
    );
  }

  // The record's last LOG_LINES log lines.
  async function showLogs(d) {
    let logs;
    try {
      logs = (await api('GET', `${recordPath(d.record)}/logs`)).data;
    } catch (err) {
      if (detail === d) $('detail-log').textContent = `Cannot read the log lines: ${err.message}`;
      return;
    }
    if (detail !== d || !logs) return;
    const all = logs.lines || [];
    const many = d.record.attempt > 1 || all.some((l) => l.attempt > 1);
    const lines = all.slice(-LOG_LINES).map((l) => `${many ? `#${l.attempt} ` : ''}${l.level.padEnd(5)} ${l.msg}`);
    if (logs.dropped || all.length > LOG_LINES) lines.unshift('\u2026 (older lines cut)');
    $('detail-log').textContent = lines.length ? lines.join('\n') : '(none)';
  }

  // Log lines have no events of their own: they are read again when the
  // record changes, at most every RELOAD_GAP_MS.
  function logsSoon(d) {
    if (d.logsTimer) return;
    d.logsTimer = setTimeout(() => {
      d.logsTimer = 0;
      showLogs(d);
    }, RELOAD_GAP_MS);
  }

  async function recordAction(verb) {
    if (!detail) return;
    const d = detail;
    const b = $(verb === 'cancel' ? 'detail-cancel' : 'detail-retry');
    b.disabled = true;
    try {
      const { status, data } = await api('POST', `${recordPath(d.record)}/${verb}`);
      if (detail !== d) return;
      d.record = data;
      renderDetail();
      const what = data.pool ? 'Task' : 'Job';
      const text =
        verb === 'cancel'
          ? status === 200
            ? `${what} had already ended (${stateText(data.state)}).`
            : `${what} cancelled.`
          : `${what} queued again as attempt ${data.attempt}.`;
      outcome('detail-outcome', text, true);
      if (belongs(data) || list.items.some((r) => r.id === data.id)) reloadListSoon();
    } catch (err) {
      if (detail === d) outcome('detail-outcome', `${verb === 'cancel' ? 'Cancel' : 'Retry'} refused: ${err.message}`, false);
    } finally {
      b.disabled = false;
      if (!b.hidden) b.focus();
      else $('detail-outcome').focus();
    }
  }

  // ---- the event stream -------------------------------------------------------------

  // One stream at a time, narrowed to the pool shown when the open record
  // (if any) is one of its tasks, else all records. down: it could not be
  // read, and the page polls until retryAt.
  const stream = { filter: null, abort: null, generation: 0, lastId: '', down: false, why: '', retryAt: 0 };
  const pending = new Map(); // id -> the latest record an event brought
  let flushTimer = 0;

  function wantedFilter() {
    const pool = sourcePool();
    return pool && (!detail || detail.pool === pool) ? `pool=${enc(pool)}` : '';
  }

  function setUpdates(text) {
    $('updates').textContent = text;
  }

  function stopStream() {
    stream.generation++;
    if (stream.abort) stream.abort.abort();
    stream.abort = null;
    stream.filter = null;
  }

  function syncStream() {
    if (state.authNeeded) return;
    const filter = wantedFilter();
    if (stream.abort && stream.filter === filter) return;
    if (stream.down && Date.now() < stream.retryAt) return;
    const resume = stream.filter === filter && stream.lastId;
    stopStream();
    readStream(filter, resume ? stream.lastId : '');
  }

  async function readStream(filter, lastId) {
    const generation = stream.generation;
    const abort = new AbortController();
    stream.abort = abort;
    stream.filter = filter;
    const headers = { Accept: 'text/event-stream' };
    if (memoryToken) headers.Authorization = `Bearer ${memoryToken}`;
    if (lastId) headers['Last-Event-ID'] = lastId;
    let why;
    try {
      const res = await fetch(`/v1/events${filter ? `?${filter}` : ''}`, {
        headers, cache: 'no-store', credentials: 'omit', signal: abort.signal,
      });
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      if (generation !== stream.generation) return;
      const wasDown = stream.down;
      stream.down = false;
      setUpdates(`Updates: live, from the event stream${filter ? ` (${decodeURIComponent(filter)})` : ''}.`);
      // The stream is open: what happened before it came is in the records.
      if (!lastId || wasDown) {
        loadList();
        refreshDetail(false);
      }
      await readFrames(res.body.getReader(), generation);
      why = 'the server ended it';
    } catch (err) {
      why = err.message;
    }
    if (generation !== stream.generation) return; // replaced or stopped on purpose
    stream.abort = null;
    stream.down = true;
    stream.why = why;
    stream.retryAt = Date.now() + STREAM_RETRY_MS;
    setUpdates(`Updates: polling every ${POLL_MS / 1000} s (the event stream: ${why}).`);
  }

  async function readFrames(reader, generation) {
    const decoder = new TextDecoder();
    let text = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done || generation !== stream.generation) return;
      text += decoder.decode(value, { stream: true });
      let end;
      while ((end = text.indexOf('\n\n')) >= 0) {
        const frame = text.slice(0, end).split('\n');
        text = text.slice(end + 2);
        const id = frame.find((l) => l.startsWith('id: '));
        const data = frame.find((l) => l.startsWith('data: '));
        if (id) stream.lastId = id.slice(4);
        if (data) queueEvent(JSON.parse(data.slice(6)));
      }
    }
  }

  // Events are applied COALESCE_MS after the first of a batch, only the
  // latest per record.
  function queueEvent(rec) {
    if (!rec || !rec.id) return;
    pending.set(rec.id, rec);
    if (!flushTimer) flushTimer = setTimeout(flushEvents, COALESCE_MS);
  }

  // The open record and the rows shown take the records the events
  // brought; only a record that comes into the first page or leaves it
  // loads the page again (at most every RELOAD_GAP_MS).
  function flushEvents() {
    flushTimer = 0;
    const records = [...pending.values()];
    pending.clear();
    let reload = false;
    let changed = false;
    for (const rec of records) {
      if (detail && rec.id === detail.id) {
        detail.record = rec;
        renderDetail();
        logsSoon(detail);
      }
      const i = list.items.findIndex((r) => r.id === rec.id);
      if (i >= 0) {
        list.items[i] = rec;
        changed = true;
        if (!belongs(rec) && list.page === 0) reload = true;
      } else if (belongs(rec) && list.page === 0) {
        reload = true;
      }
    }
    if (changed) renderList();
    if (reload) reloadListSoon();
  }

  // ---- the forms ----------------------------------------------------------------

  function markInvalid(form, fieldName) {
    for (const node of form.querySelectorAll('[aria-invalid]')) node.removeAttribute('aria-invalid');
    const input = fieldName && form.elements[fieldName];
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    }
  }

  class FormError extends Error {
    constructor(fieldName, message) {
      super(message);
      this.field = fieldName;
    }
  }

  // An optional whole number from an input; undefined when empty.
  function whole(input, label, min, max) {
    const text = input.value.trim();
    if (text === '') return undefined;
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max) throw new FormError(input.name, `${label} must be a whole number from ${min} to ${max}.`);
    return n;
  }

  async function createPool(event) {
    event.preventDefault();
    const form = event.target;
    const b = form.querySelector('button');
    try {
      const name = form.elements.name.value.trim();
      if (!name) throw new FormError('name', 'Name is required.');
      const body = { name, workers: whole(form.elements.workers, 'Workers', 1, 100000) };
      if (body.workers === undefined) throw new FormError('workers', 'Workers is required.');
      const queue = whole(form.elements.queue_size, 'Queue size', 0, 1000000);
      if (queue !== undefined) body.queue_size = queue;
      markInvalid(form, null);
      b.disabled = true;
      const { data } = await api('POST', '/v1/pools', body);
      outcome('pool-outcome', `Pool ${data.name} created: ${data.workers} workers, queue of ${data.queue_size}.`, true);
      state.createdPool = data.name;
      pollSoon(0);
    } catch (err) {
      markInvalid(form, err.field || (err.problem && err.problem.field));
      outcome('pool-outcome', err.message, false);
    } finally {
      b.disabled = false;
    }
  }

  function taskBody(form) {
    const pool = form.elements.pool.value;
    if (!pool) throw new FormError('pool', 'Create a pool first, then choose it here.');
    const body = { code: form.elements.code.value };
    if (!body.code.trim()) throw new FormError('code', 'Lua code is required.');
    const argsText = form.elements.args.value.trim();
    if (argsText) {
      let args;
      try {
        args = JSON.parse(argsText);
      } catch (e) {
        throw new FormError('args', `Arguments are not valid JSON: ${e.message}.`);
      }
      if (!Array.isArray(args)) throw new FormError('args', 'Arguments must be a JSON array, such as ["web-01", 3].');
      body.args = args;
    }
    const timeout = whole(form.elements.timeout_ms, 'Timeout', 1, 2 ** 31 - 1);
    if (timeout !== undefined) body.timeout_ms = timeout;
    const attempts = whole(form.elements.max_attempts, 'Attempts', 1, 100);
    if (attempts !== undefined && attempts > 1) body.max_attempts = attempts;
    const copies = whole(form.elements.copies, 'Copies', 1, 1000) || 1;
    return { pool, body, copies };
  }

  // Submits the copies, then shows the pool's tasks and opens the first.
  async function submitTask(event) {
    event.preventDefault();
    const form = event.target;
    const b = form.querySelector('button');
    let job;
    try {
      job = taskBody(form);
    } catch (err) {
      markInvalid(form, err.field);
      outcome('task-outcome', err.message, false);
      return;
    }
    markInvalid(form, null);
    b.disabled = true;
    const path = `/v1/pools/${enc(job.pool)}/tasks`;
    const accepted = [];
    const refused = [];
    try {
      // A few at a time, in order, so a full queue refuses the last ones.
      for (let i = 0; i < job.copies; i += 8) {
        const batch = [];
        for (let j = i; j < Math.min(job.copies, i + 8); j++) batch.push(api('POST', path, job.body));
        for (const r of await Promise.allSettled(batch)) {
          if (r.status === 'fulfilled') accepted.push(r.value.data.id);
          else refused.push(r.reason);
        }
        if (state.authNeeded) break;
      }
    } finally {
      b.disabled = false;
    }
    const problem = refused.length ? refused[0] : null;
    if (problem) markInvalid(form, problem.problem && problem.problem.field);
    let text;
    if (job.copies === 1) text = accepted.length ? `Submitted as ${accepted[0]}.` : problem.message;
    else {
      text = `${accepted.length} of ${job.copies} accepted.`;
      if (problem) text += ` ${refused.length} refused: ${problem.message}`;
    }
    outcome('task-outcome', text, refused.length === 0);
    pollSoon(0);
    if (!accepted.length) return;
    if (list.source !== `pool:${job.pool}` || list.page !== 0) chooseList(`pool:${job.pool}`, list.filter);
    openRecord({ id: accepted[0], pool: job.pool, state: 'queued' });
  }

  async function storeFunction(event) {
    event.preventDefault();
    const form = event.target;
    const b = form.querySelector('button');
    try {
      const name = form.elements.name.value.trim();
      if (!name) throw new FormError('name', 'Name is required.');
      const code = form.elements.code.value;
      if (!code.trim()) throw new FormError('code', 'Lua code is required.');
      markInvalid(form, null);
      b.disabled = true;
      const { status, data } = await api('PUT', `/v1/functions/${enc(name)}`, { code });
      outcome('function-outcome', status === 201 ? `Stored ${data.name} as version ${data.version}.` : `${data.name} already has this code as version ${data.version}.`, true);
      pollSoon(0);
      openFunction(data.name);
    } catch (err) {
      markInvalid(form, err.field || (err.problem && err.problem.field));
      outcome('function-outcome', err.message, false);
    } finally {
      b.disabled = false;
    }
  }

  // ---- start --------------------------------------------------------------------

  $('token-form').addEventListener('submit', useToken);
  $('forget-token').addEventListener('click', forgetToken);
  $('pool-form').addEventListener('submit', createPool);
  $('task-form').addEventListener('submit', submitTask);
  $('function-form').addEventListener('submit', storeFunction);
  $('list-source').addEventListener('change', (e) => chooseList(e.target.value, list.filter));
  $('list-state').addEventListener('change', (e) => chooseList(list.source, e.target.value));
  $('list-limit').addEventListener('change', (e) => {
    list.limit = Number(e.target.value);
    chooseList(list.source, list.filter);
  });
  $('page-first').addEventListener('click', () => turnPage('first'));
  $('page-prev').addEventListener('click', () => turnPage('prev'));
  $('page-next').addEventListener('click', () => turnPage('next'));
  $('retry-failed').addEventListener('click', retryFailed);
  $('close-pool').addEventListener('click', closePool);
  $('detail-cancel').addEventListener('click', () => recordAction('cancel'));
  $('detail-retry').addEventListener('click', () => recordAction('retry'));
  $('detail-hide').addEventListener('click', hideDetail);
  $('function-hide').addEventListener('click', () => {
    $('function-detail').hidden = true;
    $('functions').focus();
  });
  list.limit = Number($('list-limit').value);
  poll();
})();
