/** treeSize: what `ps -s` (SizeRw) and `volume prune` (reclaimed space) count. */
import assert from 'node:assert/strict';
import { linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { treeSize } from '../../src/common/treesize.js';

test('treeSize counts files and symlinks in nested directories, each hard link once', async () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'berth-treesize-'));
  try {
    mkdirSync(path.join(root, 'a', 'b'), { recursive: true });
    writeFileSync(path.join(root, 'top'), Buffer.alloc(1000));
    writeFileSync(path.join(root, 'a', 'b', 'deep'), Buffer.alloc(234));
    linkSync(path.join(root, 'top'), path.join(root, 'a', 'same-as-top'));
    symlinkSync('b/deep', path.join(root, 'a', 'link')); // 6 bytes of target
    assert.equal(await treeSize(root), 1000 + 234 + 6);
    assert.equal(await treeSize(path.join(root, 'missing')), 0);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
