// A host folder as an Emscripten filesystem: every board file operation goes
// straight to the folder with Node's synchronous fs calls, so files written on the
// board appear on the host at once and outlive the bridge, and files put in the
// folder by the host are visible on the board.
//
// The MicroPython WebAssembly build ships only Emscripten's in-memory filesystem
// (no NODEFS), hence this small backend: the node/stream operation tables are the
// interface Emscripten's FS layer calls for any mounted filesystem.

import fs from 'node:fs';
import path from 'node:path';

// Node error codes -> Emscripten (WASI) errno values, the numbering the FS layer uses
// inside the wasm module. The bridge maps them to MicroPython's numbering at the
// wasm boundary (see ERRNO_TO_MP in board.mjs).
const EMSCRIPTEN_ERRNO = {
  EACCES: 2, EAGAIN: 6, EBADF: 8, EBUSY: 10, EEXIST: 20, EFBIG: 22, EINVAL: 28,
  EIO: 29, EISDIR: 31, ELOOP: 32, EMFILE: 33, ENAMETOOLONG: 37, ENFILE: 41,
  ENODEV: 43, ENOENT: 44, ENOMEM: 48, ENOSPC: 51, ENOSYS: 52, ENOTDIR: 54,
  ENOTEMPTY: 55, EPERM: 63, EROFS: 69, ESPIPE: 70, EXDEV: 75,
};

export function makeHostFS(FS, root) {
  const openFds = new Set();

  function rethrow(e) {
    if (e instanceof FS.ErrnoError) throw e;
    throw new FS.ErrnoError(EMSCRIPTEN_ERRNO[e.code] ?? 29);
  }

  // Wrap each operation so a Node error becomes the errno the FS layer expects.
  function guarded(ops) {
    const out = {};
    for (const [name, fn] of Object.entries(ops)) {
      out[name] = (...args) => {
        try {
          return fn(...args);
        } catch (e) {
          return rethrow(e);
        }
      };
    }
    return out;
  }

  function hostPath(node) {
    const parts = [];
    while (node.parent !== node) {
      parts.push(node.name);
      node = node.parent;
    }
    return path.join(root, ...parts.reverse());
  }

  function createNode(parent, name, mode) {
    const node = FS.createNode(parent, name, mode, 0);
    node.node_ops = nodeOps;
    node.stream_ops = streamOps;
    return node;
  }

  const nodeOps = guarded({
    getattr(node) {
      const st = fs.lstatSync(hostPath(node));
      node.mode = st.mode; // the host may have replaced the entry since it was looked up
      return {
        dev: 1, ino: st.ino, mode: st.mode, nlink: st.nlink, uid: 0, gid: 0, rdev: 0,
        size: st.size, atime: st.atime, mtime: st.mtime, ctime: st.ctime,
        blksize: 4096, blocks: Math.ceil(st.size / 4096),
      };
    },
    setattr(node, attr) {
      const p = hostPath(node);
      if (attr.size !== undefined) fs.truncateSync(p, attr.size);
      if (attr.atime != null || attr.mtime != null) {
        const st = fs.statSync(p);
        fs.utimesSync(p, new Date(attr.atime ?? st.atime), new Date(attr.mtime ?? st.mtime));
      }
      if (attr.mode != null) node.mode = attr.mode;
    },
    lookup(parent, name) {
      const st = fs.lstatSync(path.join(hostPath(parent), name));
      return createNode(parent, name, st.mode);
    },
    mknod(parent, name, mode) {
      const p = path.join(hostPath(parent), name);
      if (FS.isDir(mode)) {
        fs.mkdirSync(p);
      } else if (FS.isFile(mode)) {
        fs.closeSync(fs.openSync(p, 'wx'));
      } else {
        throw new FS.ErrnoError(63);
      }
      return createNode(parent, name, fs.lstatSync(p).mode);
    },
    rename(oldNode, newDir, newName) {
      const target = path.join(hostPath(newDir), newName);
      fs.renameSync(hostPath(oldNode), target);
      // Forget any cached node for the replaced target, as MEMFS does.
      for (let n = FS.nameTable[FS.hashName(newDir.id, newName)]; n; n = n.name_next) {
        if (n.parent.id === newDir.id && n.name === newName && n !== oldNode) {
          FS.hashRemoveNode(n);
          break;
        }
      }
      oldNode.name = newName;
    },
    unlink(parent, name) {
      fs.unlinkSync(path.join(hostPath(parent), name));
    },
    rmdir(parent, name) {
      fs.rmdirSync(path.join(hostPath(parent), name));
    },
    readdir(node) {
      return ['.', '..', ...fs.readdirSync(hostPath(node))];
    },
    readlink(node) {
      return fs.readlinkSync(hostPath(node));
    },
    symlink() {
      throw new FS.ErrnoError(63);
    },
  });

  const asBuffer = (a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

  const streamOps = guarded({
    open(stream) {
      if (FS.isFile(stream.node.mode)) {
        // O_CREAT/O_TRUNC were already handled by the FS layer; O_APPEND is done
        // with llseek(…, SEEK_END) before each write, so only the access mode matters.
        stream.hostFd = fs.openSync(hostPath(stream.node), stream.flags & 3);
        openFds.add(stream.hostFd);
      }
    },
    close(stream) {
      if (stream.hostFd !== undefined) {
        openFds.delete(stream.hostFd);
        fs.closeSync(stream.hostFd);
        stream.hostFd = undefined;
      }
    },
    read(stream, buffer, offset, length, position) {
      if (length === 0) return 0;
      return fs.readSync(stream.hostFd, asBuffer(buffer), offset, length, position);
    },
    write(stream, buffer, offset, length, position) {
      if (length === 0) return 0;
      return fs.writeSync(stream.hostFd, asBuffer(buffer), offset, length, position);
    },
    llseek(stream, offset, whence) {
      let pos = offset;
      if (whence === 1) pos += stream.position;
      else if (whence === 2 && FS.isFile(stream.node.mode)) pos += fs.fstatSync(stream.hostFd).size;
      if (pos < 0) throw new FS.ErrnoError(28);
      return pos;
    },
  });

  return {
    mount() {
      return createNode(null, '/', fs.statSync(root).mode);
    },
    // Host file descriptors still open (closed when the interpreter is replaced).
    closeAll() {
      for (const fd of openFds) {
        try {
          fs.closeSync(fd);
        } catch {
          // already closed
        }
      }
      openFds.clear();
    },
  };
}
