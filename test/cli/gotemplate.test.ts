import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileTemplate, renderTemplate } from '../../src/cli/gotemplate.js';
import { formatTable, humanDuration, humanSize } from '../../src/cli/table.js';

const data = {
  ID: 'abc',
  Name: 'web',
  State: 'running',
  Labels: { app: 'x', tier: 'front' },
  Ports: [80, 443],
  Config: { Cmd: ['sh', '-c', 'a<b'], Env: null },
};

test('fields, nested fields, index, json', () => {
  assert.equal(renderTemplate('{{.ID}} {{.Name}}', data), 'abc web');
  assert.equal(renderTemplate('{{index .Labels "tier"}}', data), 'front');
  assert.equal(renderTemplate('{{.Labels.app}}', data), 'x');
  assert.equal(renderTemplate('{{json .Config.Cmd}}', data), '["sh","-c","a\\u003cb"]');
  assert.equal(renderTemplate('{{.Config.Env}}', data), '<no value>');
});

test('functions, pipelines, if/else, range, with, trimming', () => {
  assert.equal(renderTemplate('{{join .Config.Cmd " "}}', data), 'sh -c a<b');
  assert.equal(renderTemplate('{{.Name | upper}}', data), 'WEB');
  assert.equal(renderTemplate('{{if eq .State "running"}}up{{else}}down{{end}}', data), 'up');
  assert.equal(
    renderTemplate('{{if eq .State "exited"}}a{{else if eq .State "running"}}b{{else}}c{{end}}', data),
    'b',
  );
  assert.equal(renderTemplate('{{range .Ports}}[{{.}}]{{end}}', data), '[80][443]');
  assert.equal(renderTemplate('{{with .Labels}}{{.app}}{{end}}', data), 'x');
  assert.equal(renderTemplate('a  {{- .ID -}}  b', data), 'aabcb');
  assert.equal(renderTemplate('{{printf "%s-%d" .Name 7}}', data), 'web-7');
  assert.equal(renderTemplate('{{len .Ports}} {{truncate .Name 2}}', data), '2 we');
});

test('unknown fields fail like Go; lenient mode prints <no value>', () => {
  assert.throws(() => renderTemplate('{{.Nope}}', data), /can't evaluate field Nope/);
  assert.equal(compileTemplate('{{.Nope}}', { lenient: true })(data), '<no value>');
  assert.throws(() => renderTemplate('{{if .ID}}', data), /unexpected EOF/);
  assert.throws(() => renderTemplate('{{nofunc .ID}}', data), /function "nofunc" not defined/);
});

test('tables and units', () => {
  assert.equal(
    formatTable([
      ['A', 'BB'],
      ['longer value', 'x'],
    ]),
    'A              BB\nlonger value   x\n',
  );
  assert.equal(
    formatTable([
      ['ID', 'NAME'],
      ['1', 'n'],
    ]),
    'ID        NAME\n1         n\n',
  );
  assert.equal(humanSize(0), '0B');
  assert.equal(humanSize(999), '999B');
  assert.equal(humanSize(1000), '1kB');
  assert.equal(humanSize(4261000), '4.261MB');
  assert.equal(humanSize(1532928), '1.533MB');
  assert.equal(humanDuration(500), 'Less than a second');
  assert.equal(humanDuration(90_000), 'About a minute');
  assert.equal(humanDuration(3 * 3600_000), '3 hours');
  assert.equal(humanDuration(3 * 86400_000), '3 days');
});
