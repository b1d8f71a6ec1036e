// SPDX-License-Identifier: Apache-2.0
// docs/openapi.yaml against the server: a structural lint (OpenAPI 3.1, unique operation ids,
// every $ref resolves, every example matches its schema); its /api/v1 paths and methods equal
// the route table in src/node.c, both ways; and every documented operation, sent to a live
// server with its example, answers a documented status with a body that matches the
// documented schema, 401 without the token and 403 on a server with the admin API off.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { parse as parseYaml } from 'yaml';

import { REPO_ROOT, adminRequest, httpGet, startServer, stopServerCleanly } from './harness.mjs';

const spec = parseYaml(readFileSync(join(REPO_ROOT, 'docs/openapi.yaml'), 'utf8'));
const TOKEN = 'openapi-test-token';
const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

/** Every operation: {path, method, op}. */
const operations = Object.entries(spec.paths).flatMap(([path, item]) =>
  METHODS.filter((m) => item[m]).map((method) => ({ path, method, op: item[method] })),
);

function resolveRef(ref) {
  assert.match(ref, /^#\//, `only local $refs: ${ref}`);
  let node = spec;
  for (const part of ref.slice(2).split('/')) {
    node = node?.[part];
    assert.ok(node !== undefined, `$ref ${ref} resolves`);
  }
  return node;
}
const deref = (node) => (node && node.$ref ? deref(resolveRef(node.$ref)) : node);

const typeOf = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : Number.isInteger(v) ? 'integer' : typeof v);

/**
 * The JSON Schema (2020-12) keywords this description uses, checked: $ref, type, const, enum,
 * required, properties, additionalProperties: false, items, min/maxItems, minimum, maximum,
 * exclusiveMinimum, pattern, min/maxLength, oneOf. Returns the list of violations.
 */
