/**
 * /proc/<pid>/stat, read the one way the runtime needs it: the state letter (field 3) and the start
 * time (field 22) that tells a process from a later one given its pid. The command name (field 2)
 * may hold spaces and parentheses, so fields are counted from its last ')'.
 */
import { readFileSync } from 'node:fs';

export interface ProcStat {
  state: string;
  starttime: string;
}

export function procStat(pid: number): ProcStat | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0], starttime: fields[19] };
}
