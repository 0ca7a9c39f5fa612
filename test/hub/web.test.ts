import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { type BrowserContext, chromium } from 'playwright-core';
import { busyboxSeed, helloWorldSeed, pushSeed } from '../../src/hub/seed.js';
import { startTestHub, type TestHub } from './hubtest.js';

const CHROMIUM = '/usr/bin/chromium';
let hub: TestHub;
let context: BrowserContext | undefined;
let profile: string;
let busyboxLayer: string;

before(async () => {
  hub = await startTestHub();
  await pushSeed(hub.addr, helloWorldSeed());
  const bb = await busyboxSeed();
  busyboxLayer = bb.blobs[1].digest;
  await pushSeed(hub.addr, bb);
  await hub.storage.setRepoMeta('library/busybox', { description: 'BusyBox <b>combines</b> tiny utilities' });
});
after(async () => {
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  await hub.stop();
});

test('web pages render without a browser too: escaped text, 404s', async () => {
  const home = await hub.req('GET', '/');
  assert.equal(home.status, 200);
  assert.match(String(home.headers['content-type']), /text\/html/);
  assert.match(home.text, /library\/busybox/);
  assert.ok(home.text.includes('BusyBox &lt;b&gt;combines&lt;/b&gt;'));
  assert.equal((await hub.req('GET', '/r/nosuch/repo')).status, 404);
  assert.equal((await hub.req('GET', '/r/library/busybox/tags/nope')).status, 404);
  const xss = await hub.req('GET', '/search?q=%3Cscript%3Ealert(1)%3C/script%3E');
  assert.ok(!xss.text.includes('<script>'));
});

test(
  'in headless Chromium: list → repository → tag shows the layer digests and config; search finds it',
  { skip: !existsSync(CHROMIUM) && 'no chromium' },
  async () => {
    profile = mkdtempSync(path.join(os.tmpdir(), 'berth-chromium-'));
    // The profile directory is Chromium's --user-data-dir (Playwright passes it itself).
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    const page = await context.newPage();
    await page.goto(`${hub.url}/`);
    assert.equal(await page.title(), 'Repositories · Berth Hub');
    await page.click('#repositories a:text("library/busybox")');
    await page.waitForURL(`${hub.url}/r/library/busybox`);
    assert.equal(await page.locator('h1').textContent(), 'library/busybox');
    await page.click('#tags a:text("latest")');
    await page.waitForURL(`${hub.url}/r/library/busybox/tags/latest`);
    const layers = await page.locator('#layers .layer-digest').allTextContents();
    assert.deepEqual(layers, [busyboxLayer]);
    assert.match((await page.locator('#config').textContent()) ?? '', /Cmd\["sh"\]/);
    assert.match((await page.locator('#config').textContent()) ?? '', /linux\/amd64/);

    // hello-world is an index: its page lists the platform manifests, which link on.
    await page.goto(`${hub.url}/r/library/hello-world/tags/latest`);
    const platforms = await page.locator('#platforms tbody tr').count();
    assert.ok(platforms >= 1);
    await page.locator('#platforms a').first().click();
    await page.waitForURL(/\/r\/library\/hello-world\/manifests\/sha256:/);
    assert.equal(await page.locator('#layers .layer-digest').count(), 1);

    await page.fill('input[name=q]', 'busy');
    await page.click('button[type=submit]');
    await page.waitForURL(`${hub.url}/search?q=busy`);
    assert.deepEqual(await page.locator('#results tbody a').allTextContents(), ['busybox']);
    await page.click('#results a:text("busybox")');
    await page.waitForURL(`${hub.url}/r/library/busybox`);
  },
);
