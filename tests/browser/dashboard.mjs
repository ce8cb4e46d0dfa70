// The dashboard at / in a real browser: Debian's headless Chromium, driven
// by playwright-core, against a real goroutined on an ephemeral loopback
// port. It enters a token, creates a pool, submits work, watches the
// numbers and the chart change, reads the task's result, its progress and
// log lines, sees a stored function listed, and saves a screenshot; then,
// with a read-only token, checks the forms are hidden.
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

const following = []; // how the page followed its task: the URLs it read

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
    if (url.includes('/v1/events') || url.includes('?wait=')) following.push(url.slice(base.length));
  });
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`);
    });
  });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (err) => problems.push(`script error: ${err.message}`));
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

// ---- the tests ----------------------------------------------------------------

const watchdog = setTimeout(() => {
  for (const proc of servers) process.kill(proc.pid, 'SIGKILL');
  console.error('dashboard test: gave up after 180 s');
  process.exit(1);
}, 180_000);
watchdog.unref();

test('the dashboard in Chromium', async (t) => {
  const server = await startServer(['--token', SUBMIT_TOKEN, '--read-token', READ_TOKEN]);
  const browser = await chromium.launch({ executablePath: opt.chromium, headless: true, timeout: 30_000 });
  const stats = await serverStats(server.base, SUBMIT_TOKEN);
  try {
    await t.test('is served with its type, caching and policy', async () => {
      const res = await fetch(`${server.base}/`);
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
      const { context, page, problems } = await openPage(browser, server.base);
      try {
        await page.goto(`${server.base}/`);
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
        await waitForText(page, '#access', /submit access/);

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
        // first one's result shows.
        await page.fill('#task-code', 'local who = ...\ngoroutine.sleep(500)\nreturn "hello " .. who');
        await page.fill('#task-args', '["browser"]');
        await page.fill('#task-copies', '24');
        await page.click('#task-form button');
        await waitForText(page, '#task-outcome', /^24 of 24 accepted\.$/);
        await waitForText(page, '#result-state', /^succeeded$/);
        assert.deepEqual(JSON.parse(await text(page, '#result-body')), ['hello browser']);
        assert.match(await text(page, '#result-id'), /\S/);

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

        // A stored function is listed; a task's progress and log lines show
        // while it runs and after.
        await waitForText(page, '#functions-empty', /No stored functions/);
        const put = await fetch(`${server.base}/v1/functions/resize`, {
          method: 'PUT',
          headers: { Authorization: `Bearer ${SUBMIT_TOKEN}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ code: 'return ...' }),
        });
        assert.equal(put.status, 201, 'PUT /v1/functions/resize');
        await page.locator('tr[data-function="resize"]').waitFor();
        assert.equal(await text(page, 'tr[data-function="resize"] [data-field="version"]'), '1');
        await page.fill('#task-code', "log.info('step one')\ngoroutine.progress(0.5, 'halfway')\ngoroutine.sleep(2500)\nlog.warn('step two')\nreturn 'done'");
        await page.fill('#task-args', '');
        await page.fill('#task-copies', '1');
        await page.click('#task-form button');
        await waitForText(page, '#result-progress', /^Progress: 50% \u2014 halfway$/);
        await waitForText(page, '#result-log', /info {2}step one/);
        assert.equal(await text(page, '#result-state'), 'running');
        await waitForText(page, '#result-state', /^succeeded$/);
        await waitForText(page, '#result-log', /warn {2}step two/);
        // ... pushed by the event stream, not polled
        assert.ok(following.some((u) => u.startsWith('/v1/events?task=task-')), `the page read the task's events: ${following}`);
        assert.ok(!following.some((u) => u.includes('?wait=')), `the page did not poll: ${following}`);

        await page.screenshot({ path: opt.out, fullPage: true });
        console.log(`# screenshot: ${opt.out}`);
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

    await t.test('hides the forms from a read-only token', async () => {
      assert.equal(stats.status, 200, 'GET /v1/stats tells the page what a token may do');
      const { context, page, problems } = await openPage(browser, server.base, 'dark');
      try {
        await page.goto(`${server.base}/`);
        await enterToken(page, READ_TOKEN);
        await waitForText(page, '#connection', /^Live$/);
        await waitForText(page, '#access', /read-only access/);
        assert.ok(await page.locator('#work').isHidden(), 'the forms are hidden');
        assert.ok(await page.locator('#read-only-note').isVisible());
        await page.locator('tr[data-pool="browser-demo"]').waitFor();
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
