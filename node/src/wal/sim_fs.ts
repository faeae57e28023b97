// SimFs: an in-memory file system that remembers what is durable, so a test can
// cut the power at any moment and look at what the disk would hold afterwards.
//
// It implements the contract written at the top of fs.ts and nothing kinder:
// - a file's bytes are durable up to its last sync(); a crash keeps the synced
//   bytes and does anything to the rest: keeps them, drops them, cuts them short,
//   zero-fills or garbles whole chunks, or leaves garbage past the end;
// - a directory's entries are durable as of its last syncDir(); a crash keeps a
//   random prefix of the changes made since (a rename is one change);
// - crash() returns the file system after the reboot; the crashed instance is
//   dead and every call on it, or on a handle it opened, fails with
//   SimCrashedError (so a process that "died" cannot touch the new disk).
//
// Faults: failNext(op) makes the next call of that kind fail with an EIO-like
// error (nothing of a failed append reaches the file). `counts` tallies calls, so
// tests can check how many fsyncs a workload cost. `onSync` lets a test hold an
// fsync open (so concurrent callers queue behind it) or crash right at it.

import { posix } from "node:path";
import type { Rand } from "../raft/rand.js";
import type { Fs, FsFile } from "./fs.js";

export class SimCrashedError extends Error {
  override name = "SimCrashedError";
  constructor() {
    super("simfs: this file system crashed; use the instance crash() returned");
  }
}

/** An injected I/O failure. `code` is "EIO", as the kernel would report. */
export class SimFaultError extends Error {
  override name = "SimFaultError";
  readonly code = "EIO";
  constructor(op: string, path: string) {
    super(`simfs: injected ${op} failure on ${path}`);
  }
}

function fsError(code: string, msg: string): Error {
  return Object.assign(new Error(`${code}: ${msg}`), { code });
}

export type SimOp = "append" | "sync" | "syncDir" | "rename" | "unlink" | "truncate" | "create" | "rmdir";

class SimFile {
  private buf = new Uint8Array(64);
  len = 0;
  /** Bytes made durable by the last sync. When undefined, they are buf[0, syncedLen): only appends happened since. */
  private durableCopy: Uint8Array | undefined;
  private syncedLen = 0;

  constructor(init?: Uint8Array) {
    if (init !== undefined) {
      this.buf = new Uint8Array(Math.max(64, init.length));
      this.buf.set(init);
      this.len = init.length;
      this.syncedLen = init.length;
    }
  }

  content(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }

  durable(): Uint8Array {
    return this.durableCopy ?? this.buf.subarray(0, this.syncedLen);
  }

  private reserve(n: number): void {
    if (n <= this.buf.length) return;
    let cap = this.buf.length;
    while (cap < n) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.buf.subarray(0, this.len));
    this.buf = nb;
  }

  append(data: Uint8Array): void {
    this.reserve(this.len + data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
  }

  truncate(n: number): void {
    if (n < this.syncedLen && this.durableCopy === undefined) this.durableCopy = this.buf.slice(0, this.syncedLen);
    if (n > this.len) {
      this.reserve(n);
      this.buf.fill(0, this.len, n);
    }
    this.len = n;
  }

  sync(): void {
    this.durableCopy = undefined;
    this.syncedLen = this.len;
  }

  /** What a power cut leaves of this file. */
  crashed(rand: Rand): Uint8Array {
    const d = this.durable();
    const v = this.content();
    let k = 0;
    const m = Math.min(d.length, v.length);
    if (this.durableCopy === undefined) k = d.length;
    else while (k < m && d[k] === v[k]) k++;
    if (k === d.length && k === v.length) return v.slice();
    const mode = rand.intn(4);
    if (mode === 0) return d.slice(); // nothing unsynced reached the disk
    if (mode === 1) return v.slice(); // everything did
    if (mode === 2) {
      // Cut somewhere in the unsynced part of whichever is longer.
      const src = v.length >= d.length ? v : d;
      return src.slice(0, k + rand.intn(src.length - k + 1));
    }
    // Chunk by chunk from the new bytes, the old bytes, zeros or garbage, possibly past the end.
    const chunk = [1, 8, 64, 512][rand.intn(4)]!;
    const end = k + rand.intn(Math.max(d.length, v.length) - k + 2 * chunk + 1);
    const out = new Uint8Array(end);
    out.set(v.subarray(0, k));
    for (let at = k; at < end; at += chunk) {
      const hi = Math.min(end, at + chunk);
      const src = rand.intn(4);
      for (let p = at; p < hi; p++) {
        if (src === 0) out[p] = v[p] ?? 0;
        else if (src === 1) out[p] = d[p] ?? 0;
        else if (src === 2) out[p] = 0;
        else out[p] = rand.intn(256);
      }
    }
    return out;
  }
}

type Node = SimFile | SimDir;
type DirChange = (m: Map<string, Node>) => void;

