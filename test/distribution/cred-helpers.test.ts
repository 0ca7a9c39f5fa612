/**
 * Credential helpers (`credsStore`, `credHelpers` in Docker's config.json): berth login stores the
 * secret through `docker-credential-<name>` and keeps only an empty `auths` entry in the file; pulls
 * and pushes read it back from the helper; logout erases it; the docker CLI and berth share the
 * helper's credentials both ways; a missing helper is a clear error.
 */
import assert from 'node:assert/strict';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import {
  BERTH,
  cleanupDir,
  DOCKER_CLI,
  run,
  type RunResult,
  startDaemon,
  type TestDaemon,
} from '../helpers/daemon.js';
import { freePort, seedAuthHub } from './registries.js';

let d: TestDaemon;
let hub: string;
let hubRoot: string;
let tmp: string;
let store: string;
let dockerConfig: string;

/** A helper speaking docker-credential-helpers' protocol, keeping one JSON file per server. */
const HELPER = `#!/bin/sh
set -e
key() { printf '%s' "$1" | tr '/:' '__'; }
case "$1" in
  store)
    body=$(cat)
    server=$(printf '%s' "$body" | sed -n 's/.*"ServerURL":"\\([^"]*\\)".*/\\1/p')
    printf '%s' "$body" > "$CRED_TEST_STORE/$(key "$server").json" ;;
  get|erase)
    server=$(cat)
    f="$CRED_TEST_STORE/$(key "$server").json"
    if [ ! -f "$f" ]; then echo "credentials not found in native keychain"; exit 1; fi
    if [ "$1" = get ]; then cat "$f"; else rm "$f"; fi ;;
  *) echo "unknown action $1"; exit 1 ;;
esac
`;

function env(): NodeJS.ProcessEnv {
  return {
    PATH: `${path.join(tmp, 'bin')}:${process.env.PATH ?? ''}`,
    CRED_TEST_STORE: store,
    DOCKER_CONFIG: dockerConfig,
    BERTH_HOST: '',
    DOCKER_HOST: '',
    DOCKER_CLI_HINTS: 'false',
  };
}
const berth = (args: string[], input?: string): Promise<RunResult> =>
  run(process.execPath, [BERTH, '-H', d.host, ...args], { env: env(), input });
const docker = (args: string[], input?: string): Promise<RunResult> =>
  run(DOCKER_CLI, ['-H', d.host, ...args], { env: env(), input });

function writeConfig(cfg: object): void {
  writeFileSync(path.join(dockerConfig, 'config.json'), JSON.stringify(cfg));
}
function readConfig(): { auths?: Record<string, Record<string, string>>; credsStore?: string } {
  return JSON.parse(readFileSync(path.join(dockerConfig, 'config.json'), 'utf8')) as {
    auths?: Record<string, Record<string, string>>;
  };
}

before(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'berth-credhelper-'));
  store = path.join(tmp, 'store');
  dockerConfig = path.join(tmp, 'docker-config');
  for (const dir of [store, dockerConfig, path.join(tmp, 'bin')]) mkdirSync(dir, { recursive: true });
  const helper = path.join(tmp, 'bin', 'docker-credential-berthtest');
  writeFileSync(helper, HELPER);
  chmodSync(helper, 0o755);
  hubRoot = path.join(tmp, 'hub');
  mkdirSync(hubRoot);
  await seedAuthHub(hubRoot, { carol: 'carol-pw-42' });
  hub = `127.0.0.1:${await freePort()}`;
  d = await startDaemon([], { 'hub-listen': hub, 'hub-root': hubRoot });
});
after(async () => {
  await d.stop();
  await cleanupDir(tmp);
});

