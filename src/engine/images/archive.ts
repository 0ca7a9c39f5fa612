/**
 * Image archives: `load` (docker save archives, legacy and OCI-layout based, and OCI layouts as tar),
 * `save` (Docker 25+'s combined format, readable by old and new docker load and by skopeo) and
 * `import` (a root file system tarball becomes a one-layer image).
 */
export type { ArchiveDeps } from './archive-common.js';
export { loadImages, type LoadResult } from './archive-load.js';
export { saveImages } from './archive-save.js';
export { importImage, type ImportOptions } from './import.js';
