/** `npm run hello-world -- DIR`: writes the generated hello-world image as an OCI layout in DIR. */
import { buildHelloWorld, writeOciLayout } from './image.js';

const dir = process.argv[2];
if (!dir) {
  process.stderr.write('usage: hello-world <output dir>\n');
  process.exit(2);
}
const img = buildHelloWorld();
await writeOciLayout(img, dir);
process.stdout.write(`${img.indexDigest}\n`);
