/**
 * Typed error kinds (containerd's errdefs). The engine throws these; routes/ maps each kind to
 * Docker's HTTP status in one place, and the CLI maps them to exit codes.
 */
export type ErrorKind =
  | 'NotFound'
  | 'InvalidArgument'
  | 'Conflict'
  | 'AlreadyExists'
  | 'FailedPrecondition'
  | 'Unavailable'
  | 'Unauthorized'
  | 'Forbidden'
  | 'NotImplemented'
  | 'Internal';

export class BerthError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = `BerthError(${kind})`;
  }
}

export const notFound = (message: string): BerthError => new BerthError('NotFound', message);
export const invalidArgument = (message: string): BerthError => new BerthError('InvalidArgument', message);
export const conflict = (message: string): BerthError => new BerthError('Conflict', message);
export const alreadyExists = (message: string): BerthError => new BerthError('AlreadyExists', message);
export const failedPrecondition = (message: string): BerthError =>
  new BerthError('FailedPrecondition', message);
export const unavailable = (message: string): BerthError => new BerthError('Unavailable', message);
export const notImplemented = (message: string): BerthError => new BerthError('NotImplemented', message);
export const internal = (message: string, cause?: unknown): BerthError =>
  new BerthError('Internal', message, { cause });

export function isKind(err: unknown, kind: ErrorKind): boolean {
  return err instanceof BerthError && err.kind === kind;
}

/** Docker's HTTP status for each kind. */
export function httpStatus(kind: ErrorKind): number {
  switch (kind) {
    case 'NotFound':
      return 404;
    case 'InvalidArgument':
      return 400;
    case 'Conflict':
    case 'AlreadyExists':
      return 409;
    case 'FailedPrecondition':
      return 409;
    case 'Unauthorized':
      return 401;
    case 'Forbidden':
      return 403;
    case 'NotImplemented':
      return 501;
    case 'Unavailable':
      return 503;
    case 'Internal':
      return 500;
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Node system errors carry a `code` such as ENOENT. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}
