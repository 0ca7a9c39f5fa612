/**
 * The builder benchmark's context (made once, cached): 200 small files, one 20 MB file and an
 * ~8-step Dockerfile (FROM busybox, COPY, RUN, ENV, WORKDIR).
 */
import { existsSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';

export const BUILD_DOCKERFILE = `FROM busybox:1.38.0-musl
ENV APP=/app
WORKDIR /app
COPY small/ ./small/
COPY big.bin ./
RUN ls small | wc -l > count.txt && wc -c big.bin >> count.txt
ENV MODE=bench
CMD ["cat", "count.txt"]
`;

export async function buildContext(cache: string): Promise<string> {
  const dir = path.join(cache, 'build-context');
  if (existsSync(path.join(dir, 'Dockerfile'))) return dir;
  const tmp = `${dir}.tmp`;
  await fsp.rm(tmp, { recursive: true, force: true });
  await fsp.mkdir(path.join(tmp, 'small'), { recursive: true });
  for (let i = 0; i < 200; i++)
    await fsp.writeFile(
      path.join(tmp, 'small', `file-${String(i).padStart(3, '0')}.txt`),
      `small file ${i}\n`.repeat(20),
    );
  const big = Buffer.alloc(20 * 1024 * 1024);
  for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
  await fsp.writeFile(path.join(tmp, 'big.bin'), big);
  await fsp.writeFile(path.join(tmp, 'Dockerfile'), BUILD_DOCKERFILE);
  await fsp.rename(tmp, dir);
  return dir;
}
