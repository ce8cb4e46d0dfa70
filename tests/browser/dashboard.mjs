// The dashboard at / in a real browser: Debian's headless Chromium, driven
// by playwright-core, against a real goroutined on an ephemeral loopback
// port. It enters a token, creates a pool, submits work, watches the
// numbers and the chart change, reads a task's result, progress and log
// lines; lists a pool's tasks by state and in pages, opens one (attempts,
// errors, logs), cancels, retries and retries all failed, sees the list
// change from the event stream (and from polls when the stream is
// refused), closes a pool after a confirmation, lists jobs and functions,
// and saves a screenshot of the task view; then, with a read-only token,
// checks that every control that changes something is hidden.
// Any request the page makes to anything but the server fails the test,
// and so does any script error or Content-Security-Policy violation.
//
//   node dashboard.mjs --bin build/normal/goroutined --out dashboard.png
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import assert from 'node:assert/strict';
import test from 'node:test';

const following = []; // how the page followed its records: the URLs it read
const changes = []; // the requests other than GET the pages sent: "METHOD path"

const { values: opt } = parseArgs({
  options: {
    bin: { type: 'string' },
    out: { type: 'string', default: 'dashboard.png' },
    chromium: { type: 'string', default: process.env.CHROMIUM || '/usr/bin/chromium' },
  },
});
assert.ok(opt.bin, 'usage: node dashboard.mjs --bin GOROUTINED [--out PNG] [--chromium PATH]');

const SUBMIT_TOKEN = 'dashboard-submit-token';
const READ_TOKEN = 'dashboard-read-token';
const WAIT_MS = 20_000; // the most any one step waits: tells slow from hung

// ---- the server -------------------------------------------------------------

const servers = new Set();

async function startServer(args) {
  // Each server keeps its store (sqlite:goroutined.db) in a folder of its own.
  const cwd = mkdtempSync(join(tmpdir(), 'gr-dash-'));
  const proc = spawn(opt.bin, ['serve', '--listen', '127.0.0.1:0', '--workers', '2', '--http-threads', '2', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    cwd,
  });
  proc.on('exit', () => rmSync(cwd, { recursive: true, force: true }));
  servers.add(proc);
  let log = '';
  proc.stderr.setEncoding('utf8');
  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start in 10 s:\n${log}`)), 10_000);
    proc.stderr.on('data', (chunk) => {
      log += chunk;
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (${code}) before listening:\n${log}`));
    });
  });
  return { base, proc, log: () => log };
}

// SIGTERM by PID, then SIGKILL if it has not exited in 15 s.
async function stopServer(server) {
  const { proc } = server;
  servers.delete(proc);
  if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
  const exited = once(proc, 'exit');
  process.kill(proc.pid, 'SIGTERM');
  const timer = setTimeout(() => process.kill(proc.pid, 'SIGKILL'), 15_000);
  const [code] = await exited;
  clearTimeout(timer);
  return code;
}

async function serverStats(base, token) {
  const res = await fetch(`${base}/v1/stats`, { headers: { Authorization: `Bearer ${token}` } });
  return { status: res.status, body: await res.json() };
}

// ---- the browser ------------------------------------------------------------

// A fresh context (fresh session storage) whose page may reach only base.
async function openPage(browser, base, colorScheme = 'light') {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme });
  const problems = [];
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url === base || url.startsWith(`${base}/`)) return route.continue();
    problems.push(`request outside the server: ${url}`);
    return route.abort();
  });
  context.on('request', (req) => {
    const url = req.url();
    if (!(url === base || url.startsWith(`${base}/`))) problems.push(`request outside the server: ${url}`);
    if (url.includes('/v1/events') || url.includes('wait=')) following.push(url.slice(base.length));
    if (req.method() !== 'GET') changes.push(`${req.method()} ${url.slice(base.length)}`);
  });
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`);
    });
  });
  // Requests open for over 2 s when the context closes (the event
  // streams aside): a test that failed on a wait prints them.
  const open = new Map();
  context.on('request', (req) => open.set(req, Date.now()));
  context.on('requestfinished', (req) => open.delete(req));
  context.on('requestfailed', (req) => open.delete(req));
  context.on('close', () => {
    for (const [req, at] of open)
      if (!req.url().includes('/v1/events') && Date.now() - at > 2000)
        console.log(`# still open after ${Date.now() - at} ms: ${req.method()} ${req.url()}`);
  });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (err) => {
    problems.push(`script error: ${err.message}`);
    console.log(`# script error: ${err.stack || err.message}`); // shown even when a wait fails first
  });
  page.on('console', (msg) => {
    // Answers with an error status are the page's business (it shows
    // them); anything else on the error console is a fault.
    if (msg.type() === 'error' && !/^Failed to load resource: the server responded with a status of/.test(msg.text()))
      problems.push(`console error: ${msg.text()}`);
  });
  return { context, page, problems };
}

