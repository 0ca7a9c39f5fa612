import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as dgram from 'node:dgram';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import * as dnsPacket from 'dns-packet';
import { berth, docker, FIXTURES, request, startDaemon, type TestDaemon } from '../helpers/daemon.js';

const BB = 'busybox:1.38.0-musl';
let d: TestDaemon;
let a = 0;
let b = 0;
let SUBNET = '';
let net3 = '';

before(async () => {
  d = await startDaemon();
  // a /24 of this daemon's own pool, next to its default bridge
  const bip = (JSON.parse(readFileSync(path.join(d.dir, 'daemon.json'), 'utf8')) as { bip: string }).bip;
  [a, b] = bip.split('.').slice(1, 3).map(Number);
  b = (b + 128) % 256;
  SUBNET = `10.${a}.${b}.0/24`;
  net3 = `10.${a}.${b}`;
  const r = await berth(d, ['load', '-i', path.join(FIXTURES, 'busybox-1.38.0-musl-docker-archive.tar')]);
  assert.equal(r.code, 0, r.stderr);
});
after(async () => {
  await d.stop();
});

const json = (x: Buffer) => JSON.parse(x.toString()) as Record<string, unknown>;
const bridgeOf = (id: string) => `br-${id.slice(0, 12)}`;

test('user network: create, DNS by name, alias and id, --ip, inspect through the docker CLI', async () => {
  const c = await docker(d, [
    'network',
    'create',
    '--subnet',
    SUBNET,
    '--gateway',
    `${net3}.254`,
    '--label',
    'team=a',
    'appnet',
  ]);
  assert.equal(c.code, 0, c.stderr);
  const id = c.stdout.trim();
  assert.equal(existsSync(`/sys/class/net/${bridgeOf(id)}`), true);
  try {
    const s = await docker(d, [
      'run',
      '-d',
      '--name',
      'server',
      '--network',
      'appnet',
      '--network-alias',
      'db',
      '--ip',
      `${net3}.10`,
      BB,
      'sleep',
      '300',
    ]);
    assert.equal(s.code, 0, s.stderr);
    const sid = s.stdout.trim();
    const q = await berth(d, [
      'run',
      '--rm',
      '--network',
      'appnet',
      BB,
      'sh',
      '-c',
      `cat /etc/resolv.conf; nslookup server; nslookup db; nslookup ${sid.slice(0, 12)}; ping -c1 -W3 server`,
    ]);
    assert.equal(q.code, 0, q.stdout + q.stderr);
    assert.match(q.stdout, new RegExp(`nameserver ${net3}\\.254`));
    assert.equal(q.stdout.match(new RegExp(`Address: ${net3}\\.10`, 'g'))?.length, 3, q.stdout);
    assert.match(q.stdout, /1 packets received/);
    const ins = await docker(d, ['network', 'inspect', 'appnet']);
    assert.equal(ins.code, 0, ins.stderr);
    const n = (JSON.parse(ins.stdout) as Record<string, unknown>[])[0];
    assert.equal(n.Name, 'appnet');
    assert.equal(n.Driver, 'bridge');
    assert.deepEqual((n.IPAM as { Config: unknown[] }).Config, [{ Subnet: SUBNET, Gateway: `${net3}.254` }]);
    assert.deepEqual(n.Labels, { team: 'a' });
    const members = n.Containers as Record<string, { Name: string; IPv4Address: string }>;
    assert.deepEqual(
      Object.values(members).map((m) => [m.Name, m.IPv4Address]),
      [['server', `${net3}.10/24`]],
    );
    const fmt = await docker(d, [
      'inspect',
      '-f',
      '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}',
      'server',
    ]);
    assert.equal(fmt.stdout.trim(), `${net3}.10`);
    const ls = await docker(d, ['network', 'ls', '--filter', 'label=team=a', '--format', '{{.Name}}']);
    assert.equal(ls.stdout, 'appnet\n');
    // duplicate IP, removing a network in use, overlapping subnet
    const dup = await docker(d, ['run', '-d', '--network', 'appnet', '--ip', `${net3}.10`, BB, 'true']);
    assert.notEqual(dup.code, 0);
    assert.match(dup.stderr, /Address already in use/);
    const rm = await docker(d, ['network', 'rm', 'appnet']);
    assert.notEqual(rm.code, 0);
    assert.match(rm.stderr, /has active endpoints/);
    const ov = await request(
      d,
      'POST',
      '/networks/create',
      JSON.stringify({ Name: 'overlap', IPAM: { Config: [{ Subnet: `10.${a}.${b}.128/25` }] } }),
      { 'Content-Type': 'application/json' },
    );
    assert.equal(ov.status, 403);
    assert.match(String(json(ov.body).message), /Pool overlaps with other one on this address space/);
    const same = await docker(d, ['network', 'create', 'appnet']);
    assert.notEqual(same.code, 0);
    assert.match(same.stderr, /network with name appnet already exists/);
    const pre = await request(d, 'POST', '/networks/create', JSON.stringify({ Name: 'host' }), {
      'Content-Type': 'application/json',
    });
    assert.equal(pre.status, 403);
  } finally {
    await berth(d, ['rm', '-f', 'server']);
  }
  assert.equal((await docker(d, ['network', 'rm', 'appnet'])).code, 0);
  assert.equal(existsSync(`/sys/class/net/${bridgeOf(id)}`), false, 'bridge removed with the network');
  const gone = await request(d, 'GET', '/networks/appnet');
  assert.equal(gone.status, 404);
  assert.equal(json(gone.body).message, 'network appnet not found');
});

