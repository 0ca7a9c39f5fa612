import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { BERTH, run } from '../helpers/daemon.js';
import { errorCode, pushImage, startTestHub, type TestHub } from './hubtest.js';

let hub: TestHub;

async function addUser(root: string, name: string, password: string, admin = false): Promise<void> {
  const r = await run(
    process.execPath,
    [BERTH, 'hub', 'user', 'add', name, '--root', root, ...(admin ? ['--admin'] : [])],
    { input: `${password}\n` },
  );
  assert.equal(r.code, 0, r.stderr);
}

before(async () => {
  hub = await startTestHub({ fileConfig: { auth: true } });
  await addUser(hub.root, 'alice', 'alice-pw-1');
  await addUser(hub.root, 'bob', 'bob-pw-12');
  await addUser(hub.root, 'root', 'root-pw-12', true);
});
after(async () => {
  await hub.stop();
});

const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

async function token(user: string | undefined, password: string, ...scopes: string[]): Promise<string> {
  const q = new URLSearchParams({ service: 'berth-hub' });
  for (const s of scopes) q.append('scope', s);
  const r = await hub.req(
    'GET',
    `/token?${q}`,
    undefined,
    user ? { Authorization: basic(user, password) } : {},
  );
  assert.equal(r.status, 200, r.text);
  const j = JSON.parse(r.text) as { token: string; access_token: string; expires_in: number };
  assert.equal(j.token, j.access_token);
  assert.ok(j.expires_in > 0);
  return j.token;
}

const claims = (t: string) =>
  JSON.parse(Buffer.from(t.split('.')[1], 'base64url').toString()) as {
    sub: string;
    exp: number;
    access: { name: string; actions: string[] }[];
  };
const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });

