import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDockerfile, parseNameValues } from '../../src/engine/build/dockerfile.js';
import { envMap, ShellLex } from '../../src/engine/build/shell.js';

test('variable substitution follows Docker: defaults, alternatives, quotes, escapes', () => {
  const lex = new ShellLex();
  const env = envMap(['A=a', 'EMPTY=', 'SP=x y']);
  const cases: [string, string][] = [
    ['$A', 'a'],
    ['${A}b', 'ab'],
    ['${NOPE:-def}', 'def'],
    ['${EMPTY:-def}', 'def'],
    ['${EMPTY-def}', ''],
    ['${NOPE-def}', 'def'],
    ['${A:+alt}', 'alt'],
    ['${EMPTY:+alt}', ''],
    ['${EMPTY+alt}', 'alt'],
    ['${NOPE+alt}', ''],
    ['${NOPE:-${A}x}', 'ax'],
    ["'$A'", '$A'],
    ['"$A $SP"', 'a x y'],
    ['\\$A', '$A'],
    ['"\\$A"', '$A'],
    ['"a\\b"', 'a\\b'],
    ['$', '$'],
    ['$NOPE', ''],
    ['a\\ b', 'a b'],
  ];
  for (const [input, want] of cases) assert.equal(lex.processWord(input, env), want, input);
  assert.throws(() => lex.processWord('${NOPE:?must be set}', env), /NOPE: must be set/);
  assert.throws(() => lex.processWord('${A', env), /failed to process/);
  assert.throws(() => lex.processWord("'open", env), /single-quote/);
  assert.deepEqual(lex.processWords('80 "90/udp" $A', env), ['80', '90/udp', 'a']);
  const bt = new ShellLex('`');
  assert.equal(bt.processWord('C:`$A\\x', env), 'C:$A\\x');
});

test('continuations, comments inside them, directives and JSON forms parse like Docker', () => {
  const df = parseDockerfile(
    [
      '# syntax=docker/dockerfile:1',
      '# escape=`',
      '',
      '# a comment',
      'FROM busybox AS base',
      'RUN echo a `',
      '  # comment inside',
      '',
      '  && echo b',
      'CMD ["sh", "-c", "echo hi"]',
      'ENTRYPOINT [not json',
      'COPY --chown=1:2 --chmod=0644 a b /dst/',
    ].join('\n'),
  );
  assert.equal(df.escape, '`');
  const [from, run, cmd, ep, copy] = df.instructions;
  assert.equal(from.keyword, 'from');
  assert.equal(from.line, 5);
  assert.equal(run.original, 'RUN echo a   && echo b');
  assert.equal(run.line, 6);
  assert.deepEqual(cmd.json, ['sh', '-c', 'echo hi']);
  assert.equal(ep.json, undefined);
  assert.equal(ep.rest, '[not json');
  assert.deepEqual(copy.flags.get('chown'), ['1:2']);
  assert.deepEqual(copy.flags.get('chmod'), ['0644']);
  assert.equal(copy.rest, 'a b /dst/');
});

test('heredocs: bodies, <<- tab stripping, quoted delimiters', () => {
  const df = parseDockerfile(
    'FROM busybox\nRUN <<EOF\necho one\necho two\nEOF\nCOPY <<-"CFG" /etc/app.conf\n\tkey=$V\n\tCFG\nRUN echo after\n',
  );
  const [, run, copy, after] = df.instructions;
  assert.equal(run.heredocs[0].content, 'echo one\necho two\n');
  assert.equal(run.heredocs[0].expand, true);
  assert.equal(copy.heredocs[0].name, 'CFG');
  assert.equal(copy.heredocs[0].content, 'key=$V\n');
  assert.equal(copy.heredocs[0].expand, false);
  assert.equal(after.original, 'RUN echo after');
  assert.equal(after.line, 9);
  assert.throws(() => parseDockerfile('FROM x\nRUN <<EOF\necho\n'), /line 2: unterminated heredoc EOF/);
});

test('ENV/LABEL name=value pairs and the legacy form', () => {
  const df = parseDockerfile('FROM x\nENV A=1 B="two words" C=a\\ b\nENV LEGACY value with spaces\nLABEL k');
  assert.deepEqual(parseNameValues(df.instructions[1], '\\'), [
    ['A', '1'],
    ['B', '"two words"'],
    ['C', 'a\\ b'],
  ]);
  assert.deepEqual(parseNameValues(df.instructions[2], '\\'), [['LEGACY', 'value with spaces']]);
  assert.throws(() => parseNameValues(df.instructions[3], '\\'), /line 4: LABEL must have two arguments/);
});

test('parse errors name the line', () => {
  assert.throws(() => parseDockerfile('FROM busybox\nBOGUS foo\n'), {
    message: 'dockerfile parse error line 2: unknown instruction: BOGUS',
  });
  assert.throws(() => parseDockerfile('FROM a\nRUN a \\\n  b\n\nfrob x'), /line 5: unknown instruction: FROB/);
  assert.throws(() => parseDockerfile('# escape=x\nFROM a'), /line 1: invalid escape token/);
  assert.throws(() => parseDockerfile('\n# only a comment\n'), /cannot be empty/);
});
