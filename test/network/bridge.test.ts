import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { berth, docker, FIXTURES, request, startDaemon, type TestDaemon } from '../helpers/daemon.js';

const BB = 'busybox:1.38.0-musl';
let d: TestDaemon;
let cfg: { bridge: string; bip: string; 'iptables-chain-prefix': string };

before(async () => {
  d = await startDaemon();
  cfg = JSON.parse(readFileSync(path.join(d.dir, 'daemon.json'), 'utf8')) as typeof cfg;
  const r = await berth(d, ['load', '-i', path.join(FIXTURES, 'busybox-1.38.0-musl-docker-archive.tar')]);
  assert.equal(r.code, 0, r.stderr);
});
after(async () => {
  await d.stop();
  assert.equal(existsSync(`/sys/class/net/${cfg.bridge}`), false, 'the test bridge is gone');
  assert.doesNotMatch(iptablesSave(), new RegExp(cfg['iptables-chain-prefix']), 'no chains left');
});

const json = (b: Buffer) => JSON.parse(b.toString()) as Record<string, unknown>;
const gateway = () => cfg.bip.split('/')[0];
const prefix = () => cfg.bip.split('/')[1];
function iptablesSave(): string {
  return execFileSync('iptables-save', { encoding: 'utf8' });
}
function vethsOnBridge(): string[] {
  const r = spawnSync('ip', ['-o', 'link', 'show', 'master', cfg.bridge], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean);
}

/** A free TCP port on 127.0.0.1 (bound, then released). */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

function httpGet(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    let data = '';
    sock.setTimeout(5000, () => sock.destroy(new Error('timeout')));
    sock.on('connect', () => sock.write(`GET /i.html HTTP/1.0\r\nHost: x\r\n\r\n`));
    sock.on('data', (c: Buffer) => (data += c.toString()));
    sock.on('end', () => resolve(data));
    sock.on('error', reject);
  });
}