test('hub user add/ls/rm: scrypt hashes in a 0600 file, never the password', async () => {
  const file = path.join(hub.root, 'auth', 'users.json');
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const text = readFileSync(file, 'utf8');
  assert.ok(!text.includes('alice-pw-1'));
  assert.match(text, /"\$scrypt\$N=65536,r=8,p=1\$/);
  const ls = await run(process.execPath, [BERTH, 'hub', 'user', 'ls', '--root', hub.root]);
  assert.match(ls.stdout, /^alice\s+false/m);
  assert.match(ls.stdout, /^root\s+true/m);
  const dup = await run(process.execPath, [BERTH, 'hub', 'user', 'add', 'alice', '--root', hub.root], {
    input: 'whatever-1\n',
  });
  assert.notEqual(dup.code, 0);
  assert.match(dup.stderr, /already exists/);
  const bad = await run(process.execPath, [BERTH, 'hub', 'user', 'add', 'Bad/Name', '--root', hub.root], {
    input: 'whatever-1\n',
  });
  assert.notEqual(bad.code, 0);
  await addUser(hub.root, 'carol', 'carol-pw-1');
  const t = await token('carol', 'carol-pw-1', 'repository:carol/x:pull,push');
  const rm = await run(process.execPath, [BERTH, 'hub', 'user', 'rm', 'carol', '--root', hub.root]);
  assert.equal(rm.code, 0, rm.stderr);
  // A removed account's tokens stop working at once.
  const r = await hub.req('GET', '/v2/', undefined, bearer(t));
  assert.equal(r.status, 401);
  assert.ok(existsSync(path.join(hub.root, 'auth', 'token-key.pem')));
  assert.equal(statSync(path.join(hub.root, 'auth', 'token-key.pem')).mode & 0o777, 0o600);
});

test('token flow: challenge, basic auth at /token, scoped JWT, push and anonymous pull', async () => {
  const base = await hub.req('GET', '/v2/');
  assert.equal(base.status, 401);
  assert.equal(errorCode(base), 'UNAUTHORIZED');
  assert.equal(base.headers['www-authenticate'], `Bearer realm="${hub.url}/token",service="berth-hub"`);

  const wrong = await hub.req('GET', '/token?service=berth-hub&scope=repository:alice/app:pull', undefined, {
    Authorization: basic('alice', 'nope-nope'),
  });
  assert.equal(wrong.status, 401);
  assert.match(wrong.text, /incorrect username or password/);

  const noToken = await hub.req('POST', '/v2/alice/app/blobs/uploads/');
  assert.equal(noToken.status, 401);
  assert.equal(
    noToken.headers['www-authenticate'],
    `Bearer realm="${hub.url}/token",service="berth-hub",scope="repository:alice/app:pull,push"`,
  );

  const t = await token('alice', 'alice-pw-1', 'repository:alice/app:pull,push');
  const c = claims(t);
  assert.equal(c.sub, 'alice');
  assert.deepEqual(c.access, [{ type: 'repository', name: 'alice/app', actions: ['pull', 'push'] }]);
  assert.equal((await hub.req('GET', '/v2/', undefined, bearer(t))).status, 200);
  const img = await pushImage(hub, 'alice/app', 'v1', {}, bearer(t));

  // Public by default: anyone pulls, with no token at all or with an anonymous one.
  const anon = await hub.req('GET', '/v2/alice/app/manifests/v1', undefined, {
    Accept: 'application/vnd.oci.image.manifest.v1+json',
  });
  assert.equal(anon.status, 200);
  assert.equal(anon.headers['docker-content-digest'], img.digest);
  const at = await token(undefined, '', 'repository:alice/app:pull,push');
  assert.deepEqual(claims(at).access, [{ type: 'repository', name: 'alice/app', actions: ['pull'] }]);
  assert.equal((await hub.req('GET', `/v2/alice/app/blobs/${img.layer}`, undefined, bearer(at))).status, 200);

  // An anonymous token cannot push: 401 asking for a better token.
  const anonPush = await hub.req('POST', '/v2/alice/app/blobs/uploads/', undefined, bearer(at));
  assert.equal(anonPush.status, 401);
  assert.match(String(anonPush.headers['www-authenticate']), /error="insufficient_scope"/);

  // Bob asks for push on alice's repository and gets pull only; pushing with it is DENIED.
  const bt = await token('bob', 'bob-pw-12', 'repository:alice/app:pull,push');
  assert.deepEqual(claims(bt).access[0].actions, ['pull']);
  const denied = await hub.req('POST', '/v2/alice/app/blobs/uploads/', undefined, bearer(bt));
  assert.equal(denied.status, 403);
  assert.equal(errorCode(denied), 'DENIED');
  const delDenied = await hub.req('DELETE', `/v2/alice/app/manifests/${img.digest}`, undefined, bearer(bt));
  assert.equal(delDenied.status, 403);

  // library/* is for admins.
  const lt = await token('alice', 'alice-pw-1', 'repository:library/thing:pull,push');
  assert.deepEqual(claims(lt).access, [{ type: 'repository', name: 'library/thing', actions: ['pull'] }]);
  assert.equal(
    (await hub.req('POST', '/v2/library/thing/blobs/uploads/', undefined, bearer(lt))).status,
    403,
  );
  const rt = await token('root', 'root-pw-12', 'repository:library/thing:pull,push');
  await pushImage(hub, 'library/thing', 'latest', {}, bearer(rt));

  // The OAuth2 password grant (POST /token) works too.
  const post = await hub.req(
    'POST',
    '/token',
    new URLSearchParams({
      grant_type: 'password',
      username: 'alice',
      password: 'alice-pw-1',
      service: 'berth-hub',
      scope: 'repository:alice/app:pull',
    }).toString(),
    { 'Content-Type': 'application/x-www-form-urlencoded' },
  );
  assert.equal(post.status, 200);
  assert.equal(JSON.parse(post.text).token_type, 'Bearer');
});

test('bad and expired tokens get 401 invalid_token with a proper challenge', async () => {
  const garbage = await hub.req('GET', '/v2/alice/app/tags/list', undefined, bearer('not.a.token'));
  assert.equal(garbage.status, 401);
  assert.equal(errorCode(garbage), 'UNAUTHORIZED');
  assert.equal(
    garbage.headers['www-authenticate'],
    `Bearer realm="${hub.url}/token",service="berth-hub",scope="repository:alice/app:pull",error="invalid_token"`,
  );
  // A token whose payload was edited (push added) fails the signature check.
  const t = await token('bob', 'bob-pw-12', 'repository:alice/app:pull');
  const [h, , s] = t.split('.');
  const forged = Buffer.from(
    JSON.stringify({
      ...claims(t),
      access: [{ type: 'repository', name: 'alice/app', actions: ['pull', 'push'] }],
    }),
  ).toString('base64url');
  const f = await hub.req('POST', '/v2/alice/app/blobs/uploads/', undefined, bearer(`${h}.${forged}.${s}`));
  assert.equal(f.status, 401);
  assert.match(String(f.headers['www-authenticate']), /error="invalid_token"/);

  const short = await startTestHub({ fileConfig: { auth: true, 'token-ttl': 1 } });
  try {
    await addUser(short.root, 'dave', 'dave-pw-12');
    const r = await short.req(
      'GET',
      '/token?service=berth-hub&scope=repository:dave/x:pull,push',
      undefined,
      {
        Authorization: basic('dave', 'dave-pw-12'),
      },
    );
    const tok = JSON.parse(r.text).token as string;
    assert.equal((await short.req('POST', '/v2/dave/x/blobs/uploads/', undefined, bearer(tok))).status, 202);
    await new Promise((res) => setTimeout(res, 2100));
    const expired = await short.req('POST', '/v2/dave/x/blobs/uploads/', undefined, bearer(tok));
    assert.equal(expired.status, 401);
    assert.match(expired.text, /token expired/);
    assert.match(String(expired.headers['www-authenticate']), /error="invalid_token"/);
  } finally {
    await short.stop();
  }
});

test('private repositories: only the owner and admins pull, listings hide them, mounts cannot read them', async () => {
  const at = await token('alice', 'alice-pw-1', 'repository:alice/secret:pull,push');
  const img = await pushImage(hub, 'alice/secret', 'v1', {}, bearer(at));
  const set = await run(process.execPath, [
    BERTH,
    'hub',
    'repo',
    'alice/secret',
    '--private',
    '--root',
    hub.root,
  ]);
  assert.equal(set.code, 0, set.stderr);
  const anon = await hub.req('GET', '/v2/alice/secret/manifests/v1');
  assert.equal(anon.status, 401);
  const bt = await token('bob', 'bob-pw-12', 'repository:alice/secret:pull');
  assert.deepEqual(claims(bt).access, []);
  assert.equal((await hub.req('GET', '/v2/alice/secret/manifests/v1', undefined, bearer(bt))).status, 403);
  assert.equal(
    (await hub.req('GET', `/v2/alice/secret/blobs/${img.layer}`, undefined, bearer(bt))).status,
    403,
  );
  const own = await token('alice', 'alice-pw-1', 'repository:alice/secret:pull');
  assert.equal((await hub.req('GET', '/v2/alice/secret/manifests/v1', undefined, bearer(own))).status, 200);
  const rt = await token('root', 'root-pw-12', 'repository:alice/secret:pull');
  assert.equal((await hub.req('GET', '/v2/alice/secret/manifests/v1', undefined, bearer(rt))).status, 200);

  const cat = JSON.parse((await hub.req('GET', '/v2/_catalog')).text).repositories as string[];
  assert.ok(cat.includes('alice/app') && !cat.includes('alice/secret'));
  const ct = await token('alice', 'alice-pw-1', 'registry:catalog:*');
  const mine = JSON.parse((await hub.req('GET', '/v2/_catalog', undefined, bearer(ct))).text).repositories;
  assert.ok(mine.includes('alice/secret'));

  // Bob cannot mount alice's private layer into his repository: he gets an upload session instead.
  const bp = await token(
    'bob',
    'bob-pw-12',
    'repository:bob/steal:pull,push',
    'repository:alice/secret:pull',
  );
  const mount = await hub.req(
    'POST',
    `/v2/bob/steal/blobs/uploads/?mount=${img.layer}&from=alice/secret`,
    undefined,
    bearer(bp),
  );
  assert.equal(mount.status, 202);
  const steal = await hub.req('GET', `/v2/bob/steal/blobs/${img.layer}`, undefined, bearer(bp));
  assert.equal(steal.status, 404);
  // The web pages and search hide it from others too.
  assert.ok(!(await hub.req('GET', '/')).text.includes('alice/secret'));
  assert.ok((await hub.req('GET', '/')).text.includes('alice/app'));
  assert.equal((await hub.req('GET', '/r/alice/secret')).status, 404);
  const search = JSON.parse((await hub.req('GET', '/v1/search?q=secret')).text);
  assert.equal(search.num_results, 0);
});

test(
  'skopeo with and without credentials against an auth hub',
  { skip: !existsSync('/usr/bin/skopeo') && 'no skopeo' },
  async () => {
    const t = await token('alice', 'alice-pw-1', 'repository:alice/app:pull');
    assert.ok(t);
    const src = `docker://${hub.addr}/alice/app:v1`;
    const anonInspect = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', src]);
    assert.equal(anonInspect.code, 0, anonInspect.stderr);
    const copy = await run('skopeo', [
      'copy',
      '--src-tls-verify=false',
      '--dest-tls-verify=false',
      '--dest-creds',
      'alice:alice-pw-1',
      src,
      `docker://${hub.addr}/alice/copied:v1`,
    ]);
    assert.equal(copy.code, 0, copy.stderr);
    const tags = await run('skopeo', [
      'list-tags',
      '--tls-verify=false',
      '--creds',
      'alice:alice-pw-1',
      `docker://${hub.addr}/alice/copied`,
    ]);
    assert.deepEqual(JSON.parse(tags.stdout).Tags, ['v1']);
    const noCreds = await run('skopeo', [
      'copy',
      '--src-tls-verify=false',
      '--dest-tls-verify=false',
      src,
      `docker://${hub.addr}/alice/anon-copy:v1`,
    ]);
    assert.notEqual(noCreds.code, 0);
    const wrongUser = await run('skopeo', [
      'copy',
      '--src-tls-verify=false',
      '--dest-tls-verify=false',
      '--dest-creds',
      'bob:bob-pw-12',
      src,
      `docker://${hub.addr}/alice/bob-copy:v1`,
    ]);
    assert.notEqual(wrongUser.code, 0);
    assert.match(wrongUser.stderr, /denied/i);
    const badPw = await run('skopeo', [
      'list-tags',
      '--tls-verify=false',
      '--creds',
      'alice:wrong-pw',
      `docker://${hub.addr}/alice/copied`,
    ]);
    assert.notEqual(badPw.code, 0);
  },
);
