// validate.mjs - checks captured HTTP exchanges against openapi.yaml.
//
// usage: node validate.mjs [--spec OPENAPI.yaml] CAPTURES.jsonl
//
// Each line of CAPTURES.jsonl is one exchange:
//   {"method":"GET","path":"/v1/pools?x=1","status":200,
//    "headers":{"content-type":"application/json"},"body":"{...}"}
// For each one we find the operation its path and method map to, then check
// the status, content type, body (JSON Schema 2020-12 through ajv) and the
// response headers the contract lists. Prints one line per failing exchange,
// a summary and the operationId/status pairs seen. Exit status 0 only when
// at least one exchange was checked and none failed.

import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import YAML from 'yaml';

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const DOC_ID = 'openapi.json';

// ---- command line ----------------------------------------------------------
const argv = process.argv.slice(2);
let specFile = resolve(dirname(fileURLToPath(import.meta.url)), '../../openapi.yaml');
if (argv[0] === '--spec') { specFile = argv[1]; argv.splice(0, 2); }
if (argv.length !== 1) {
  console.error('usage: node validate.mjs [--spec OPENAPI.yaml] CAPTURES.jsonl');
  process.exit(2);
}
const doc = YAML.parse(readFileSync(specFile, 'utf8'));
const captureLines = readFileSync(argv[0], 'utf8').split('\n');

// ---- ajv: the whole document is one schema so "#/components/..." resolves --
// Strict mode stays on for the schemas themselves (a misspelt keyword is an
// error); the OpenAPI-only keywords are declared as plain annotations, and
// the type checks that OpenAPI schemas legitimately skip are relaxed.
const ajv = new Ajv2020({
  allErrors: true, strictTypes: false, strictTuples: false, strictRequired: false,
});
addFormats(ajv);
ajv.addVocabulary(['openapi', 'info', 'jsonSchemaDialect', 'servers', 'paths',
  'webhooks', 'components', 'security', 'tags', 'externalDocs',
  'discriminator', 'xml', 'example']);
