/**
 * /proc/<pid>/mountinfo lines (proc(5)): the fields Berth reads, with the kernel's octal escapes
 * (\040 for a space, …) undone.
 */
export interface MountInfo {
  /** the path within its file system that is mounted (/ for a whole one) */
  root: string;
  mountPoint: string;
  fstype: string;
  superOptions: string[];
}

export function parseMountinfo(text: string): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const f = line.slice(0, sep).split(' ');
    const [fstype, , superOpts = ''] = line.slice(sep + 3).split(' ');
    out.push({
      root: unescape(f[3]),
      mountPoint: unescape(f[4]),
      fstype,
      superOptions: superOpts.split(','),
    });
  }
  return out;
}

function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}