function validate(schema, value, at = '$') {
  schema = deref(schema);
  const errs = [];
  if (schema === undefined || schema === true) return errs;
  const t = typeOf(value);
  if (schema.type !== undefined) {
    const types = [].concat(schema.type);
    const ok = types.includes(t) || (t === 'integer' && types.includes('number'));
    if (!ok) return [`${at}: ${t}, not ${types.join('|')}`];
  }
  if ('const' in schema && value !== schema.const) errs.push(`${at}: ${JSON.stringify(value)} is not ${JSON.stringify(schema.const)}`);
  if (schema.enum && !schema.enum.includes(value)) errs.push(`${at}: ${JSON.stringify(value)} not in ${schema.enum}`);
  if (t === 'object') {
    for (const k of schema.required ?? []) if (!(k in value)) errs.push(`${at}: no ${k}`);
    for (const [k, v] of Object.entries(value)) {
      if (schema.properties?.[k]) errs.push(...validate(schema.properties[k], v, `${at}.${k}`));
      else if (schema.additionalProperties === false) errs.push(`${at}: ${k} is not allowed`);
    }
  }
  if (t === 'array') {
    if (schema.minItems !== undefined && value.length < schema.minItems) errs.push(`${at}: fewer than ${schema.minItems} items`);
    if (schema.maxItems !== undefined && value.length > schema.maxItems) errs.push(`${at}: more than ${schema.maxItems} items`);
    if (schema.items) value.forEach((v, i) => errs.push(...validate(schema.items, v, `${at}[${i}]`)));
  }
  if (t === 'integer' || t === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) errs.push(`${at}: ${value} < ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) errs.push(`${at}: ${value} > ${schema.maximum}`);
    if (schema.exclusiveMinimum !== undefined && value <= schema.exclusiveMinimum) errs.push(`${at}: ${value} <= ${schema.exclusiveMinimum}`);
  }
  if (t === 'string') {
    if (schema.pattern && !new RegExp(schema.pattern, 'u').test(value)) errs.push(`${at}: "${value}" !~ ${schema.pattern}`);
    if (schema.minLength !== undefined && value.length < schema.minLength) errs.push(`${at}: shorter than ${schema.minLength}`);
    if (schema.maxLength !== undefined && value.length > schema.maxLength) errs.push(`${at}: longer than ${schema.maxLength}`);
  }
  if (schema.oneOf) {
    const matching = schema.oneOf.filter((s) => validate(s, value, at).length === 0).length;
    if (matching !== 1) errs.push(`${at}: matches ${matching} of oneOf, not exactly 1`);
  }
  return errs;
}

/** The documented answer of `op` for `status`, or undefined. */
const documented = (op, status) => deref(op.responses[String(status)]);

/** Checks a live answer against `op`'s documentation: the status is listed, the body fits. */
function assertAnswer(where, op, status, { text, json }) {
  const doc = documented(op, status);
  assert.ok(doc, `${where} answered ${status}, which is not documented (${Object.keys(op.responses)}): ${text}`);
  const content = doc.content ?? {};
  if (content['application/json']) {
    assert.notEqual(json, null, `${where} ${status}: the body is not JSON: ${text}`);
    assert.deepEqual(validate(content['application/json'].schema, json), [], `${where} ${status}: ${text}`);
  } else if (content['text/plain']) {
    assert.deepEqual(validate(content['text/plain'].schema, text), []);
  }
}

// ---- the description itself ----

test('the description is OpenAPI 3.1: unique operation ids, every $ref resolves, examples fit', () => {
  assert.match(spec.openapi, /^3\.1\.\d+$/);
  assert.ok(spec.info?.title && spec.info?.version);
  const ids = operations.map(({ op }) => op.operationId);
  assert.ok(ids.every(Boolean), 'every operation has an operationId');
  assert.equal(new Set(ids).size, ids.length, 'operationIds are unique');
  const refs = JSON.stringify(spec).match(/"\$ref":"[^"]+"/g) ?? [];
  for (const r of refs) resolveRef(JSON.parse(`{${r}}`).$ref);
  for (const { path, method, op } of operations) {
    assert.ok(op.summary, `${method} ${path} has a summary`);
    assert.ok(Object.keys(op.responses).length > 0, `${method} ${path} has responses`);
    const body = op.requestBody?.content?.['application/json'];
    if (body) {
      assert.ok('example' in body, `${method} ${path} has a request example`);
      assert.deepEqual(validate(body.schema, body.example), [], `${method} ${path}: its example fits its schema`);
    }
    const secured = (op.security ?? spec.security).length > 0;
    assert.equal(secured, path.startsWith('/api/'), `${method} ${path}: the admin API, and only it, asks for the token`);
  }
});

test('the /api/v1 paths and methods are those of the route table in src/node.c', () => {
  const source = readFileSync(join(REPO_ROOT, 'src/node.c'), 'utf8');
  const table = /rc_api_route_t api_routes\[\] = \{([\s\S]*?)\n\};/.exec(source);
  assert.ok(table, 'src/node.c has the route table api_routes[]');
  const routed = [];
  for (const m of table[1].matchAll(/\{"([^"]+)",\s*(\w+),\s*(\w+),\s*(\w+)\}/g)) {
    if (m[2] !== 'NULL') routed.push(`get ${m[1]}`);
    if (m[3] !== 'NULL' || m[4] !== 'NULL') routed.push(`post ${m[1]}`);
  }
  assert.ok(routed.length >= 7, `${routed.length} routes read from the table`);
  const described = operations.filter(({ path }) => path.startsWith('/api/')).map(({ path, method }) => `${method} ${path}`);
  assert.deepEqual(described.sort(), routed.sort());
});

// ---- against live servers ----

let server;
let serverOff;
before(async () => {
  server = await startServer({ extraArgs: ['--admin-token', TOKEN] });
  serverOff = await startServer();
});
after(async () => {
  await stopServerCleanly(server);
  await stopServerCleanly(serverOff);
});

test('every documented operation answers as documented, with its example', async () => {
  // Reads before writes, and the experiment stopped after it started: the examples build on
  // each other as a session with the API would.
  const order = (o) => (o.method === 'get' ? 0 : 1) + (o.path.endsWith('/stop') ? 1 : 0);
  for (const { path, method, op } of [...operations].sort((a, b) => order(a) - order(b))) {
    const where = `${method.toUpperCase()} ${path}`;
    const example = op.requestBody?.content?.['application/json']?.example;
    let answer;
    if (path.startsWith('/api/')) {
      answer = await adminRequest(server, method.toUpperCase(), path, example, TOKEN);
    } else {
      const res = await httpGet(server, path);
      let json = null;
      try {
        json = JSON.parse(res.body);
      } catch {
        // text
      }
      answer = { status: res.status, text: res.body, json };
    }
    assert.ok(answer.status >= 200 && answer.status < 300, `${where} with its example: ${answer.status} ${answer.text}`);
    assertAnswer(where, op, answer.status, answer);
  }
});

test('without the token every admin operation answers 401, and 403 with the API off', async () => {
  for (const { path, method, op } of operations.filter(({ path }) => path.startsWith('/api/'))) {
    const example = op.requestBody?.content?.['application/json']?.example;
    const where = `${method.toUpperCase()} ${path}`;
    const refused = await adminRequest(server, method.toUpperCase(), path, example, null);
    assert.equal(refused.status, 401, `${where} without a token`);
    assertAnswer(where, op, 401, refused);
    const off = await adminRequest(serverOff, method.toUpperCase(), path, example, TOKEN);
    assert.equal(off.status, 403, `${where} with the admin API off`);
    assertAnswer(where, op, 403, off);
  }
});

test('a body that does not match the route answers a documented 400', async () => {
  for (const { path, method, op } of operations.filter(({ path, method }) => path.startsWith('/api/') && method === 'post')) {
    const bad = await adminRequest(server, 'POST', path, { no_such_field: 1 }, TOKEN);
    assert.equal(bad.status, 400, `POST ${path} with an unknown field: ${bad.text}`);
    assertAnswer(`POST ${path}`, op, 400, bad);
  }
});