ajv.addSchema(doc, DOC_ID);
const compiled = new Map();
function validatorAt(pointer) { // pointer: a JSON pointer into the document
  if (!compiled.has(pointer)) {
    try {
      compiled.set(pointer, ajv.compile({ $ref: `${DOC_ID}#${encodeURI(pointer)}` }));
    } catch (e) { // a broken contract: no exchange can be judged
      console.error(`${specFile}: the schema at ${pointer} does not compile: ${e.message}`);
      process.exit(2);
    }
  }
  return compiled.get(pointer);
}
const esc = (s) => String(s).replace(/~/g, '~0').replace(/\//g, '~1'); // one pointer step

// Follows an OpenAPI $ref (response, header); returns the node and its pointer.
function deref(node, pointer) {
  while (node && typeof node.$ref === 'string' && node.$ref.startsWith('#/')) {
    pointer = decodeURIComponent(node.$ref.slice(1));
    node = pointer.split('/').slice(1)
      .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
      .reduce((n, key) => (n == null ? n : n[key]), doc);
  }
  return { node, pointer };
}

// ---- path matching ---------------------------------------------------------
const templates = Object.keys(doc.paths || {}).map((t) => ({
  template: t, segs: t.split('/').slice(1).map((s) => (/^\{.+\}$/.test(s) ? null : s)),
}));
// Returns the template the request path maps to, or null. Literal segments
// beat templated ones at the first place where two candidates differ.
function matchPath(rawPath) {
  let segs;
  try {
    segs = rawPath.split('?')[0].split('/').slice(1).map(decodeURIComponent);
  } catch { return null; } // bad percent-encoding matches nothing
  const fits = templates.filter((t) => t.segs.length === segs.length &&
    t.segs.every((lit, i) => (lit === null ? segs[i] !== '' && !segs[i].includes('\0') : lit === segs[i])));
  const rank = (t) => t.segs.map((lit) => (lit === null ? '1' : '0')).join('');
  fits.sort((a, b) => (rank(a) < rank(b) ? -1 : rank(a) > rank(b) ? 1 : 0));
  return fits.length ? fits[0].template : null;
}

// ---- checking one exchange -------------------------------------------------
const PROBLEM = '/components/schemas/Problem';
const see = (seen, label, status) => seen.set(label, (seen.get(label) || new Set()).add(status));

// Parses a JSON body and validates it against the schema at pointer; returns
// the parsed value (undefined when it is not JSON). name labels the schema.
function checkBody(problems, pointer, body, name) {
  let data;
  try { data = JSON.parse(body); } catch {
    problems.push(`the body is not JSON (expected ${name})`); return undefined;
  }
  const v = validatorAt(pointer);
  if (!v(data)) {
    const errs = v.errors.slice(0, 5).map((e) => `${e.instancePath || '/'} ${e.message}`);
    if (v.errors.length > 5) errs.push(`and ${v.errors.length - 5} more`);
    problems.push(`the body is not a valid ${name}: ${errs.join(', ')}`);
  }
  return data;
}

function checkExchange(x, seen) {
  const problems = [];
  const headers = x.headers || {};
  const body = typeof x.body === 'string' ? x.body : '';
  const ctype = (headers['content-type'] || '').split(';')[0].trim().toLowerCase();
  const isHead = x.method.toUpperCase() === 'HEAD';
  const method = isHead ? 'get' : x.method.toLowerCase();
  if (isHead && body !== '') problems.push('a HEAD answer has a body');
  // Every problem document must be a Problem, whatever route gave it.
  if (ctype === 'application/problem+json' && !isHead) {
    const p = checkBody(problems, PROBLEM, body, 'Problem');
    if (p && p.status !== undefined && p.status !== x.status)
      problems.push(`the problem says status ${p.status}`);
  }

  const template = matchPath(x.path);
  if (template === null) {
    see(seen, '(no such path)', x.status);
    if (x.status !== 404) problems.push('no path template matches, so the status should be 404');
    if (ctype !== 'application/problem+json') problems.push('the 404 is not application/problem+json');
    return problems;
  }
  const item = deref(doc.paths[template], `/paths/${esc(template)}`).node;
  const op = METHODS.includes(method) ? item[isHead && item.head ? 'head' : method] : undefined;
  if (!op) {
    see(seen, `(undefined method on ${template})`, x.status);
    if (x.status !== 405) problems.push(`${x.method} is not defined on ${template}, so the status should be 405`);
    if (ctype !== 'application/problem+json') problems.push('the 405 is not application/problem+json');
    const allow = (headers.allow || '').toUpperCase().split(/\s*,\s*/);
    if (!headers.allow) problems.push('the 405 has no Allow header');
    else for (const m of METHODS.filter((k) => item[k]))
      if (!allow.includes(m.toUpperCase())) problems.push(`Allow does not list ${m.toUpperCase()}`);
    return problems;
  }

  see(seen, op.operationId, x.status);
  const opPtr = `/paths/${esc(template)}/${isHead && item.head ? 'head' : method}`;
  const codes = op.responses || {};
  const key = [String(x.status), `${String(x.status)[0]}XX`, 'default'].find((k) => k in codes);
  if (!key) { problems.push(`status ${x.status} is not documented for ${op.operationId}`); return problems; }
  const { node: resp, pointer: respPtr } = deref(codes[key], `${opPtr}/responses/${key}`);

  // A documented header must be there, unless it says `required: false`
  // (a Link only comes when there is a next page).
  for (const [name, h] of Object.entries(resp.headers || {})) {
    const value = headers[name.toLowerCase()];
    const { node: hdr, pointer: hPtr } = deref(h, `${respPtr}/headers/${esc(name)}`);
    if (value === undefined) {
      if (hdr.required !== false) problems.push(`header ${name} is missing`);
      continue;
    }
    if (hdr.schema && !validatorAt(`${hPtr}/schema`)(value)) problems.push(`header ${name} does not match its schema`);
  }
  const content = resp.content || {};
  if (Object.keys(content).length === 0) {
    if (body !== '') problems.push(`status ${x.status} documents no content but the body is not empty`);
    return problems;
  }
  const mediaKey = Object.keys(content).find((m) => m.toLowerCase() === ctype);
  if (!mediaKey) {
    problems.push(`content type "${ctype || '(none)'}" is not documented (${Object.keys(content).join(', ')})`);
    return problems;
  }
  if (isHead) return problems;
  const schema = content[mediaKey].schema;
  if (ctype === 'application/json' || ctype.endsWith('+json')) {
    // A body documented as plain Problem was already checked above.
    if (schema && !(ctype === 'application/problem+json' && schema.$ref === `#${PROBLEM}`))
      checkBody(problems, `${respPtr}/content/${esc(mediaKey)}/schema`, body,
        schema.$ref ? schema.$ref.split('/').pop() : `${op.operationId} ${x.status} body`);
    else if (!schema) { try { JSON.parse(body); } catch { problems.push('the body is not JSON'); } }
  } else if (body.trim() === '') {
    problems.push(`the ${ctype} body is empty`);
  }
  return problems;
}

// ---- main ------------------------------------------------------------------
let checked = 0, failed = 0;
const seen = new Map(); // label -> Set of statuses
captureLines.forEach((text, i) => {
  if (text.trim() === '') return;
  checked++;
  let x;
  try { x = JSON.parse(text); } catch { x = null; }
  if (!x || typeof x.method !== 'string' || typeof x.path !== 'string' || !Number.isInteger(x.status)) {
    failed++;
    console.log(`line ${i + 1}: not a capture (needs method, path and an integer status)`);
    return;
  }
  const problems = checkExchange(x, seen);
  if (problems.length) {
    failed++;
    console.log(`line ${i + 1}: ${x.method} ${x.path} ${x.status}: ${problems.join('; ')}`);
  }
});
console.log(`${checked} exchanges checked, ${failed} failed`);
if (checked === 0) console.log('nothing was checked: the captures file has no exchanges');
// Coverage: per operation (in document order) the statuses seen, and the
// documented ones never seen; then the unmatched paths and methods.
console.log('seen (operationId: statuses):');
for (const item of Object.values(doc.paths)) {
  for (const m of METHODS.filter((k) => item[k])) {
    const op = item[m], got = seen.get(op.operationId) || new Set();
    const hit = (c) => (/^\d{3}$/.test(c) ? got.has(Number(c)) : [...got].some((g) => `${g}`[0] === c[0]));
    const missing = Object.keys(op.responses || {}).filter((c) => c !== 'default' && !hit(c));
    console.log(`  ${op.operationId}: ${[...got].sort().join(' ') || '-'}` +
      (missing.length ? `  (not seen: ${missing.join(' ')})` : ''));
    seen.delete(op.operationId);
  }
}
for (const [label, got] of seen) console.log(`  ${label}: ${[...got].sort().join(' ')}`);
process.exit(checked > 0 && failed === 0 ? 0 : 1);
