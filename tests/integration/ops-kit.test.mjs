// SPDX-License-Identifier: Apache-2.0
// The ops kit (ops/) against a live server: every series the Grafana dashboard and the
// Prometheus alert rules name exists in /metrics (with the label values they match on), the
// rules pass `promtool check rules` and their unit tests `promtool test rules`, and the
// dashboard is well-formed Grafana JSON.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { parse as parseYaml } from 'yaml';

import { REPO_ROOT, httpGet, parsePrometheus, startServer, stopServerCleanly } from './harness.mjs';

const RULES = join(REPO_ROOT, 'ops/prometheus/alerts.yml');
const RULE_TESTS = join(REPO_ROOT, 'ops/prometheus/alerts.test.yml');
const DASHBOARD = join(REPO_ROOT, 'ops/grafana/rankcast.json');

/** Series Prometheus makes itself when it scrapes, and target labels it adds. */
const SCRAPE_SERIES = new Set(['up']);
const TARGET_LABELS = new Set(['job', 'instance']);
const KEYWORDS = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'inf', 'nan']);

/**
 * The series names and equality label matchers a PromQL expression uses:
 * {names: Set, matchers: [{name, label, value}]}. Function names (followed by `(`), keywords,
 * label lists of by/without/on/ignoring, ranges, strings and Grafana's `$variables` are not
 * series.
 */
export function promqlSeries(expr) {
  const matchers = [];
  for (const m of expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}/g)) {
    for (const lm of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"]*)"/g)) {
      if (!lm[2].includes('$')) matchers.push({ name: m[1], label: lm[1], value: lm[2] });
    }
  }
  let e = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\{?\w+\}?/g, ' ');
  const names = new Set();
  for (const m of e.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const before = e[m.index - 1];
    if (before !== undefined && /[0-9.]/.test(before)) continue; // 1e6, 2.5e-3
    if (e.slice(m.index + m[0].length).trimStart().startsWith('(')) continue; // a function
    if (KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return { names, matchers };
}

/** Every PromQL expression of the dashboard: panel targets and template variable queries. */
function dashboardExprs(dash) {
  const exprs = [];
  const walk = (panels) => {
    for (const p of panels ?? []) {
      for (const t of p.targets ?? []) exprs.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr });
      walk(p.panels);
    }
  };
  walk(dash.panels);
  for (const v of dash.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : v.query.query;
    // label_values(series, label): the series only.
    const lv = /^label_values\(\s*([^,]+?)\s*,\s*\w+\s*\)$/.exec(q);
    exprs.push({ where: `variable ${v.name}`, expr: lv ? lv[1] : q });
  }
  return exprs;
}

function ruleExprs(rules) {
  return rules.groups.flatMap((g) => g.rules.map((r) => ({ where: `rule ${r.alert ?? r.record}`, expr: r.expr })));
}

let server;
let exported; // {names: Set of sample names, labels: Map name -> [label strings]}
before(async () => {
  server = await startServer();
  const res = await httpGet(server, '/metrics');
  assert.equal(res.status, 200);
  const { samples } = parsePrometheus(res.body);
  exported = { names: new Set(samples.map((s) => s.name)), labels: new Map() };
  for (const s of samples) exported.labels.set(s.name, [...(exported.labels.get(s.name) ?? []), s.labels]);
});
after(async () => {
  await stopServerCleanly(server);
});

/** Fails, listing them, on series or matched label values the live server does not export. */
function assertExported(exprs) {
  const missing = [];
  let seen = 0;
  for (const { where, expr } of exprs) {
    assert.equal(typeof expr, 'string', `${where} has an expression`);
    const { names, matchers } = promqlSeries(expr);
    assert.ok(names.size > 0, `${where}: no series found in ${expr}`);
    for (const name of names) {
      seen++;
      if (!exported.names.has(name) && !SCRAPE_SERIES.has(name)) missing.push(`${where}: ${name}`);
    }
    for (const { name, label, value } of matchers) {
      if (TARGET_LABELS.has(label) || SCRAPE_SERIES.has(name)) continue;
      const labels = exported.labels.get(name) ?? [];
      if (!labels.some((l) => l.split(/,(?=[a-zA-Z_]+=")/).includes(`${label}="${value}"`))) {
        missing.push(`${where}: ${name}{${label}="${value}"}`);
      }
    }
  }
  assert.deepEqual(missing, [], 'series (or label values) the server does not export');
  return seen;
}

test('promqlSeries finds series, not functions, keywords, labels or variables', () => {
  const { names, matchers } = promqlSeries(
    'histogram_quantile(0.99, sum by (instance, le) (rate(a_seconds_bucket{job="x",name="y",instance=~"$instance"}[$__rate_interval]))) > 1e3 and on (instance) b / ignoring (code) c offset 5m',
  );
  assert.deepEqual([...names].sort(), ['a_seconds_bucket', 'b', 'c']);
  assert.deepEqual(matchers, [
    { name: 'a_seconds_bucket', label: 'job', value: 'x' },
    { name: 'a_seconds_bucket', label: 'name', value: 'y' },
  ]);
});

test('every series of the alert rules exists in a live /metrics', () => {
  const rules = parseYaml(readFileSync(RULES, 'utf8'));
  const exprs = ruleExprs(rules);
  assert.ok(exprs.length >= 10, `${exprs.length} rules`);
  for (const g of rules.groups) {
    for (const r of g.rules) {
      assert.ok(r.labels?.severity, `${r.alert} has a severity`);
      assert.ok(r.annotations?.summary && r.annotations?.description, `${r.alert} has a summary and a description`);
    }
  }
  assertExported(exprs);
});

test('every series of the Grafana dashboard exists in a live /metrics', () => {
  const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8'));
  const seen = assertExported(dashboardExprs(dash));
  assert.ok(seen >= 30, `${seen} series references`);
});

test('the dashboard is well-formed: unique ids, on the 24-column grid, one data source variable', () => {
  const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8'));
  assert.equal(dash.uid, 'rankcast');
  const ids = dash.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  for (const p of dash.panels) {
    assert.ok(p.gridPos.x >= 0 && p.gridPos.x + p.gridPos.w <= 24, `panel "${p.title}" fits the grid`);
    if (p.type === 'row') continue;
    assert.ok(p.targets?.length > 0, `panel "${p.title}" has queries`);
    assert.equal(p.datasource.uid, '${datasource}', `panel "${p.title}" uses the data source variable`);
  }
  const vars = dash.templating.list.map((v) => v.name);
  assert.deepEqual(vars, ['datasource', 'instance']);
  // The operator's questions the issue names have a panel: errors, refusals, slow consumers.
  const titles = dash.panels.map((p) => p.title.toLowerCase()).join('\n');
  for (const word of ['errors', 'refused', 'slow consumers', 'event to push', 'file descriptors']) {
    assert.ok(titles.includes(word), `a panel about ${word}`);
  }
});

const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
const noPromtool = promtool.error ? "promtool is not installed (Debian's prometheus package, scripts/setup)" : false;

test('promtool check rules accepts the alert rules', { skip: noPromtool }, () => {
  const r = spawnSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test("promtool test rules: the rules' unit tests pass", { skip: noPromtool }, () => {
  const r = spawnSync('promtool', ['test', 'rules', RULE_TESTS], { encoding: 'utf8', cwd: join(REPO_ROOT, 'ops/prometheus') });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});