test('berth login stores through credsStore; push and pull read the helper; logout erases', async () => {
  writeConfig({ credsStore: 'berthtest', detachKeys: 'ctrl-x,x' });
  const login = await berth(['login', '-u', 'carol', '--password-stdin', hub], 'carol-pw-42\n');
  assert.equal(login.code, 0, login.stderr);
  assert.match(login.stdout, /Login Succeeded/);
  assert.doesNotMatch(login.stderr, /unencrypted/);
  const cfg = readConfig();
  assert.deepEqual(cfg.auths?.[hub], {}, 'the file keeps an empty entry, no secret');
  assert.equal(cfg.credsStore, 'berthtest');
  assert.equal((cfg as Record<string, unknown>).detachKeys, 'ctrl-x,x', 'other keys are kept');
  const kept = JSON.parse(readFileSync(path.join(store, `${hub.replace(':', '_')}.json`), 'utf8')) as {
    ServerURL: string;
    Username: string;
    Secret: string;
  };
  assert.deepEqual(kept, { ServerURL: hub, Username: 'carol', Secret: 'carol-pw-42' });

  const mine = `${hub}/carol/ch:1`;
  assert.equal((await berth(['pull', `${hub}/library/busybox`])).code, 0);
  assert.equal((await berth(['tag', `${hub}/library/busybox`, mine])).code, 0);
  const push = await berth(['push', mine]);
  assert.equal(push.code, 0, push.stderr);
  const priv = await run(process.execPath, [
    BERTH,
    'hub',
    'repo',
    'carol/ch',
    '--private',
    '--root',
    hubRoot,
  ]);
  assert.equal(priv.code, 0, priv.stderr);
  await berth(['rmi', mine]);
  const pull = await berth(['pull', mine]);
  assert.equal(pull.code, 0, pull.stderr);
  await berth(['rmi', mine]);

  const logout = await berth(['logout', hub]);
  assert.equal(logout.code, 0, logout.stderr);
  assert.match(logout.stdout, /Removing login credentials/);
  assert.deepEqual(readdirSync(store), [], 'the helper no longer holds the secret');
  assert.equal(readConfig().auths?.[hub], undefined);
  const denied = await berth(['pull', mine]);
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /denied|unauthorized/);
});

test(
  'the docker CLI and berth share a helper both ways; credHelpers wins over credsStore',
  { skip: !existsSync(DOCKER_CLI) && 'no docker CLI' },
  async () => {
    // credsStore names a helper that does not exist: only the per-registry entry can make this work.
    writeConfig({ credsStore: 'nosuch', credHelpers: { [hub]: 'berthtest' } });
    const login = await docker(['login', '-u', 'carol', '--password-stdin', hub], 'carol-pw-42\n');
    assert.equal(login.code, 0, login.stderr);
    assert.ok(existsSync(path.join(store, `${hub.replace(':', '_')}.json`)), 'docker stored via the helper');
    const mine = `${hub}/carol/ch:1`;
    const pull = await berth(['pull', mine]);
    assert.equal(pull.code, 0, pull.stderr);
    await berth(['rmi', mine]);
    const out = await berth(['logout', hub]);
    assert.equal(out.code, 0, out.stderr);
    assert.equal((await docker(['pull', mine])).code, 1, 'berth logout erased what docker stored');

    const again = await berth(['login', '-u', 'carol', '--password-stdin', hub], 'carol-pw-42\n');
    assert.equal(again.code, 0, again.stderr);
    const dpull = await docker(['pull', mine]);
    assert.equal(dpull.code, 0, dpull.stderr);
    await docker(['rmi', mine]);
    await berth(['logout', hub]);
  },
);

test('a credential helper that is not installed is a clear error, and the file is untouched', async () => {
  writeConfig({ credsStore: 'nosuch' });
  const before = readFileSync(path.join(dockerConfig, 'config.json'), 'utf8');
  const login = await berth(['login', '-u', 'carol', '--password-stdin', hub], 'carol-pw-42\n');
  assert.equal(login.code, 1);
  assert.match(login.stderr, /docker-credential-nosuch.*not found/);
  const pull = await berth(['pull', `${hub}/library/busybox`]);
  assert.equal(pull.code, 1);
  assert.match(pull.stderr, /docker-credential-nosuch/);
  assert.equal(readFileSync(path.join(dockerConfig, 'config.json'), 'utf8'), before);
});