async function waitHttp(host: string, port: number): Promise<string> {
  let last: unknown;
  for (let i = 0; i < 50; i++) {
    try {
      const r = await httpGet(host, port);
      if (r.includes('200')) return r;
      last = r;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no answer from ${host}:${port}: ${String(last)}`);
}

const HTTPD = ['sh', '-c', 'echo hello-$HOSTNAME > /i.html; exec httpd -f -p 80 -h /'];

test('default bridge: address, route, lo, resolv.conf, hosts, MAC, ip_forward', async () => {
  const r = await berth(d, [
    'run',
    '--rm',
    '--hostname',
    'boxy',
    '--add-host',
    'db.example:10.9.8.7',
    '--add-host',
    'gw:host-gateway',
    '--dns',
    '192.0.2.53',
    '--dns-search',
    'corp.example',
    '--dns-option',
    'ndots:2',
    BB,
    'sh',
    '-c',
    'ip -4 -o addr show eth0; ip route; ip -o link show lo; cat /etc/resolv.conf; cat /etc/hosts; cat /sys/class/net/eth0/address',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const g = gateway();
  const base = g.split('.').slice(0, 3).join('.');
  assert.match(r.stdout, new RegExp(`inet ${base.replace(/\./g, '\\.')}\\.2/${prefix()}`));
  assert.match(r.stdout, new RegExp(`default via ${g.replace(/\./g, '\\.')} dev eth0`));
  assert.match(r.stdout, /lo: <LOOPBACK,UP/);
  assert.match(r.stdout, /search corp\.example\nnameserver 192\.0\.2\.53\noptions ndots:2\n/);
  assert.match(r.stdout, /10\.9\.8\.7\tdb\.example/);
  assert.match(r.stdout, new RegExp(`${g.replace(/\./g, '\\.')}\\tgw`));
  assert.match(r.stdout, new RegExp(`${base.replace(/\./g, '\\.')}\\.2\\tboxy`));
  const octets = g.split('.').map(Number);
  const mac = `02:42:${[octets[0], octets[1], octets[2], 2].map((x) => x.toString(16).padStart(2, '0')).join(':')}`;
  assert.match(r.stdout, new RegExp(mac));
  assert.equal(readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim(), '1');
  assert.deepEqual(vethsOnBridge(), [], 'the veth left with the container');
});

test('--mac-address, --network none and host', async () => {
  const mac = await berth(d, [
    'run',
    '--rm',
    '--mac-address',
    '92:d0:c6:0a:29:33',
    BB,
    'cat',
    '/sys/class/net/eth0/address',
  ]);
  assert.equal(mac.stdout.trim(), '92:d0:c6:0a:29:33', mac.stderr);
  const none = await berth(d, [
    'run',
    '--rm',
    '--network',
    'none',
    BB,
    'sh',
    '-c',
    'ls /sys/class/net; ip -o link show lo',
  ]);
  assert.equal(none.code, 0, none.stderr);
  assert.equal(none.stdout.split('\n')[0], 'lo');
  assert.match(none.stdout, /LOOPBACK,UP/);
  const host = await berth(d, ['run', '--rm', '--network', 'host', BB, 'ls', '/sys/class/net']);
  assert.match(host.stdout, new RegExp(cfg.bridge), 'the host namespace sees the test bridge');
  const bad = await berth(d, ['run', '--rm', '--mac-address', 'zz', BB, 'true']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /zz is not a valid mac address/);
});

test('published ports: 127.0.0.1, all addresses, random, hairpin, port command, inspect', async () => {
  const p1 = await freePort();
  const p2 = await freePort();
  const r = await berth(d, [
    'run',
    '-d',
    '--name',
    'web',
    '-p',
    `127.0.0.1:${p1}:80`,
    '-p',
    `${p2}:80`,
    '-p',
    '80',
    '--expose',
    '9000',
    BB,
    ...HTTPD,
  ]);
  assert.equal(r.code, 0, r.stderr);
  try {
    assert.match(await waitHttp('127.0.0.1', p1), /hello-/);
    assert.match(await waitHttp('127.0.0.1', p2), /hello-/);
    assert.match(await waitHttp(gateway(), p2), /hello-/, 'through a host address');
    const ins = json((await request(d, 'GET', '/containers/web/json')).body);
    const ns = ins.NetworkSettings as Record<string, unknown>;
    const ports = ns.Ports as Record<string, { HostIp: string; HostPort: string }[] | null>;
    assert.equal(ports['9000/tcp'], null);
    const b80 = ports['80/tcp']!;
    assert.equal(b80.length, 3);
    assert.ok(b80.some((b) => b.HostIp === '127.0.0.1' && b.HostPort === String(p1)));
    assert.ok(b80.some((b) => b.HostIp === '0.0.0.0' && b.HostPort === String(p2)));
    const random = b80.find((b) => b.HostPort !== String(p1) && b.HostPort !== String(p2))!;
    assert.match(await waitHttp('127.0.0.1', Number(random.HostPort)), /hello-/);
    const hc = ins.HostConfig as Record<string, unknown>;
    assert.deepEqual((hc.PortBindings as Record<string, unknown>)['80/tcp'], [
      { HostIp: '127.0.0.1', HostPort: String(p1) },
      { HostIp: '', HostPort: String(p2) },
      { HostIp: '', HostPort: '' },
    ]);
    assert.match(String(ns.IPAddress), /^10\./);
    assert.equal(ns.Gateway, gateway());
    assert.ok((ns.Networks as Record<string, unknown>).bridge);
    // hairpin: the container reaches its own published port through the host's address
    const hp = await berth(d, [
      'exec',
      'web',
      'wget',
      '-q',
      '-O',
      '-',
      '-T',
      '5',
      `http://${gateway()}:${p2}/i.html`,
    ]);
    assert.equal(hp.code, 0, hp.stderr);
    assert.match(hp.stdout, /hello-/);
    // another container on the bridge, through the host's address
    const other = await berth(d, [
      'run',
      '--rm',
      BB,
      'wget',
      '-q',
      '-O',
      '-',
      '-T',
      '5',
      `http://${gateway()}:${p2}/i.html`,
    ]);
    assert.match(other.stdout, /hello-/, other.stderr);
    const port = await berth(d, ['port', 'web', '80']);
    assert.match(port.stdout, new RegExp(`127\\.0\\.0\\.1:${p1}\\n`));
    const dport = await docker(d, ['port', 'web']);
    assert.equal(dport.code, 0, dport.stderr);
    assert.match(dport.stdout, new RegExp(`80/tcp -> 0\\.0\\.0\\.0:${p2}`));
    const ps = await docker(d, ['ps', '--format', '{{.Ports}}']);
    assert.match(ps.stdout, new RegExp(`127\\.0\\.0\\.1:${p1}->80/tcp`));
    assert.match(iptablesSave(), new RegExp(`--dport ${p1} -j DNAT`));
    // the same host port again: a clear error, nothing half-made
    const again = await berth(d, ['run', '-d', '--name', 'web2', '-p', `${p2}:80`, BB, ...HTTPD]);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, new RegExp(`Bind for 0\\.0\\.0\\.0:${p2} failed: port is already allocated`));
    const w2 = json((await request(d, 'GET', '/containers/web2/json')).body);
    assert.equal((w2.State as { Status: string }).Status, 'created');
    assert.equal((w2.NetworkSettings as { IPAddress: string }).IPAddress, '');
    assert.equal(vethsOnBridge().length, 1, 'only web has a veth');
    await berth(d, ['rm', 'web2']);
  } finally {
    await berth(d, ['rm', '-f', 'web']);
  }
  assert.doesNotMatch(
    iptablesSave(),
    new RegExp(`--dport ${p1} -j DNAT`),
    'DNAT rules removed with the container',
  );
  assert.deepEqual(vethsOnBridge(), []);
});

