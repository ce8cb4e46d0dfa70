
// The goroutined dashboard: polls /v1/pools, /v1/stats and /v1/functions,
// keeps a few minutes of samples in memory to draw rates, and drives the
// two forms; the task it follows (from the event stream) shows its
// progress and log lines as they come.
// Plain DOM, no framework; every text from the server goes in with
// textContent, never as markup.
'use strict';
(() => {
  const POLL_MS = 1500;
  const WINDOW_MS = 5 * 60 * 1000; // what the charts keep
  const MIN_SPAN_MS = 30 * 1000; // the narrowest a chart's time axis gets
  const FOLLOW_WAIT_S = 1; // long polls, if the event stream cannot be read
  const QUEUE_MARGIN_MS = 120 * 1000; // time a followed task may wait queued
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
    createdPool: null, // selected in the task form once it is listed
    taskRun: 0, // the task being followed; a newer submit replaces it
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
    const init = { method, headers, cache: 'no-store', credentials: 'omit' };
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
    pollSoon(0);
  }

  function forgetToken() {
    storeToken('');
    $('forget-token').hidden = true;
    pollSoon(0);
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

  function poolRow(pool, samples, now) {
    const tr = document.createElement('tr');
    tr.dataset.pool = pool.name;
    const cell = (text, cls, field, tag) => {
      const td = document.createElement(tag || 'td');
      td.textContent = text;
      if (cls) td.className = cls;
      if (field) td.dataset.field = field;
      tr.appendChild(td);
      return td;
    };
    cell(pool.name, 'pool-name', 'name', 'th').setAttribute('scope', 'row');
    cell(count(pool.workers), 'num', 'workers');
    cell(count(pool.active), 'num', 'active');
    cell(`${count(pool.queued)} / ${count(pool.queue_size)}`, 'num', 'queued');
    cell(count(pool.completed), 'num', 'completed');
    const failedTitle = `${count(pool.timed_out)} timed out, ${count(pool.cancelled)} cancelled, ${count(pool.rejected)} rejected`;
    cell(count(pool.failed), pool.failed > 0 ? 'num failed-some' : 'num', 'failed').title = failedTitle;
    const done = rates(samples, 'completed');
    const failed = rates(samples, 'failed');
    const td = cell('', 'chart-cell-td');
    const wrap = document.createElement('div');
    wrap.className = 'chart-cell';
    const fmt = (v) => `${rateFormat.format(v)}/s`;
    wrap.appendChild(
      chart(done, {
        now,
        second: failed,
        format: fmt,
        describe: (pts, peak) =>
          pts.length
            ? `Completions per second in pool ${pool.name}: now ${fmt(pts[pts.length - 1].v)}, peak ${fmt(peak)} over ${pts.length} samples`
            : `Completions per second in pool ${pool.name}: collecting samples`,
      }),
    );
    const nowRate = document.createElement('span');
    nowRate.className = 'rate-now';
    nowRate.textContent = done.length ? `${fmt(done[done.length - 1].v)} now` : 'measuring\u2026';
    wrap.appendChild(nowRate);
    td.appendChild(wrap);
    return tr;
  }

  function renderPools(pools, now) {
    const seen = new Set();
    const rows = [];
    pools.sort((a, b) => a.name.localeCompare(b.name));
    for (const pool of pools) {
      seen.add(pool.name);
      rows.push(poolRow(pool, remember(pool, now), now));
    }
    for (const name of [...state.pools.keys()]) if (!seen.has(name)) state.pools.delete(name);
    $('pools-body').replaceChildren(...rows);
    $('pools-table').hidden = pools.length === 0;
    $('pools-empty').hidden = pools.length !== 0;
    fillPoolChoices(pools.map((p) => p.name));
  }

  function fillPoolChoices(names) {
    const select = $('task-pool');
    let want = select.value;
    if (state.createdPool && names.includes(state.createdPool)) {
      want = state.createdPool;
      state.createdPool = null;
    }
    const current = [...select.options].map((o) => o.value);
    const wanted = names.length ? names : [''];
    if (current.join('\n') !== wanted.join('\n')) {
      select.replaceChildren(
        ...wanted.map((n) => {
          const o = document.createElement('option');
          o.value = n;
          o.textContent = n || '(create a pool first)';
          return o;
        }),
      );
    }
    if (names.includes(want)) select.value = want;
  }

  // ---- stored functions ---------------------------------------------------------

  function renderFunctions(items) {
    const rows = items.map((f) => {
      const tr = document.createElement('tr');
      tr.dataset.function = f.name;
      const cells = [
        [f.name, 'name', 'th'],
        [numberFormat.format(f.version), 'version', 'td', 'num'],
        [f.created_at ? new Date(f.created_at).toLocaleString('en-GB') : '', 'created', 'td'],
        [String(f.sha256 || '').slice(0, 12), 'sha256', 'td', 'mono'],
      ];
      for (const [text, field, tag, cls] of cells) {
        const el = document.createElement(tag);
        if (tag === 'th') el.scope = 'row';
        if (cls) el.className = cls;
        el.dataset.field = field;
        el.textContent = text;
        tr.append(el);
      }
      return tr;
    });
    $('functions-body').replaceChildren(...rows);
    $('functions-table').hidden = items.length === 0;
    $('functions-empty').hidden = items.length !== 0;
  }

  // ---- the server's own figures ---------------------------------------------

  // Which store records the tasks, whether they outlive the process, and
  // why it cannot write when it cannot.
  function renderStore(store) {
    const el = $('store');
    if (!store || typeof store.kind !== 'string') {
      el.textContent = '\u2013';
      return;
    }
    let text = `${store.kind} (${store.durable ? 'durable' : 'not durable'})`;
    if (store.error) text += `: cannot write: ${store.error}`;
    el.textContent = text;
    el.classList.toggle('bad', !!store.error);
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
    setAccess(stats.access === 'read' || stats.access === 'submit' ? stats.access : null);

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

  // With a read-only token the forms are hidden; while access is unknown
  // they stay, and the server answers what a token may not do.
  function setAccess(access) {
    const badge = $('access');
    badge.hidden = !access;
    badge.textContent = access === 'read' ? 'read-only access' : access === 'submit' ? 'submit access' : '';
    $('work').hidden = access === 'read';
    $('read-only-note').hidden = access !== 'read';
  }

  // ---- polling ----------------------------------------------------------------

  function pollSoon(ms) {
    clearTimeout(state.timer);
    state.timer = setTimeout(poll, ms);
  }

  async function poll() {
    if (state.authNeeded) return;
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
    pollSoon(POLL_MS);
  }

  // ---- the forms ----------------------------------------------------------------

  function outcome(id, text, good) {
    const el = $(id);
    el.textContent = text;
    el.className = `outcome ${good ? 'good' : 'bad'}`;
  }

  function markInvalid(form, fieldName) {
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
    const el = fieldName && form.elements[fieldName];
    if (el) {
      el.setAttribute('aria-invalid', 'true');
      el.focus();
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

  class FormError extends Error {
    constructor(field, message) {
      super(message);
      this.field = field;
    }
  }

  async function createPool(event) {
    event.preventDefault();
    const form = event.target;
    const button = form.querySelector('button');
    try {
      const name = form.elements.name.value.trim();
      if (!name) throw new FormError('name', 'Name is required.');
      const body = { name, workers: whole(form.elements.workers, 'Workers', 1, 100000) };
      if (body.workers === undefined) throw new FormError('workers', 'Workers is required.');
      const queue = whole(form.elements.queue_size, 'Queue size', 0, 1000000);
      if (queue !== undefined) body.queue_size = queue;
      markInvalid(form, null);
      button.disabled = true;
      const { data } = await api('POST', '/v1/pools', body);
      outcome('pool-outcome', `Pool ${data.name} created: ${data.workers} workers, queue of ${data.queue_size}.`, true);
      state.createdPool = data.name;
      pollSoon(0);
    } catch (err) {
      markInvalid(form, err.field || (err.problem && err.problem.field));
      outcome('pool-outcome', err.message, false);
    } finally {
      button.disabled = false;
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
    const copies = whole(form.elements.copies, 'Copies', 1, 1000) || 1;
    return { pool, body, copies };
  }

  async function submitTask(event) {
    event.preventDefault();
    const form = event.target;
    const button = form.querySelector('button');
    let job;
    try {
      job = taskBody(form);
    } catch (err) {
      markInvalid(form, err.field);
      outcome('task-outcome', err.message, false);
      return;
    }
    markInvalid(form, null);
    button.disabled = true;
    const path = `/v1/pools/${encodeURIComponent(job.pool)}/tasks`;
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
      button.disabled = false;
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
    if (accepted.length) follow(job.pool, accepted[0], job.body.timeout_ms);
  }

  // Follows one task until it ends, and shows it: from the event stream
  // (GET /v1/events?task=ID, read with fetch so that the token goes in a
  // header, which EventSource cannot send), or, if the stream cannot be
  // read, by long polls at most FOLLOW_WAIT_S apart.
  async function follow(pool, id, timeoutMs) {
    const run = ++state.taskRun;
    const base = `/v1/pools/${encodeURIComponent(pool)}/tasks/${encodeURIComponent(id)}`;
    // The longest run the server allows (10 min by default) plus time in
    // the queue, then give up showing it.
    const giveUp = Date.now() + (timeoutMs || 600000) + QUEUE_MARGIN_MS;
    showTask(id, { state: 'queued' });
    $('result-log').textContent = '(none yet)';
    const shown = (task) => {
      if (run !== state.taskRun) return true;
      showTask(id, task);
      showLogs(run, pool, id);
      return TERMINAL.has(task.state);
    };
    if (await followStream(run, base, id, giveUp, shown)) return;
    while (run === state.taskRun && Date.now() < giveUp) {
      let task;
      try {
        task = (await api('GET', `${base}?wait=${FOLLOW_WAIT_S}`)).data;
      } catch (err) {
        if (run === state.taskRun) showTaskError(id, err.message);
        return;
      }
      if (shown(task)) return;
    }
    if (run === state.taskRun) showTaskError(id, 'still not finished; stopped waiting for it here');
  }

  // The task's events, each record handed to shown until it says the task
  // ended: true once it did (or another task is followed now), false when
  // the stream could not be read (the caller then polls).
  async function followStream(run, base, id, giveUp, shown) {
    const headers = { Accept: 'text/event-stream' };
    if (memoryToken) headers.Authorization = `Bearer ${memoryToken}`;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), Math.max(0, giveUp - Date.now()));
    try {
      const res = await fetch(`/v1/events?task=${encodeURIComponent(id)}`, {
        headers, cache: 'no-store', credentials: 'omit', signal: abort.signal,
      });
      if (!res.ok || !res.body) return false;
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let text = '';
      // The stream is open: what happened before it came is in the record.
      if (shown((await api('GET', base)).data)) return true;
      for (;;) {
        const { value, done } = await reader.read();
        if (done || run !== state.taskRun) return run !== state.taskRun;
        text += decoder.decode(value, { stream: true });
        let end;
        while ((end = text.indexOf('\n\n')) >= 0) {
          const frame = text.slice(0, end);
          text = text.slice(end + 2);
          const data = frame.split('\n').find((l) => l.startsWith('data: '));
          if (data && shown(JSON.parse(data.slice(6)))) return true;
        }
      }
    } catch (err) {
      return run !== state.taskRun;
    } finally {
      clearTimeout(timer);
      abort.abort();
    }
  }

  function showTask(id, task) {
    $('result').hidden = false;
    $('result-id').textContent = id;
    const st = $('result-state');
    st.textContent = task.state.replace('_', ' ');
    st.className = `state ${task.state}`;
    $('result-duration').textContent = typeof task.duration_ms === 'number' ? `in ${numberFormat.format(task.duration_ms)} ms` : '';
    const progress = $('result-progress');
    progress.hidden = !task.progress;
    if (task.progress) {
      const pct = Math.round(task.progress.fraction * 100);
      progress.textContent = `Progress: ${pct}%${task.progress.message ? ` \u2014 ${task.progress.message}` : ''}`;
    }
    const body = $('result-body');
    if (task.success === true) body.textContent = JSON.stringify(task.values, null, 2);
    else if (task.success === false) body.textContent = task.error || '(no error message)';
    else body.textContent = TERMINAL.has(task.state) ? '' : 'Waiting for the result\u2026';
  }

  // The task's last log lines (the server keeps up to 1,000).
  async function showLogs(run, pool, id) {
    const path = `/v1/pools/${encodeURIComponent(pool)}/tasks/${encodeURIComponent(id)}/logs`;
    let logs;
    try {
      logs = (await api('GET', path)).data;
    } catch (err) {
      if (run === state.taskRun) $('result-log').textContent = `Cannot read the log lines: ${err.message}`;
      return;
    }
    if (run !== state.taskRun || !logs) return;
    const lines = (logs.lines || []).slice(-50).map((l) => `${l.level.padEnd(5)} ${l.msg}`);
    if (logs.dropped || (logs.lines || []).length > 50) lines.unshift('\u2026 (older lines cut)');
    $('result-log').textContent = lines.length ? lines.join('\n') : '(none)';
  }

  function showTaskError(id, message) {
    $('result').hidden = false;
    $('result-id').textContent = id;
    const st = $('result-state');
    st.textContent = 'unknown';
    st.className = 'state failed';
    $('result-duration').textContent = '';
    $('result-body').textContent = `Cannot read the task: ${message}`;
  }

  // ---- start --------------------------------------------------------------------

  $('token-form').addEventListener('submit', useToken);
  $('forget-token').addEventListener('click', forgetToken);
  $('pool-form').addEventListener('submit', createPool);
  $('task-form').addEventListener('submit', submitTask);
  poll();
})();
