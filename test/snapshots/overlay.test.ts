import { OverlaySnapshotter } from '../../src/engine/snapshots/overlay.js';
import { snapshotterSuite } from './suite.js';

snapshotterSuite('overlay', async (root) => {
  const s = new OverlaySnapshotter(root);
  await s.init();
  return s;
});