class SimDir {
  entries = new Map<string, Node>();
  /** The entries as of the last syncDir, and the changes made since, in order. */
  durable = new Map<string, Node>();
  changes: DirChange[] = [];

  change(c: DirChange): void {
    c(this.entries);
    this.changes.push(c);
  }

  sync(): void {
    this.durable = new Map(this.entries);
    this.changes = [];
  }
}

function rebuild(dir: SimDir, rand: Rand, files: Map<SimFile, SimFile>, dirs: Map<SimDir, SimDir>): SimDir {
  const seen = dirs.get(dir);
  if (seen !== undefined) return seen;
  const out = new SimDir();
  dirs.set(dir, out);
  const m = new Map(dir.durable);
  const keep = rand.intn(dir.changes.length + 1);
  for (let i = 0; i < keep; i++) dir.changes[i]!(m);
  for (const [name, node] of m) {
    if (node instanceof SimDir) out.entries.set(name, rebuild(node, rand, files, dirs));
    else {
      let f = files.get(node);
      if (f === undefined) {
        f = new SimFile(node.crashed(rand));
        files.set(node, f);
      }
      out.entries.set(name, f);
    }
  }
  out.sync();
  return out;
}

class SimHandle implements FsFile {
  private closed = false;
  constructor(
    private readonly fs: SimFs,
    private readonly file: SimFile,
    private readonly path: string,
    private readonly writable: boolean,
  ) {}

  private check(): void {
    this.fs.checkAlive();
    if (this.closed) throw fsError("EBADF", `${this.path} is closed`);
  }

  async append(data: Uint8Array): Promise<void> {
    this.check();
    if (!this.writable) throw fsError("EBADF", `${this.path} is open read-only`);
    this.fs.count("append", this.path);
    this.file.append(data);
  }

  async read(into: Uint8Array, position: number): Promise<number> {
    this.check();
    const c = this.file.content();
    const n = Math.max(0, Math.min(into.length, c.length - position));
    into.set(c.subarray(position, position + n));
    return n;
  }

  async size(): Promise<number> {
    this.check();
    return this.file.len;
  }

