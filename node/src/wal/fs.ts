// The file-system seam of the durable log.
//
// The WAL and the snapshotter touch the disk only through `Fs`, a handful of
// calls: open (read / append / create), read, append, fsync, rename, unlink,
// readdir, rmdir, truncate, and fsync of a directory. `NodeFs` is the real thing over
// node:fs/promises; `SimFs` (sim_fs.ts) is an in-memory model that remembers
// what has been fsynced, so tests can crash it and look at what a power cut
// would have left behind.
//
// Durability contract (what the callers rely on, and what SimFs models):
// - Bytes appended to a file are durable only after `FsFile.sync()` on it.
// - A created, renamed or unlinked *name* is durable only after `syncDir()` of
//   the directory holding it. Until then a crash may or may not keep it (SimFs
//   keeps a random prefix of the directory's changes since its last sync, as a
//   journaling file system does; a rename is one change, never half done).
// - `truncate()` is durable only after a `sync()` of a handle on that file.
// - Nothing else is promised: unsynced bytes may be lost, cut short, or come
//   back partly (sectors missing, zeros, garbage after the end).

import { constants, writeSync } from "node:fs";
import { mkdir, open, readdir, readFile, rename, rmdir, truncate, unlink, type FileHandle } from "node:fs/promises";

/** An open file. Writes only ever go to the end. */
export interface FsFile {
  /** Appends all of `data` at the end of the file (not durable until sync). */
  append(data: Uint8Array): Promise<void>;
  /** Reads up to `into.length` bytes at `position`; returns how many (0 at end of file). */
  read(into: Uint8Array, position: number): Promise<number>;
  /** The current size in bytes. */
  size(): Promise<number>;
  /** Makes this file's data (and the size) durable: fdatasync. */
  sync(): Promise<void>;
  close(): Promise<void>;
}

export interface Fs {
  /** Opens an existing file for reading. */
  openRead(path: string): Promise<FsFile>;
  /** Opens an existing file for reading and appending. */
  openAppend(path: string): Promise<FsFile>;
  /** Creates an empty file for reading and appending, replacing any file of that name. */
  create(path: string): Promise<FsFile>;
  /** The whole content of a file, in a fresh buffer the caller owns (replay keeps views into it). */
  readFile(path: string): Promise<Uint8Array>;
  /** The names in a directory, or [] if the directory does not exist. */
  readdir(dir: string): Promise<string[]>;
  /** Creates a directory and its missing parents. */
  mkdirp(dir: string): Promise<void>;
  /** Removes an empty directory. */
  rmdir(dir: string): Promise<void>;
  /** Atomically renames a file or directory (within one parent directory in all our uses). */
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** Cuts a file to `length` bytes. */
  truncate(path: string, length: number): Promise<void>;
  /** Makes the directory's entries (creates, renames, unlinks) durable: fsync of the directory. */
  syncDir(dir: string): Promise<void>;
}

class NodeFile implements FsFile {
  constructor(private readonly fh: FileHandle) {}

  async append(data: Uint8Array): Promise<void> {
    // O_APPEND: every write lands at the end. write() may be short; loop.
    // Synchronous on purpose: without O_SYNC a write is a copy into the page cache,
    // cheaper than the thread-pool round trip an async write costs on every batch
    // (one client's put waited for two of them, write then fdatasync; see
    // docs/perf-notes.md). The fdatasync that makes it durable stays off the main thread.
    let off = 0;
    while (off < data.length) off += writeSync(this.fh.fd, data, off, data.length - off, null);
  }

  async read(into: Uint8Array, position: number): Promise<number> {
    const { bytesRead } = await this.fh.read(into, 0, into.length, position);
    return bytesRead;
  }

  async size(): Promise<number> {
    return (await this.fh.stat()).size;
  }

  async sync(): Promise<void> {
    // fdatasync also flushes a changed file size (it is needed to read the data back).
    await this.fh.datasync();
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

const APPEND_FLAGS = constants.O_RDWR | constants.O_APPEND;
const CREATE_FLAGS = constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | constants.O_TRUNC;

/** The real file system (node:fs/promises). Files are created with mode 0600, directories 0700. */
export class NodeFs implements Fs {
  async openRead(path: string): Promise<FsFile> {
    return new NodeFile(await open(path, "r"));
  }

  async openAppend(path: string): Promise<FsFile> {
    return new NodeFile(await open(path, APPEND_FLAGS));
  }

  async create(path: string): Promise<FsFile> {
    return new NodeFile(await open(path, CREATE_FLAGS, 0o600));
  }

  async readFile(path: string): Promise<Uint8Array> {
    return await readFile(path);
  }

  async readdir(dir: string): Promise<string[]> {
    try {
      return await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
  }

  async mkdirp(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  }

  async rmdir(dir: string): Promise<void> {
    await rmdir(dir);
  }

  async rename(from: string, to: string): Promise<void> {
    await rename(from, to);
  }

  async unlink(path: string): Promise<void> {
    await unlink(path);
  }

  async truncate(path: string, length: number): Promise<void> {
    await truncate(path, length);
  }

  async syncDir(dir: string): Promise<void> {
    // Linux (and the BSDs) make directory entries durable with fsync on the directory.
    // Windows cannot open a directory this way and has no equivalent: skip there.
    if (process.platform === "win32") return;
    const fh = await open(dir, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
}

export const nodeFs: Fs = new NodeFs();
