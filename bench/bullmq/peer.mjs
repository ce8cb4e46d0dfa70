// peer.mjs - one side of bench/redis_peer.sh: N trivial jobs submitted by
// C concurrent producers, run with W at once, timed from the first submit
// to the last completion; end-to-end latency (accepted -> finished, in ms,
// as each side records it). Prints one JSON line.
//
//   node peer.mjs bullmq REDIS_URL N C W
//   node peer.mjs goroutined BASE_URL N C W
import http from "node:http";

const [kind, target, nArg, cArg, wArg] = process.argv.slice(2);
const N = Number(nArg), C = Number(cArg), W = Number(wArg);
if (!["bullmq", "goroutined"].includes(kind) || !(N > 0 && C > 0 && W > 0)) {
  console.error("usage: node peer.mjs bullmq|goroutined URL N C W");
  process.exit(2);
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

function report(seconds, latencies) {
  latencies.sort((a, b) => a - b);
  console.log(JSON.stringify({
    kind, jobs: N, producers: C, workers: W, seconds,
    rate: N / seconds,
    p50_ms: percentile(latencies, 0.5), p99_ms: percentile(latencies, 0.99),
  }));
}

async function producers(submitOne) {
  let next = 0;
  const one = async () => {
    while (next < N) {
      const i = next++;
      await submitOne(i);
    }
  };
  await Promise.all(Array.from({ length: C }, one));
}

async function bullmq() {
  const { Queue, Worker, QueueEvents } = await import("bullmq");
  const url = new URL(target);
  const connection = { host: url.hostname, port: Number(url.port || 6379),
    db: Number(url.pathname.slice(1) || 0) };
  const name = `peer-${process.pid}`;
  const queue = new Queue(name, { connection });
  let done = 0, finish;
  const allDone = new Promise((resolve) => { finish = resolve; });
  const worker = new Worker(name, async (job) => job.data.a + job.data.b,
    { connection, concurrency: W });
  worker.on("completed", () => { if (++done === N) finish(); });
  await worker.waitUntilReady();
  const t0 = performance.now();
  await producers((i) => queue.add("sum", { a: i, b: 1 },
    { removeOnComplete: false, removeOnFail: false }));
  await allDone;
  const seconds = (performance.now() - t0) / 1000;
  const latencies = [];
  for (let start = 0; start < N; start += 1000) {
    const jobs = await queue.getJobs(["completed"], start, start + 999, true);
    for (const j of jobs) latencies.push(j.finishedOn - j.timestamp);
  }
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  report(seconds, latencies);
}

const agent = new http.Agent({ keepAlive: true, maxSockets: C });

function call(method, path, body) {
  return new Promise((resolve, reject) => {
    const data = body ? JSON.stringify(body) : null;
    const req = http.request(new URL(path, target), {
      method, agent,
      headers: data ? { "content-type": "application/json",
        "content-length": Buffer.byteLength(data) } : {},
    }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c) => { text += c; });
      res.on("end", () => resolve({ status: res.statusCode, json: JSON.parse(text) }));
    });
    req.on("error", reject);
    if (data) req.write(data);
    req.end();
  });
}

async function goroutined() {
  const pool = `peer${process.pid}`;
  const made = await call("POST", "/v1/pools",
    { name: pool, workers: W, queue_size: N });
  if (made.status !== 201) throw new Error(`pool: ${made.status}`);
  const t0 = performance.now();
  await producers(async (i) => {
    const r = await call("POST", `/v1/pools/${pool}/tasks`,
      { code: "local a, b = ... return a + b", args: [i, 1] });
    if (r.status !== 202) throw new Error(`submit: ${r.status}`);
  });
  // Every task was accepted: the pool is done when it is idle. Its wait
  // route holds the request until then (no polling, as BullMQ's side
  // counts "completed" events), 30 s at a time, up to 10 minutes.
  for (let i = 0; i < 20; i++) {
    const w = await call("POST", `/v1/pools/${pool}/wait`,
      { timeout_ms: 30000 });
    if (w.status !== 200) throw new Error(`wait: ${w.status}`);
    if (w.json.idle) {
      const s = w.json.pool;
      if (s.completed + s.failed + s.timed_out < N)
        throw new Error(`idle with ${s.completed} of ${N} completed`);
      break;
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const latencies = [];
  let cursor = null;
  do {
    const page = await call("GET", `/v1/pools/${pool}/tasks?limit=1000` +
      (cursor ? `&cursor=${cursor}` : ""));
    for (const t of page.json.items)
      latencies.push(Date.parse(t.finished_at) - Date.parse(t.created_at));
    cursor = page.json.next_cursor;
  } while (cursor);
  agent.destroy();
  report(seconds, latencies);
}

await (kind === "bullmq" ? bullmq() : goroutined());
process.exit(0);