  async sync(): Promise<void> {
    this.check();
    this.fs.count("sync", this.path);
    if (this.fs.onSync !== undefined) {
      await this.fs.onSync(this.path);
      this.check();
    }
    this.file.sync();
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

export class SimFs implements Fs {
  private root: SimDir;
  private dead = false;
  private faults = new Map<SimOp, number>();
  /** Calls made, by kind (append, sync, syncDir, ...). */
  readonly counts: Record<SimOp, number> = { append: 0, sync: 0, syncDir: 0, rename: 0, unlink: 0, truncate: 0, create: 0, rmdir: 0 };
  /** Awaited inside every FsFile.sync() and syncDir() before it takes effect (with the path). */
  onSync: ((path: string) => Promise<void>) | undefined;

  constructor(root?: SimDir) {
    this.root = root ?? new SimDir();
  }

  checkAlive(): void {
    if (this.dead) throw new SimCrashedError();
  }

  /** Counts a call and throws if a fault was armed for it. */
  count(op: SimOp, path: string): void {
    this.counts[op]++;
    const n = this.faults.get(op);
    if (n === undefined) return;
    if (n > 0) this.faults.set(op, n - 1);
    else {
      this.faults.delete(op);
      throw new SimFaultError(op, path);
    }
  }

  /** Makes a later call of kind `op` fail: the next one, or the one after `skip` successful ones. */
  failNext(op: SimOp, skip = 0): void {
    this.faults.set(op, skip);
  }

  /** Power cut: returns the disk as it comes back; this instance is dead from now on. */
  crash(rand: Rand): SimFs {
    this.checkAlive();
    this.dead = true;
    return new SimFs(rebuild(this.root, rand, new Map(), new Map()));
  }

  /** What a crash now would leave, without crashing: this instance stays usable. */
  crashImage(rand: Rand): SimFs {
    this.checkAlive();
    return new SimFs(rebuild(this.root, rand, new Map(), new Map()));
  }

  /** The durable state without randomness: what a crash right after syncing everything would keep. */
  durableBytes(path: string): Uint8Array | undefined {
    const n = this.lookup(path);
    return n instanceof SimFile ? n.durable().slice() : undefined;
  }

  private split(path: string): string[] {
    const p = posix.resolve("/", path);
    return p === "/" ? [] : p.slice(1).split("/");
  }

  private lookup(path: string): Node | undefined {
    let cur: Node = this.root;
    for (const part of this.split(path)) {
      if (!(cur instanceof SimDir)) return undefined;
      const next: Node | undefined = cur.entries.get(part);
      if (next === undefined) return undefined;
      cur = next;
    }
    return cur;
  }

  private parent(path: string): { dir: SimDir; name: string } {
    const parts = this.split(path);
    const name = parts.pop();
    if (name === undefined) throw fsError("EINVAL", "the root has no parent");
    const dir = this.lookup("/" + parts.join("/"));
    if (!(dir instanceof SimDir)) throw fsError("ENOENT", `no directory for ${path}`);
    return { dir, name };
  }

  private file(path: string): SimFile {
    const n = this.lookup(path);
    if (n === undefined) throw fsError("ENOENT", `no such file ${path}`);
    if (!(n instanceof SimFile)) throw fsError("EISDIR", `${path} is a directory`);
    return n;
  }

  async openRead(path: string): Promise<FsFile> {
    this.checkAlive();
    return new SimHandle(this, this.file(path), path, false);
  }

  async openAppend(path: string): Promise<FsFile> {
    this.checkAlive();
    return new SimHandle(this, this.file(path), path, true);
  }

  async create(path: string): Promise<FsFile> {
    this.checkAlive();
    const { dir, name } = this.parent(path);
    if (dir.entries.get(name) instanceof SimDir) throw fsError("EISDIR", `${path} is a directory`);
    this.count("create", path);
    const f = new SimFile();
    dir.change((m) => m.set(name, f));
    return new SimHandle(this, f, path, true);
  }

  async readFile(path: string): Promise<Uint8Array> {
    this.checkAlive();
    return this.file(path).content().slice();
  }

  async readdir(dir: string): Promise<string[]> {
    this.checkAlive();
    const d = this.lookup(dir);
    if (d === undefined) return [];
    if (!(d instanceof SimDir)) throw fsError("ENOTDIR", `${dir} is not a directory`);
    return [...d.entries.keys()].sort();
  }

  async mkdirp(dir: string): Promise<void> {
    this.checkAlive();
    let cur = this.root;
    for (const part of this.split(dir)) {
      const next = cur.entries.get(part);
      if (next instanceof SimFile) throw fsError("ENOTDIR", `${part} in ${dir} is a file`);
      if (next !== undefined) {
        cur = next;
        continue;
      }
      const d = new SimDir();
      cur.change((m) => m.set(part, d));
      cur = d;
    }
  }

  async rmdir(dir: string): Promise<void> {
    this.checkAlive();
    const { dir: p, name } = this.parent(dir);
    const d = p.entries.get(name);
    if (!(d instanceof SimDir)) throw fsError("ENOTDIR", `${dir} is not a directory`);
    if (d.entries.size > 0) throw fsError("ENOTEMPTY", `${dir} is not empty`);
    this.count("rmdir", dir);
    p.change((m) => m.delete(name));
  }

  async rename(from: string, to: string): Promise<void> {
    this.checkAlive();
    const a = this.parent(from);
    const b = this.parent(to);
    if (a.dir !== b.dir) throw fsError("EXDEV", "simfs renames only within one directory");
    const node = a.dir.entries.get(a.name);
    if (node === undefined) throw fsError("ENOENT", `no such file ${from}`);
    const target = b.dir.entries.get(b.name);
    if (target instanceof SimDir && (!(node instanceof SimDir) || target.entries.size > 0)) throw fsError("ENOTEMPTY", `${to} is a directory`);
    if (target instanceof SimFile && node instanceof SimDir) throw fsError("ENOTDIR", `${to} is a file`);
    this.count("rename", from);
    const an = a.name;
    const bn = b.name;
    a.dir.change((m) => {
      const n = m.get(an);
      if (n === undefined) return;
      m.delete(an);
      m.set(bn, n);
    });
  }

  async unlink(path: string): Promise<void> {
    this.checkAlive();
    const { dir, name } = this.parent(path);
    const n = dir.entries.get(name);
    if (n === undefined) throw fsError("ENOENT", `no such file ${path}`);
    if (n instanceof SimDir) throw fsError("EISDIR", `${path} is a directory`);
    this.count("unlink", path);
    dir.change((m) => m.delete(name));
  }

  async truncate(path: string, length: number): Promise<void> {
    this.checkAlive();
    const f = this.file(path);
    this.count("truncate", path);
    f.truncate(length);
  }

  async syncDir(dir: string): Promise<void> {
    this.checkAlive();
    const d = this.lookup(dir);
    if (!(d instanceof SimDir)) throw fsError("ENOENT", `no directory ${dir}`);
    this.count("syncDir", dir);
    if (this.onSync !== undefined) {
      await this.onSync(dir);
      this.checkAlive();
    }
    d.sync();
  }

  // ---- test helpers: direct edits that bypass the durability model (they are durable at once) ----

  /** Replaces a file's whole content, durably (to plant damage). */
  setBytes(path: string, data: Uint8Array): void {
    this.checkAlive();
    const { dir, name } = this.parent(path);
    const f = new SimFile(data);
    dir.entries.set(name, f);
    dir.durable.set(name, f);
  }
}
