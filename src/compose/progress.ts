/** Progress lines as Docker Compose v2 prints them on stderr: ` Container proj-web-1  Started`. */
export interface Progress {
  event(kind: 'Network' | 'Volume' | 'Container' | 'Image' | 'Service', name: string, status: string): void;
  warn(msg: string): void;
}

export function stderrProgress(quiet = false): Progress {
  return {
    event(kind, name, status) {
      if (!quiet) process.stderr.write(` ${kind} ${name}  ${status}\n`);
    },
    warn(msg) {
      process.stderr.write(`WARN[0000] ${msg}\n`);
    },
  };
}