test('a port held by another process of the host: clear error', async () => {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const p = (srv.address() as net.AddressInfo).port;
  try {
    const r = await docker(d, ['run', '-d', '-p', `127.0.0.1:${p}:80`, BB, ...HTTPD]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`127\\.0\\.0\\.1:${p}: bind: address already in use`));
  } finally {
    srv.close();
  }
  await berth(d, ['container', 'prune', '-f']);
  assert.deepEqual(vethsOnBridge(), []);
});

test('-P publishes exposed ports; invalid port specs are refused', async () => {
  const r = await berth(d, ['run', '-d', '--name', 'pall', '-P', '--expose', '80', BB, ...HTTPD]);
  assert.equal(r.code, 0, r.stderr);
  try {
    const port = await berth(d, ['port', 'pall', '80/tcp']);
    const hp = Number(port.stdout.trim().split(':').pop());
    assert.ok(hp > 0, port.stdout);
    assert.match(await waitHttp('127.0.0.1', hp), /hello-/);
  } finally {
    await berth(d, ['rm', '-f', 'pall']);
  }
  const bad = await berth(d, ['run', '--rm', '-p', '70000:80', BB, 'true']);
  assert.equal(bad.code, 125);
  assert.match(bad.stderr, /Invalid hostPort: 70000/);
  const api = await request(
    d,
    'POST',
    '/containers/create',
    JSON.stringify({ Image: BB, HostConfig: { PortBindings: { 'abc/tcp': [{ HostPort: '1' }] } } }),
    { 'Content-Type': 'application/json' },
  );
  assert.equal(api.status, 400);
  assert.match(String(json(api.body).message), /invalid port specification/);
});

test('restart gets networking back; a restarted daemon keeps a running container reachable', async () => {
  const p = await freePort();
  const r = await berth(d, ['run', '-d', '--name', 'keep', '-p', `127.0.0.1:${p}:80`, BB, ...HTTPD]);
  assert.equal(r.code, 0, r.stderr);
  try {
    await waitHttp('127.0.0.1', p);
    assert.equal((await berth(d, ['restart', '-t', '1', 'keep'])).code, 0);
    assert.match(await waitHttp('127.0.0.1', p), /hello-/);
    assert.equal(vethsOnBridge().length, 1);
    // kill the daemon hard: chains stay, the container keeps running
    d.proc.kill('SIGKILL');
    await new Promise((res) => d.proc.once('exit', res));
    const d2 = await startDaemon([], {}, { dir: d.dir });
    d = d2;
    assert.match(await waitHttp('127.0.0.1', p), /hello-/);
    const rules = iptablesSave()
      .split('\n')
      .filter((l) => l.includes(`--dport ${p} -j DNAT`));
    assert.equal(rules.length, 1, 'reconciled, not duplicated');
  } finally {
    await berth(d, ['rm', '-f', 'keep']);
  }
  assert.deepEqual(vethsOnBridge(), []);
  const leases = spawnSync('sh', ['-c', `cat ${d.dataRoot}/network/containers/*.json 2>/dev/null`], {
    encoding: 'utf8',
  });
  assert.equal(leases.stdout, '', 'no endpoint state after rm');
});