test('connect and disconnect a running container; isolation between networks; --internal', async () => {
  const n1 = (await berth(d, ['network', 'create', 'left'])).stdout.trim();
  const n2 = (await berth(d, ['network', 'create', '--internal', 'right'])).stdout.trim();
  assert.ok(n1 && n2);
  try {
    assert.equal(
      (await berth(d, ['run', '-d', '--name', 'l1', '--network', 'left', BB, 'sleep', '300'])).code,
      0,
    );
    assert.equal(
      (await berth(d, ['run', '-d', '--name', 'r1', '--network', 'right', BB, 'sleep', '300'])).code,
      0,
    );
    const rIp = (
      await berth(d, ['inspect', '-f', '{{.NetworkSettings.Networks.right.IPAddress}}', 'r1'])
    ).stdout.trim();
    assert.match(rIp, /^\d+\.\d+\.\d+\.\d+$/);
    const blocked = await berth(d, ['exec', 'l1', 'ping', '-c1', '-W1', rIp]);
    assert.notEqual(blocked.code, 0, 'networks are isolated from each other');
    const c = await berth(d, ['network', 'connect', '--alias', 'lefty', 'right', 'l1']);
    assert.equal(c.code, 0, c.stderr);
    const nets = (await berth(d, ['inspect', '-f', '{{json .NetworkSettings.Networks}}', 'l1'])).stdout;
    assert.match(nets, /"left"/);
    assert.match(nets, /"right"/);
    const ok = await berth(d, ['exec', 'l1', 'ping', '-c1', '-W3', rIp]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    const byAlias = await berth(d, ['exec', 'r1', 'nslookup', 'lefty']);
    assert.equal(byAlias.code, 0, byAlias.stdout + byAlias.stderr);
    const ifaces = await berth(d, ['exec', 'l1', 'ls', '/sys/class/net']);
    assert.deepEqual(ifaces.stdout.trim().split('\n').sort(), ['eth0', 'eth1', 'lo']);
    // an internal network has no way out
    const out = await berth(d, ['exec', 'r1', 'ip', 'route']);
    assert.doesNotMatch(out.stdout, /default/);
    const dis = await berth(d, ['network', 'disconnect', 'right', 'l1']);
    assert.equal(dis.code, 0, dis.stderr);
    const after1 = await berth(d, ['exec', 'l1', 'ls', '/sys/class/net']);
    assert.deepEqual(after1.stdout.trim().split('\n').sort(), ['eth0', 'lo']);
    const gone = await berth(d, ['exec', 'r1', 'nslookup', 'lefty']);
    assert.notEqual(gone.code, 0, 'the alias left with the endpoint');
  } finally {
    await berth(d, ['rm', '-f', 'l1', 'r1']);
  }
  const pr = await berth(d, ['network', 'prune', '-f']);
  assert.match(pr.stdout, /left/);
  assert.match(pr.stdout, /right/);
  const ls = await berth(d, ['network', 'ls', '--format', '{{.Name}}']);
  assert.equal(ls.stdout, 'bridge\nhost\nnone\n');
});

test('--network container:<id> shares the namespace; embedded DNS forwards to --dns', async () => {
  const r = await berth(d, ['run', '-d', '--name', 'owner', BB, 'sleep', '300']);
  assert.equal(r.code, 0, r.stderr);
  // a resolver of the test's own on loopback, standing in for the host's upstream resolvers
  const upstream = dgram.createSocket('udp4');
  upstream.on('message', (msg, rinfo) => {
    const q = dnsPacket.decode(msg);
    const reply = dnsPacket.encode({
      id: q.id,
      type: 'response',
      flags: dnsPacket.RECURSION_AVAILABLE,
      questions: q.questions,
      answers: q.questions!.map((x) => ({ type: 'A' as const, name: x.name, ttl: 5, data: '203.0.113.9' })),
    });
    upstream.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((res) => upstream.bind(53, '127.0.0.77', () => res()));
  const made = await berth(d, ['network', 'create', 'fwd']);
  assert.equal(made.code, 0, made.stderr);
  try {
    const ownerIp = (
      await berth(d, ['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'owner'])
    ).stdout.trim();
    const j = await berth(d, [
      'run',
      '--rm',
      '--network',
      'container:owner',
      BB,
      'ip',
      '-4',
      '-o',
      'addr',
      'show',
      'eth0',
    ]);
    assert.equal(j.code, 0, j.stderr);
    assert.match(j.stdout, new RegExp(`inet ${ownerIp.replace(/\./g, '\\.')}/`));
    const f = await berth(d, [
      'run',
      '--rm',
      '--network',
      'fwd',
      '--dns',
      '127.0.0.77',
      BB,
      'nslookup',
      'far.example',
    ]);
    assert.equal(f.code, 0, f.stdout + f.stderr);
    assert.match(f.stdout, /Address: 203\.0\.113\.9/);
    const p = await berth(d, ['run', '--rm', '-p', '80', '--network', 'host', BB, 'true']);
    assert.notEqual(p.code, 0);
    assert.match(p.stderr, /conflicting options: port publishing and the container type network mode/);
    const none = await berth(d, ['run', '--rm', '--network', 'nosuchnet', BB, 'true']);
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /network nosuchnet not found/);
  } finally {
    upstream.close();
    await berth(d, ['rm', '-f', 'owner']);
    await berth(d, ['network', 'rm', 'fwd']);
  }
  assert.equal(
    spawnSync('sh', ['-c', `ls ${d.execRoot}/netns`], { encoding: 'utf8' }).stdout,
    '',
    'no namespaces left',
  );
});
