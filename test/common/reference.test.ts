import assert from 'node:assert/strict';
import { test } from 'node:test';
import { familiarString, parseReference, refString, withDefaultTag } from '../../src/common/reference.js';

const D = 'sha256:' + 'a'.repeat(64);

test('references normalize like Docker', () => {
  const cases: [string, string, string][] = [
    ['redis', 'docker.io/library/redis:latest', 'redis:latest'],
    ['redis:7', 'docker.io/library/redis:7', 'redis:7'],
    ['user/app', 'docker.io/user/app:latest', 'user/app:latest'],
    ['docker.io/library/busybox:1', 'docker.io/library/busybox:1', 'busybox:1'],
    ['index.docker.io/library/busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['localhost/app', 'localhost/app:latest', 'localhost/app:latest'],
    ['localhost:5000/a/b/c:v1.2', 'localhost:5000/a/b/c:v1.2', 'localhost:5000/a/b/c:v1.2'],
    ['127.0.0.1:5000/x/y:t', '127.0.0.1:5000/x/y:t', '127.0.0.1:5000/x/y:t'],
    ['[::1]:5000/x:t', '[::1]:5000/x:t', '[::1]:5000/x:t'],
    [`busybox@${D}`, `docker.io/library/busybox@${D}`, `busybox@${D}`],
    [`busybox:1@${D}`, `docker.io/library/busybox:1@${D}`, `busybox:1@${D}`],
    ['ab-c__d/f---g.h_i', 'docker.io/ab-c__d/f---g.h_i:latest', 'ab-c__d/f---g.h_i:latest'],
  ];
  for (const [input, full, familiar] of cases) {
    const r = withDefaultTag(parseReference(input));
    assert.equal(refString(r), full, input);
    assert.equal(familiarString(r), familiar, input);
  }
});

test('invalid references are refused in Docker words', () => {
  for (const bad of [
    '',
    ':tag',
    'UPPER',
    'UPPER/Case',
    'a//b',
    'a/',
    '-a',
    'a-',
    'a:b:c',
    'a@sha256:short',
    'a:' + 'x'.repeat(129),
    'a b',
    `${'a'.repeat(64)}`,
  ])
    assert.throws(() => parseReference(bad), /invalid reference format/, JSON.stringify(bad));
  assert.throws(() => parseReference('UPPER/Case'), /must be lowercase/);
  assert.throws(() => parseReference('a'.repeat(256)), /not be more than 255 characters/);
});
