/**
 * Hub accounts: `<root>/auth/users.json`, written atomically (mode 0600). Passwords are hashed
 * with scrypt (memory-hard; N=2^16, r=8, p=1 → 64 MiB and about a second per hash here) and a
 * random salt; the stored string names its parameters so they can be raised later without
 * breaking old hashes. Because a pull asks for a token per repository, a successful check is
 * remembered for a minute, keyed by an HMAC (with a per-process key) of name, password and hash.
 */
import { createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { readJsonIfExists, writeJsonAtomic } from '../common/atomic.js';
import { alreadyExists, invalidArgument, notFound } from '../common/errors.js';

export interface User {
  /** `$scrypt$N=…,r=…,p=…$<salt b64>$<hash b64>` */
  hash: string;
  admin: boolean;
  created: string;
}

interface UsersFile {
  users: Record<string, User>;
}

const PARAMS = { N: 2 ** 16, r: 8, p: 1 };
const REMEMBER_MS = 60_000;
const KEYLEN = 32;
export const USERNAME = /^[a-z0-9](?:[a-z0-9._-]{0,28}[a-z0-9])?$/;

function scryptAsync(password: string, salt: Buffer, p: typeof PARAMS): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password, salt, KEYLEN, { ...p, maxmem: 256 * p.N * p.r + 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt, PARAMS);
  return `$scrypt$N=${PARAMS.N},r=${PARAMS.r},p=${PARAMS.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const m = /^\$scrypt\$N=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(stored);
  if (!m) return false;
  const want = Buffer.from(m[5], 'base64');
  const got = await scryptAsync(password, Buffer.from(m[4], 'base64'), {
    N: Number(m[1]),
    r: Number(m[2]),
    p: Number(m[3]),
  });
  return got.length === want.length && timingSafeEqual(got, want);
}

export class UserStore {
  readonly file: string;
  private readonly cacheKey = randomBytes(32);
  private readonly verified = new Map<string, number>();
  constructor(root: string) {
    this.file = path.join(root, 'auth', 'users.json');
  }

  private async load(): Promise<UsersFile> {
    return (await readJsonIfExists<UsersFile>(this.file)) ?? { users: {} };
  }

  private async save(f: UsersFile): Promise<void> {
    await fsp.mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
    await writeJsonAtomic(this.file, f, 0o600);
  }

  async get(name: string): Promise<User | undefined> {
    const users = (await this.load()).users;
    return Object.hasOwn(users, name) ? users[name] : undefined;
  }

  async list(): Promise<{ name: string; admin: boolean; created: string }[]> {
    const users = (await this.load()).users;
    return Object.keys(users)
      .sort()
      .map((name) => ({ name, admin: users[name].admin, created: users[name].created }));
  }

  async add(name: string, password: string, admin = false): Promise<void> {
    if (!USERNAME.test(name) || name === 'library')
      throw invalidArgument(
        `invalid user name ${JSON.stringify(name)}: 1-30 of a-z 0-9 . _ -, starting and ending alphanumeric`,
      );
    if (password.length < 6) throw invalidArgument('password too short (at least 6 characters)');
    const hash = await hashPassword(password);
    const f = await this.load();
    if (Object.hasOwn(f.users, name)) throw alreadyExists(`user ${name} already exists`);
    f.users[name] = { hash, admin, created: new Date().toISOString() };
    await this.save(f);
  }

  async remove(name: string): Promise<void> {
    const f = await this.load();
    if (!Object.hasOwn(f.users, name)) throw notFound(`no such user: ${name}`);
    delete f.users[name];
    await this.save(f);
  }

  /** The user when the password matches. */
  async authenticate(name: string, password: string): Promise<User | undefined> {
    const u = await this.get(name);
    if (!u) {
      // Spend the same time as a real check so names cannot be probed by timing.
      await hashPassword(password);
      return undefined;
    }
    const key = createHmac('sha256', this.cacheKey).update(`${name}\0${password}\0${u.hash}`).digest('hex');
    const until = this.verified.get(key);
    if (until && until > Date.now()) return u;
    if (!(await verifyPassword(password, u.hash))) return undefined;
    if (this.verified.size > 1000) this.verified.clear();
    this.verified.set(key, Date.now() + REMEMBER_MS);
    return u;
  }
}