const text = (page, selector) => page.locator(selector).innerText();

async function waitForText(page, selector, pattern) {
  await page.waitForFunction(
    ([sel, source, flags]) => {
      const el = document.querySelector(sel);
      return !!el && new RegExp(source, flags).test(el.textContent);
    },
    [selector, pattern.source, pattern.flags],
  );
  return text(page, selector);
}

const cellNumber = async (page, pool, field) =>
  Number((await text(page, `tr[data-pool="${pool}"] [data-field="${field}"]`)).replace(/[^0-9]/g, ''));

// axe-core's WCAG 2.1 A and AA checks on the page as it is now; it runs
// through the debugging protocol, so the page's policy does not refuse it.
const axeSource = readFileSync(new URL('./node_modules/axe-core/axe.min.js', import.meta.url), 'utf8');

async function accessibilityViolations(page) {
  await page.evaluate(axeSource);
  return page.evaluate(async () => {
    const tags = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];
    const result = await window.axe.run(document, { runOnly: { type: 'tag', values: tags } });
    return result.violations.map((v) => `${v.id}: ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  });
}

async function enterToken(page, token) {
  await page.locator('#token-panel').waitFor({ state: 'visible' });
  await page.fill('#token-input', token);
  await page.click('#token-form button');
}

// ---- calls to the server from the test itself --------------------------------

async function call(base, method, path, body, token = SUBMIT_TOKEN) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const raw = await res.text();
  return { status: res.status, body: raw ? JSON.parse(raw) : null };
}

// Waits (bounded) until GET path answers a body that ok accepts.
async function until(base, path, ok) {
  const deadline = Date.now() + WAIT_MS;
  for (let i = 0; i < 400 && Date.now() < deadline; i++) {
    const { body } = await call(base, 'GET', path);
    if (ok(body)) return body;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`GET ${path} never answered what was awaited`);
}

const rowCount = (page) => page.locator('#list-body tr').count();
const rowStates = (page) => page.locator('#list-body [data-field="state"]').allInnerTexts();

// Waits for n rows in the list, all in state want if given.
async function waitForRows(page, n, want) {
  await page.waitForFunction(
    ([count, st]) => {
      const rows = [...document.querySelectorAll('#list-body tr')];
      return rows.length === count && (!st || rows.every((tr) => tr.dataset.state === st));
    },
    [n, want],
  );
}

// ---- the tests ----------------------------------------------------------------

const watchdog = setTimeout(() => {
  for (const proc of servers) process.kill(proc.pid, 'SIGKILL');
  console.error('dashboard test: gave up after 180 s');
  process.exit(1);
}, 180_000);
watchdog.unref();

test('the dashboard in Chromium', async (t) => {
  const server = await startServer(['--token', SUBMIT_TOKEN, '--read-token', READ_TOKEN]);
  const base = server.base;
  const browser = await chromium.launch({ executablePath: opt.chromium, headless: true, timeout: 30_000 });
  const stats = await serverStats(base, SUBMIT_TOKEN);
  try {
    await t.test('is served with its type, caching and policy', async () => {
      const res = await fetch(`${base}/`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
      assert.equal(res.headers.get('cache-control'), 'no-cache');
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
      const csp = res.headers.get('content-security-policy');
      assert.match(csp, /default-src 'none'/);
      assert.match(csp, /connect-src 'self'/);
      assert.doesNotMatch(csp, /https?:|\*/, 'the policy names no other origin');
      const html = await res.text();
      assert.match(html, /<meta http-equiv="Content-Security-Policy" content="script-src 'sha256-[A-Za-z0-9+/]{43}='; style-src 'sha256-/);
      assert.doesNotMatch(html, /<(script|link|img)[^>]+(src|href)=/i, 'the page loads nothing from elsewhere');
    });

    await t.test('asks for a token, creates a pool, runs work and shows it', async () => {
      const { context, page, problems } = await openPage(browser, base);
      try {
        await page.goto(`${base}/`);
        await enterToken(page, 'not-the-token');
        await waitForText(page, '#token-reason', /not accepted: the bearer token is not valid/);
        assert.deepEqual(await accessibilityViolations(page), [], 'the token panel is accessible');
        await enterToken(page, SUBMIT_TOKEN);
        await waitForText(page, '#connection', /^Live$/);
        assert.ok(await page.locator('#token-panel').isHidden());
        await waitForText(page, '#pools-empty', /No pools yet/);

        assert.equal(stats.status, 200, 'GET /v1/stats answers');
        await waitForText(page, '#goroutines-alive', /^\d[\d,]*$/);
        await waitForText(page, '#store', /^sqlite \(durable\)$/); // the default store
        // The probe: one POST /v1/jobs/await that the server refuses as 400.
        await waitForText(page, '#access', /submit access/);
        assert.deepEqual(changes, ['POST /v1/jobs/await'], 'the access probe is the only request that is not a GET');

        // A pool, then the same name again: the 409 is shown as a problem.
        await page.fill('#pool-name', 'browser-demo');
        await page.fill('#pool-workers', '2');
        await page.fill('#pool-queue', '64');
        await page.click('#pool-form button');
        await waitForText(page, '#pool-outcome', /Pool browser-demo created: 2 workers, queue of 64/);
        await page.locator('tr[data-pool="browser-demo"]').waitFor();
        assert.equal(await cellNumber(page, 'browser-demo', 'workers'), 2);
        assert.equal(await cellNumber(page, 'browser-demo', 'completed'), 0);
        await page.click('#pool-form button');
        await waitForText(page, '#pool-outcome', /Conflict \(409\): pool 'browser-demo' already exists/);

        // Bad input: caught in the page, then refused by the server.
        await page.waitForFunction(() => document.querySelector('#task-pool').value === 'browser-demo');
        await page.fill('#task-args', '[1,');
        await page.click('#task-form button');
        await waitForText(page, '#task-outcome', /Arguments are not valid JSON/);
        assert.equal(await page.getAttribute('#task-args', 'aria-invalid'), 'true');
        await page.fill('#task-args', '');
        await page.fill('#task-code', 'return 1 +');
        await page.click('#task-form button');
        await waitForText(page, '#task-outcome', /Lua Syntax Error \(400\): snippet:1:/);

        // Work: 24 copies of a snippet, about 6 s on two workers; the
        // first one opens, with its code and arguments, and its result shows.
        await page.fill('#task-code', 'local who = ...\ngoroutine.sleep(500)\nreturn "hello " .. who');
        await page.fill('#task-args', '["browser"]');
        await page.fill('#task-copies', '24');
        await page.click('#task-form button');
        await waitForText(page, '#task-outcome', /^24 of 24 accepted\.$/);
        await waitForText(page, '#detail-state', /^succeeded$/);
        assert.deepEqual(JSON.parse(await text(page, '#detail-body')), ['hello browser']);
        assert.match(await text(page, '#detail-id'), /^task-/);
        assert.match(await text(page, '#detail-fields [data-field="code"]'), /goroutine\.sleep\(500\)/);
        assert.equal(await text(page, '#detail-fields [data-field="args"] dd'), '["browser"]');
        assert.equal(await page.inputValue('#list-source'), 'pool:browser-demo', 'the list shows the pool submitted to');

        // The pool's numbers move, and its chart gets points.
        await page.waitForFunction(() => {
          const el = document.querySelector('tr[data-pool="browser-demo"] [data-field="completed"]');
          return el && Number(el.textContent.replace(/[^0-9]/g, '')) === 24;
        });
        assert.equal(await cellNumber(page, 'browser-demo', 'failed'), 0);
        assert.equal(await cellNumber(page, 'browser-demo', 'active'), 0);
        await page.waitForFunction(() => {
          const svg = document.querySelector('tr[data-pool="browser-demo"] svg.chart');
          return svg && Number(svg.dataset.points) >= 8 && svg.querySelector('polyline.line');
        });
        const label = await page.getAttribute('tr[data-pool="browser-demo"] svg.chart', 'aria-label');
        assert.match(label, /^Completions per second in pool browser-demo: now [\d.]+\/s, peak [\d.]+\/s/);
        const peak = Number(/peak ([\d.]+)\/s/.exec(label)[1]);
        assert.ok(peak > 0, `the chart shows the completions (peak ${peak}/s)`);
        // ... and its list has all 24, each moved to succeeded by events.
        await page.waitForFunction(() => [...document.querySelectorAll('#list-body tr')].filter((tr) => tr.dataset.state === 'succeeded').length === 24);

        // A stored function is listed; a task's progress and log lines show
        // while it runs and after.
        await waitForText(page, '#functions-empty', /No stored functions/);
        const put = await call(base, 'PUT', '/v1/functions/resize', { code: 'return ...' });
        assert.equal(put.status, 201, 'PUT /v1/functions/resize');
        await page.locator('tr[data-function="resize"]').waitFor();
        assert.equal(await text(page, 'tr[data-function="resize"] [data-field="version"]'), '1');
        await page.fill('#task-code', "log.info('step one')\ngoroutine.progress(0.5, 'halfway')\ngoroutine.sleep(2500)\nlog.warn('step two')\nreturn 'done'");
        await page.fill('#task-args', '');
        await page.fill('#task-copies', '1');
        await page.click('#task-form button');
        await waitForText(page, '#detail-progress-text', /^50% \u2014 halfway$/);
        assert.equal(await page.getAttribute('#detail-progress-bar', 'value'), '0.5');
        await waitForText(page, '#detail-log', /info {2}step one/);
        assert.equal(await text(page, '#detail-state'), 'running');
        assert.ok(await page.locator('#detail-cancel').isVisible(), 'a running task can be cancelled');
        await waitForText(page, '#detail-state', /^succeeded$/);
        await waitForText(page, '#detail-log', /warn {2}step two/);
        assert.ok(await page.locator('#detail-retry').isVisible(), 'an ended task can be retried');
        // ... pushed by the event stream, not polled
        assert.ok(following.some((u) => u === '/v1/events?pool=browser-demo'), `the page read the pool's events: ${following}`);
        assert.ok(!following.some((u) => u.includes('wait=')), `the page did not poll: ${following}`);
        assert.deepEqual(await accessibilityViolations(page), [], 'the dashboard is accessible');

        // The token lasts for the tab: a reload goes straight to live.
        await page.reload();
        await waitForText(page, '#connection', /^Live$/);
        assert.ok(await page.locator('#token-panel').isHidden());
        await page.locator('tr[data-pool="browser-demo"]').waitFor();
        assert.deepEqual(problems, []);
      } finally {
        await context.close();
      }
    });

    await t.test('lists, pages, opens, cancels and retries tasks, and closes a pool', async () => {
      // 7 tasks that succeed and 4 that fail twice (two attempts each).
      assert.equal((await call(base, 'POST', '/v1/pools', { name: 'lists', workers: 2, queue_size: 64 })).status, 201);
      for (let i = 0; i < 7; i++)
        assert.equal((await call(base, 'POST', '/v1/pools/lists/tasks', { code: 'return ...', args: [i] })).status, 202);
      const failing = { code: "log.error('attempt failing') error('db-' .. ... .. ' is down')", args: [2], max_attempts: 2 };
      for (let i = 0; i < 4; i++) assert.equal((await call(base, 'POST', '/v1/pools/lists/tasks', failing)).status, 202);
      await until(base, '/v1/pools/lists', (p) => p.completed === 7 && p.failed === 4);

      const { context, page, problems } = await openPage(browser, base);
      try {
        await page.goto(`${base}/`);
        await enterToken(page, SUBMIT_TOKEN);
        await waitForText(page, '#access', /submit access/);

        // "4 failed" in the pool's row leads to those four.
        await page.click('tr[data-pool="lists"] [data-field="failed"] button');
        assert.equal(await page.inputValue('#list-source'), 'pool:lists');
        assert.equal(await page.inputValue('#list-state'), 'failed');
        await waitForRows(page, 4);
        assert.deepEqual(await rowStates(page), ['failed', 'failed', 'failed', 'failed']);
        await waitForText(page, '#updates', /live, from the event stream \(pool=lists\)/);

        // All states, five a page: 11 tasks are pages of 5, 5 and 1.
        await page.selectOption('#list-state', '');
        await waitForRows(page, 11);
        await page.selectOption('#list-limit', '5');
        await waitForRows(page, 5);
        await waitForText(page, '#page-label', /^Page 1, 5 tasks shown/);
        assert.ok(await page.locator('#page-prev').isDisabled());
        const first = await page.locator('#list-body tr').first().getAttribute('data-id');
        await page.click('#page-next');
        await waitForText(page, '#page-label', /^Page 2, 5 tasks shown/);
        assert.notEqual(await page.locator('#list-body tr').first().getAttribute('data-id'), first);
        // ... by keyboard too: on the last page the focus moves from
        // "Next page", now disabled, to "Previous page".
        await page.focus('#page-next');
        await page.keyboard.press('Enter');
        await waitForText(page, '#page-label', /^Page 3 \(the last\), 1 tasks shown/);
        assert.ok(await page.locator('#page-next').isDisabled());
        await page.waitForFunction(() => document.activeElement.id === 'page-prev');
        await page.click('#page-first');
        await waitForText(page, '#page-label', /^Page 1, 5 tasks shown/);
        assert.equal(await page.locator('#list-body tr').first().getAttribute('data-id'), first);
        await page.selectOption('#list-state', 'succeeded');
        await waitForRows(page, 5, 'succeeded');

        // A failed task opened: its two attempts, the first one's error,
        // and both attempts' log lines.
        await page.selectOption('#list-state', 'failed');
        await waitForRows(page, 4, 'failed');
        await page.locator('#list-body [data-field="id"] button').first().click();
        await waitForText(page, '#detail-state', /^failed$/);
        assert.ok(await page.evaluate(() => document.activeElement.id === 'detail'), 'the opened task gets the focus');
        assert.equal(await text(page, '#detail-fields [data-field="attempt"] dd'), '2 of 2');
        assert.match(await text(page, '#detail-attempts li[data-attempt="1"]'), /^Attempt 1: failed\s+snippet:1: db-2 is down/);
        assert.match(await text(page, '#detail-body'), /^snippet:1: db-2 is down/);
        assert.equal(await text(page, '#detail-body-title'), 'Error');
        await waitForText(page, '#detail-log', /#1 error attempt failing\n#2 error attempt failing/);
        // submitted outside the page: its code and arguments come from
        // the record's work (GET .../work)
        await waitForText(page, '#detail-fields [data-field="code"]', /log\.error\('attempt failing'\)/);
        assert.equal(await text(page, '#detail-fields [data-field="args"] dd'), '[2]');

        // Retry it by hand: a third attempt, which fails too; the open
        // task and its row follow the events.
        const retried = await text(page, '#detail-id');
        await page.click('#detail-retry');
        await waitForText(page, '#detail-outcome', /^Task queued again as attempt 3\.$/);
        await waitForText(page, '#detail-fields [data-field="attempt"] dd', /^3 of 3$/);
        await waitForText(page, '#detail-state', /^failed$/);
        await waitForText(page, '#detail-log', /#3 error attempt failing/);
        assert.equal(await page.locator('#detail-attempts li').count(), 2);
        await page.waitForFunction((id) => {
          const row = document.querySelector(`#list-body tr[data-id="${id}"] [data-field="attempt"]`);
          return row && row.textContent === '3 of 3';
        }, retried);

        // Retry all failed: the four run again (and fail again).
        await page.click('#retry-failed');
        await waitForText(page, '#list-outcome', /^4 failed tasks of pool lists queued again\.$/);
        await until(base, '/v1/pools/lists', (p) => p.failed === 9 && p.active === 0 && p.queued === 0);
        await page.waitForFunction(() => {
          const rows = [...document.querySelectorAll('#list-body tr')];
          return rows.length === 4 && rows.every((tr) => tr.dataset.state === 'failed' && /^(3 of 3|4 of 4)$/.test(tr.querySelector('[data-field="attempt"]').textContent));
        });

        // A live update: a task submitted from elsewhere shows up in the
        // list and reaches its end there, the page neither reloaded nor polled.
        await page.selectOption('#list-state', '');
        await waitForRows(page, 5);
        await page.evaluate(() => {
          window.notReloaded = true;
        });
        const loadsBefore = following.length;
        const slow = await call(base, 'POST', '/v1/pools/lists/tasks', { code: 'goroutine.sleep(400) return "late"' });
        assert.equal(slow.status, 202);
        await page.locator(`#list-body tr[data-id="${slow.body.id}"]`).waitFor();
        await page.waitForFunction((id) => document.querySelector(`#list-body tr[data-id="${id}"]`).dataset.state === 'succeeded', slow.body.id);
        assert.equal(await text(page, `#list-body tr[data-id="${slow.body.id}"] [data-field="outcome"]`), '["late"]');
        assert.ok(await page.evaluate(() => window.notReloaded === true), 'the page was not reloaded');
        assert.ok(!following.slice(loadsBefore).some((u) => u.includes('wait=')), 'no long poll');

        // Cancel a running task.
        const long = await call(base, 'POST', '/v1/pools/lists/tasks', { code: 'goroutine.sleep(60000)' });
        assert.equal(long.status, 202);
        await page.selectOption('#list-state', 'running');
        // the running list itself, not a row of the list shown before it
        await page.waitForFunction(() => [...document.querySelectorAll('#list-body tr')].every((tr) => tr.dataset.state === 'running'));
        await page.locator(`#list-body tr[data-id="${long.body.id}"]`).waitFor();
        await page.click(`#list-body tr[data-id="${long.body.id}"] [data-field="id"] button`);
        await waitForText(page, '#detail-state', /^running$/);
        await page.click('#detail-cancel');
        await waitForText(page, '#detail-outcome', /^Task cancelled\.$/);
        await waitForText(page, '#detail-state', /^cancelled$/);
        assert.equal((await call(base, 'GET', `/v1/pools/lists/tasks/${long.body.id}`)).body.state, 'cancelled');
        await page.waitForFunction((id) => !document.querySelector(`#list-body tr[data-id="${id}"]`), long.body.id);

        // The task view, for the README.
        await page.selectOption('#list-state', '');
        await page.selectOption('#list-limit', '10');
        await waitForRows(page, 10);
        await page.click(`#list-body tr[data-id="${retried}"] [data-field="id"] button`);
        await waitForText(page, '#detail-id', new RegExp(`^${retried}$`));
        await waitForText(page, '#detail-log', /#4 error attempt failing/);
        // From the pools to the task view's end, in the page's coordinates.
        const clip = await page.evaluate(() => {
          const top = document.querySelector('#pools').getBoundingClientRect().top + window.scrollY - 16;
          const bottom = document.querySelector('#detail').getBoundingClientRect().bottom + window.scrollY + 16;
          return { x: 0, y: top, width: document.documentElement.clientWidth, height: bottom - top };
        });
        await page.screenshot({ path: opt.out, fullPage: true, clip });
        console.log(`# screenshot: ${opt.out}`);
        assert.deepEqual(await accessibilityViolations(page), [], 'the task view is accessible');

        // Close the pool: asked first; "Keep it" keeps it.
        await page.click('#close-pool');
        await page.locator('#confirm').waitFor({ state: 'visible' });
        assert.equal(await text(page, '#confirm-title'), 'Close pool lists?');
        assert.ok(await page.evaluate(() => document.activeElement.id === 'confirm-no'), 'the dialog starts on "Keep it"');
        assert.deepEqual(await accessibilityViolations(page), [], 'the dialog is accessible');
        await page.keyboard.press('Escape');
        await page.locator('#confirm').waitFor({ state: 'hidden' });
        assert.equal((await call(base, 'GET', '/v1/pools/lists')).status, 200, 'Escape keeps the pool');
        await page.click('#close-pool');
        await page.click('#confirm-no');
        assert.equal((await call(base, 'GET', '/v1/pools/lists')).status, 200, '"Keep it" keeps the pool');
        await page.click('#close-pool');
        await page.click('#confirm-yes');
        await waitForText(page, '#list-outcome', /^Pool lists closed\.$/);
        assert.equal((await call(base, 'GET', '/v1/pools/lists')).status, 404);
        await page.locator('tr[data-pool="lists"]').waitFor({ state: 'detached' });
        assert.ok(await page.locator('#close-pool').isHidden());
        // Its tasks are still listed; a retry of them is refused, and the
        // server's problem is shown.
        await waitForText(page, '#list-source option:checked', /^Tasks of pool lists \(closed\)$/);
        await page.click('#retry-failed');
        await waitForText(page, '#list-outcome', /^Retry of the failed tasks refused: Not Found \(404\): pool 'lists' was closed$/);
        assert.deepEqual(problems, []);
      } finally {
        await context.close();
      }
    });

    await t.test('lists jobs and functions and opens them', async () => {
      const v2 = await call(base, 'PUT', '/v1/functions/resize', { code: 'local n = ... return n * 2' });
      assert.equal(v2.status, 201);
      const job = await call(base, 'POST', '/v1/jobs', { function: 'resize', version: 1, args: [21] });
      assert.equal(job.status, 202);
      await until(base, `/v1/jobs/${job.body.id}`, (j) => j.state === 'succeeded');
      const { context, page, problems } = await openPage(browser, base);
      try {
        await page.goto(`${base}/`);
        await enterToken(page, SUBMIT_TOKEN);
        await page.selectOption('#list-source', 'jobs');
        await page.locator(`#list-body tr[data-id="${job.body.id}"]`).waitFor();
        assert.equal(await text(page, `#list-body tr[data-id="${job.body.id}"] [data-field="outcome"]`), '[21]');
        await page.focus(`#list-body tr[data-id="${job.body.id}"] [data-field="id"] button`);
        await page.keyboard.press('Enter');
        await waitForText(page, '#detail-kind', /^Job$/);
        assert.equal(await text(page, '#detail-fields [data-field="function"] dd'), 'resize, version 1');
        assert.equal(await page.locator('#detail-fields [data-field="pool"]').count(), 0);
        // The function it ran: its latest code and both versions.
        await page.click('#detail-fields [data-field="function"] button');
        await waitForText(page, '#function-latest', /^Latest version 2, stored .*; 2 versions in all\.$/);
        assert.equal(await text(page, '#function-code'), 'local n = ... return n * 2');
        assert.deepEqual(await page.locator('#function-versions-body tr').evaluateAll((rows) => rows.map((r) => r.dataset.version)), ['2', '1']);
        // A function stored from the page, then opened from the list.
        await page.fill('#function-form-name', 'twice');
        await page.fill('#function-form-code', 'return 1 +');
        await page.click('#function-form button');
        await waitForText(page, '#function-outcome', /Lua Syntax Error \(400\)/);
        await page.fill('#function-form-code', 'local n = ... return 2 * n');
        await page.click('#function-form button');
        await waitForText(page, '#function-outcome', /^Stored twice as version 1\.$/);
        await page.locator('tr[data-function="twice"]').waitFor();
        await page.click('tr[data-function="resize"] [data-field="name"] button');
        await waitForText(page, '#function-name', /^resize$/);
        await page.click('tr[data-function="twice"] [data-field="name"] button');
        await waitForText(page, '#function-code', /^local n = \.\.\. return 2 \* n$/);
        // A job that runs on: cancelled from its view.
        const long = await call(base, 'POST', '/v1/jobs', { code: 'goroutine.sleep(60000)' });
        await page.locator(`#list-body tr[data-id="${long.body.id}"]`).waitFor();
        await page.click(`#list-body tr[data-id="${long.body.id}"] [data-field="id"] button`);
        await page.click('#detail-cancel');
        await waitForText(page, '#detail-state', /^cancelled$/);
        await page.waitForFunction((id) => document.querySelector(`#list-body tr[data-id="${id}"]`).dataset.state === 'cancelled', long.body.id);
        assert.deepEqual(problems, []);
      } finally {
        await context.close();
      }
    });

    await t.test('polls when the event stream is refused', async () => {
      const { context, page, problems } = await openPage(browser, base);
      try {
        await context.route('**/v1/events*', (route) => route.fulfill({ status: 503, body: 'no streams today' }));
        await page.goto(`${base}/`);
        await enterToken(page, SUBMIT_TOKEN);
        await page.selectOption('#list-source', 'pool:browser-demo');
        await waitForText(page, '#updates', /polling every 1\.5 s \(the event stream: HTTP 503\)/);
        const late = await call(base, 'POST', '/v1/pools/browser-demo/tasks', { code: 'goroutine.sleep(300) return "polled"' });
        await page.locator(`#list-body tr[data-id="${late.body.id}"]`).waitFor();
        await page.click(`#list-body tr[data-id="${late.body.id}"] [data-field="id"] button`);
        await waitForText(page, '#detail-state', /^succeeded$/);
        await page.waitForFunction((id) => document.querySelector(`#list-body tr[data-id="${id}"]`).dataset.state === 'succeeded', late.body.id);
        assert.deepEqual(problems.filter((p) => !p.includes('503')), []);
      } finally {
        await context.close();
      }
    });

    await t.test('hides every control that changes something from a read-only token', async () => {
      assert.equal(stats.status, 200);
      const { context, page, problems } = await openPage(browser, base, 'dark');
      const before = changes.length;
      try {
        await page.goto(`${base}/`);
        await enterToken(page, READ_TOKEN);
        await waitForText(page, '#connection', /^Live$/);
        await waitForText(page, '#access', /read-only access/);
        assert.deepEqual(changes.slice(before), ['POST /v1/jobs/await'], 'the probe is the only request that is not a GET');
        assert.ok(await page.locator('#work').isHidden(), 'the forms are hidden');
        assert.ok(await page.locator('#function-form').isHidden());
        assert.ok(await page.locator('#read-only-note').isVisible());
        await page.locator('tr[data-pool="browser-demo"]').waitFor();
        await page.click('tr[data-pool="browser-demo"] button');
        assert.ok(await page.locator('#retry-failed').isHidden());
        assert.ok(await page.locator('#close-pool').isHidden());
        // the list shows the pool's tasks once it has read them: a
        // succeeded one of that pool, not a row of the list shown before
        await page.waitForFunction(() => document.querySelector('#list-source').value === 'pool:browser-demo');
        const done = page.locator('#list-body tr[data-state="succeeded"] [data-field="id"] button').first();
        await done.waitFor();
        await done.click();
        await waitForText(page, '#detail-state', /^succeeded$/);
        assert.ok(await page.locator('#detail-retry').isHidden());
        assert.ok(await page.locator('#detail-cancel').isHidden());
        assert.deepEqual(await accessibilityViolations(page), [], 'the dark read-only view is accessible');
        assert.deepEqual(problems, []);
      } finally {
        await context.close();
      }
    });
  } finally {
    await browser.close();
    const code = await stopServer(server);
    assert.equal(code, 0, `the server exits 0 on SIGTERM:\n${server.log()}`);
  }
});
