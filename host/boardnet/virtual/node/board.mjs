// The board: one MicroPython WebAssembly interpreter in a worker thread.
//
// The worker may block (Atomics.wait) while the bridge's main thread keeps reading
// the pseudo-terminal, so Python code gets real blocking sys.stdin reads. Bytes from
// the host arrive in a shared ring buffer; output is written straight to the pty
// master. Each power-on or soft reset loads a fresh interpreter, as a reboot would.

import { workerData, parentPort } from 'node:worker_threads';
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import { makeHostFS } from './hostfs.mjs';
import { CTL, RING_OFFSET, MODE_FRIENDLY, MODE_RAW } from './ring.mjs';

const { sab, masterFd, fsDir, nodeModules, boot } = workerData;
const ctl = new Int32Array(sab, 0, CTL.SIZE);
const ring = new Uint8Array(sab, RING_OFFSET);
const MASK = ring.length - 1;

const CTRL_A = 0x01, CTRL_B = 0x02, CTRL_C = 0x03, CTRL_D = 0x04, CTRL_E = 0x05;
const PYEXEC_FORCED_EXIT = 0x100;
// Raw-paste flow-control window. The REPL's own implementation of raw-paste needs a
// blocking mp_hal_stdin_rx_chr, which this port lacks (it busy-loops), so the bridge
// speaks the raw-paste protocol itself; its buffer is unbounded, so the window is large.
const PASTE_WINDOW = 2048;

// Emscripten (WASI) errno values -> the numbering of a real MicroPython board, so that
// `OSError: [Errno 2] ENOENT` comes out (and mpremote can parse it). EINTR (27) is left
// alone: the C code compares it with its own constant to retry reads after Ctrl-C.
const ERRNO_TO_MP = new Map([
  [63, 1], [44, 2], [29, 5], [8, 9], [6, 11], [48, 12], [2, 13], [10, 16], [20, 17],
  [75, 18], [43, 19], [54, 20], [31, 21], [28, 22], [41, 23], [33, 24], [59, 25],
  [22, 27], [51, 28], [70, 29], [69, 30], [37, 36], [52, 38], [55, 39], [32, 40],
  [138, 95],
]);
const EINTR = 27;

// ---------------------------------------------------------------- input ring

const sleeper = new Int32Array(new SharedArrayBuffer(4));
const sleep = (ms) => Atomics.wait(sleeper, 0, 0, ms);

function available() {
  return (Atomics.load(ctl, CTL.HEAD) - Atomics.load(ctl, CTL.TAIL)) | 0;
}

function peek(i) {
  return ring[(Atomics.load(ctl, CTL.TAIL) + i) & MASK];
}

function drop(n) {
  Atomics.store(ctl, CTL.TAIL, (Atomics.load(ctl, CTL.TAIL) + n) | 0);
}

// Block until the host has sent something (or the timeout runs out).
function waitForInput(timeoutMs = Infinity) {
  const head = Atomics.load(ctl, CTL.HEAD);
  if (head !== Atomics.load(ctl, CTL.TAIL)) return;
  flushOut();
  Atomics.store(ctl, CTL.BUSY, 0);
  Atomics.wait(ctl, CTL.HEAD, head, timeoutMs);
  Atomics.store(ctl, CTL.BUSY, 1);
}

function take() {
  while (available() === 0) waitForInput();
  const c = peek(0);
  drop(1);
  return c;
}

// ---------------------------------------------------------------- output

let lastOut = 0; // last byte written, to turn a lone "\n" into "\r\n" as a board does
let swallow = 0; // bytes of REPL output to hide (the raw REPL's "OK" during raw-paste)
let muted = false;
let dropping = false; // no host is reading: drop output instead of stalling
let tap = null; // collects output while the bridge watches for a mode change
let held = null; // output held back while a loop is handed over (runHandedOver)
const pending = [];

function emit(bytes) {
  if (muted) return;
  if (typeof bytes === 'string') bytes = Buffer.from(bytes, 'latin1');
  if (held) {
    held.push(Buffer.from(bytes));
    return;
  }
  let start = 0;
  if (swallow > 0) {
    start = Math.min(swallow, bytes.length);
    swallow -= start;
  }
  for (let i = start; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === 0x0a && lastOut !== 0x0d) pending.push(0x0d);
    pending.push(b);
    lastOut = b;
  }
  if (tap) tap.push(...bytes.subarray(start));
  if (pending.length >= 4096 || bytes.includes(0x0a)) flushOut();
}

function flushOut() {
  if (pending.length === 0) return;
  const buf = Buffer.from(pending);
  pending.length = 0;
  let off = 0;
  let deadline = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(masterFd, buf, off);
      dropping = false;
    } catch (e) {
      if (e.code !== 'EAGAIN') return; // the pty is gone; nothing to tell
      // Nobody reads the port: wait a little (USB CDC blocks briefly too), then drop.
      if (dropping) return;
      if (!deadline) deadline = Date.now() + 500;
      if (Date.now() > deadline) {
        dropping = true;
        return;
      }
      sleep(2);
    }
  }
}

// ---------------------------------------------------------------- interpreter

let mp = null;
let hostfs = null;
let mode = MODE_FRIENDLY;
let rawLineLen = 0; // bytes in the raw REPL's line buffer since its last prompt
let resetRequest = null; // 'hard' | 'soft', set by machine.reset() / soft_reset()

const setMode = (m) => {
  mode = m;
  Atomics.store(ctl, CTL.MODE, m);
};

function interruptChar() {
  return mp._module.ccall('mp_hal_get_interrupt_char', 'number', [], []);
}

function raiseKeyboardInterrupt() {
  mp._module.ccall('mp_sched_keyboard_interrupt', 'null', [], []);
}

// Called from the ticks import (time.sleep, ticks_ms, select.poll busy-wait):
// notice Ctrl-C waiting in the input, and let delay loops sleep instead of spin.
let lastTick = -1;
let spins = 0;
let scannedHead = 0;
// Added to the tick counter after a Ctrl-C: time.sleep() spins on the counter
// without checking for pending exceptions, so the clock jumps to end the wait and
// let the KeyboardInterrupt surface.
let tickJump = 0;
const TICK_JUMP_MS = 2 ** 30;
function onTicks(now) {
  if (now === lastTick) {
    if (++spins > 64) {
      spins = 0;
      // a delay loop: sleep 1 ms (waking early for new input, which may be Ctrl-C)
      if (available() > 0) sleep(1);
      else waitForInput(1);
    }
  } else {
    lastTick = now;
    spins = 0;
  }
  const head = Atomics.load(ctl, CTL.HEAD);
  if (head === scannedHead) return;
  scannedHead = head;
  const n = Math.min(available(), 4096);
  for (let i = 0; i < n; i++) {
    if (peek(i) === CTRL_C) {
      const ic = interruptChar();
      if (ic === CTRL_C) {
        drop(i + 1); // a board acts on Ctrl-C as it arrives, ahead of unread input
        raiseKeyboardInterrupt();
        tickJump += TICK_JUMP_MS;
      }
      return;
    }
  }
}

// Wrap the wasm imports: errno numbering for syscalls, a hook on the tick counter.
function patchImports(imports) {
  const wrap = (fns) => {
    const out = { ...fns };
    for (const [name, fn] of Object.entries(fns)) {
      if (typeof fn !== 'function') continue;
      if (name.startsWith('__syscall_')) {
        out[name] = (...a) => {
          const r = fn(...a);
          return typeof r === 'number' && r < 0 && ERRNO_TO_MP.has(-r) ? -ERRNO_TO_MP.get(-r) : r;
        };
      } else if (name.startsWith('fd_')) {
        out[name] = (...a) => {
          const r = fn(...a);
          return typeof r === 'number' && r > 0 && ERRNO_TO_MP.has(r) ? ERRNO_TO_MP.get(r) : r;
        };
      } else if (name === 'mp_js_ticks_ms') {
        out[name] = () => {
          const t = fn();
          onTicks(t);
          return t + tickJump;
        };
      }
    }
    return out;
  };
  const env = wrap(imports.env);
  const patched = { ...imports, env };
  if (imports.wasi_snapshot_preview1) {
    patched.wasi_snapshot_preview1 =
      imports.wasi_snapshot_preview1 === imports.env ? env : wrap(imports.wasi_snapshot_preview1);
  }
  return patched;
}

const origInstantiate = WebAssembly.instantiate;
WebAssembly.instantiate = (source, imports) =>
  origInstantiate(source, imports ? patchImports(imports) : imports);

const mpModule = await import(
  pathToFileURL(
    path.join(nodeModules, '@micropython', 'micropython-webassembly-pyscript', 'micropython.mjs'),
  ).href
);

function stdinRead(stream, buffer, offset, length) {
  if (length === 0) return 0;
  for (;;) {
    const n = available();
    if (n > 0) {
      const ic = interruptChar();
      if (peek(0) === ic) {
        drop(1);
        raiseKeyboardInterrupt();
        // EINTR makes the C read loop run the pending KeyboardInterrupt.
        throw new mp.FS.ErrnoError(EINTR);
      }
      let count = 0;
      while (count < Math.min(n, length)) {
        const c = peek(count);
        if (c === ic) break; // handled by the next read
        buffer[offset + count] = c;
        count++;
      }
      drop(count);
      return count;
    }
    waitForInput();
  }
}

function stdoutWrite(stream, buffer, offset, length) {
  emit(Buffer.from(buffer.buffer, buffer.byteOffset + offset, length));
  return length;
}

// Python run once per interpreter, before boot.py: the board's files at "/", and a
// small `machine` module (enough for mpremote's reset and for portable code).
const SETUP = `
import os as _os, sys as _sys
class _Flash:
    # The host folder behind VfsPosix, listed as littlefs lists on a board:
    # (name, type, inode, size), where VfsPosix gives (name, type, inode).
    # Delegation, not a subclass: the VFS layer needs a plain Python object to call
    # these methods (a VfsPosix subclass breaks imports from the filesystem).
    def __init__(self, root):
        self._root = root
        self._v = _os.VfsPosix(root)
        self._bare = _os.VfsPosix()
    def mount(self, readonly, mkfs):
        pass
    def umount(self):
        pass
    def ilistdir(self, path):
        for e in self._v.ilistdir(path):
            size = 0
            if e[1] != 0x4000:
                try:
                    size = self._v.stat(path.rstrip('/') + '/' + e[0])[6]
                except OSError:
                    pass
            yield (e[0], e[1], 0, size)
    def open(self, path, mode):
        return self._v.open(path, mode)
    def chdir(self, path):
        return self._v.chdir(path)
    def getcwd(self):
        return self._v.getcwd()
    def mkdir(self, path):
        return self._v.mkdir(path)
    def remove(self, path):
        return self._v.remove(path)
    def rename(self, old, new):
        # VfsPosix(root).rename builds both paths in one buffer (the new path
        # overwrites the old): go through a root-less VfsPosix instead.
        r = self._root
        return self._bare.rename(r + old if old[:1] == '/' else old, r + new if new[:1] == '/' else new)
    def rmdir(self, path):
        return self._v.rmdir(path)
    def stat(self, path):
        return self._v.stat(path)
    def statvfs(self, path):
        return self._v.statvfs(path)
_os.umount('/')
_os.mount(_Flash('/flash'), '/')
_os.chdir('/')
class _Machine:
    @staticmethod
    def reset():
        import _boardnet_board
        _boardnet_board.reset()
    @staticmethod
    def soft_reset():
        import _boardnet_board
        _boardnet_board.soft_reset()
    @staticmethod
    def freq(hz=None):
        return 125000000
    @staticmethod
    def unique_id():
        return b'boardnet'
    @staticmethod
    def idle():
        pass
_Machine.__name__ = 'machine'
_sys.modules['machine'] = _Machine
def _boardnet_run(path):
    import micropython, sys
    try:
        with open(path) as f:
            src = f.read()
    except OSError:
        return
    micropython.kbd_intr(3)
    try:
        exec(compile(src, path, 'exec'), globals())
    except SystemExit:
        pass
    except BaseException as e:
        import io
        buf = io.StringIO()
        sys.print_exception(e, buf)
        for line in buf.getvalue().split('\\n'):
            if line and ', in _boardnet_run' not in line:
                print(line)
    finally:
        micropython.kbd_intr(-1)
del _os, _sys, _Flash, _Machine
`;

function runPython(code) {
  try {
    mp.runPython(code);
  } catch (e) {
    // runPython reports a None result as "NULL object"; real errors are printed by
    // the Python code itself.
    if (e.name === 'PythonError') {
      emit(`${e.message}\r\n`);
      process.stderr.write(`board: ${e.message}\n`);
    }
  }
}

async function loadInterpreter() {
  if (hostfs) hostfs.closeAll();
  mp = await mpModule.loadMicroPython({ linebuffer: false });
  const FS = mp.FS;
  hostfs = makeHostFS(FS, fsDir);
  FS.mkdir('/flash');
  FS.mount(hostfs, {}, '/flash');
  FS.streams[0].stream_ops = {
    ...FS.streams[0].stream_ops,
    read: stdinRead,
    poll: () => (available() > 0 ? 1 : 0) | 4, // POLLIN | POLLOUT
  };
  for (const fd of [1, 2]) {
    FS.streams[fd].stream_ops = { ...FS.streams[fd].stream_ops, write: stdoutWrite };
  }
  mp.registerJsModule('_boardnet_board', {
    reset: () => requestReset('hard'),
    soft_reset: () => requestReset('soft'),
    loop: handOver,
  });
  runPython(SETUP);
}

// This build (the pyscript variant: MICROPY_GC_SPLIT_HEAP_AUTO) collects garbage only
// when the outermost call from JavaScript returns, where no pointer can hide in the C
// stack; gc_collect(), gc.collect() included, only sets a flag (ports/webassembly/main.c).
// A program that never returns, a serve loop, would grow the heap until WebAssembly memory
// runs out. So it may hand its loop over, `_boardnet_board.loop(step)`, and return: step()
// is then called from here, at the top level, until it returns false or raises, and each
// call's garbage is collected when it returns. What the REPL prints after the command that
// handed over (its prompt) is held back until the loop ends, as if the command still ran.
let handover = null;

function handOver(step) {
  if (handover || typeof step !== 'function') return false;
  handover = step;
  held = [];
  return true;
}

function setInterruptChar(c) {
  runPython(`import micropython\nmicropython.kbd_intr(${c})`);
}

function runHandedOver() {
  const step = handover;
  const after = Buffer.concat(held);
  held = null;
  let error = '';
  setInterruptChar(CTRL_C); // as while a REPL command runs
  try {
    while (step() === true && !resetRequest);
  } catch (e) {
    if (e.name !== 'PythonError') throw e;
    error = e.message;
  }
  setInterruptChar(-1);
  handover = null;
  if (resetRequest) return;
  if (mode === MODE_RAW) {
    // end of output, the exception, end of error output, prompt
    emit(after.subarray(0, 1));
    emit(error);
    emit(after.subarray(1));
  } else {
    emit(error);
    emit(after);
  }
}

function requestReset(kind) {
  resetRequest = kind;
  // Unwind the running code; what it prints on the way out is not shown (the
  // board is already rebooting).
  muted = true;
  raiseKeyboardInterrupt();
}

let announced = false;
function announceBooted() {
  if (!announced) {
    announced = true;
    flushOut();
    parentPort.postMessage({ type: 'booted' });
  }
}

// Boot like rp2/esp32: boot.py always, main.py only when heading for the friendly
// REPL, then the prompt of the current REPL mode.
async function powerOn({ runMain, note = '' }) {
  for (;;) {
    resetRequest = null;
    muted = false;
    await loadInterpreter();
    if (note) {
      emit(note); // why the bridge replaced the interpreter
      note = '';
    }
    runPython("_boardnet_run('boot.py')");
    if (!resetRequest && runMain && mode === MODE_FRIENDLY) {
      if (fs.existsSync(path.join(fsDir, 'main.py'))) announceBooted();
      runPython("_boardnet_run('main.py')");
      if (handover) runHandedOver();
    }
    runPython('del _boardnet_run');
    if (resetRequest) {
      runMain = true;
      if (resetRequest === 'hard') {
        setMode(MODE_FRIENDLY);
        drop(available());
      }
      else emit('MPY: soft reboot\r\n');
      muted = false;
      continue;
    }
    break;
  }
  if (mode === MODE_FRIENDLY) {
    mp.replInit(); // prints the banner and the prompt
  } else {
    // replInit always starts friendly; switch quietly and print what a board prints
    // when it comes back from a soft reset in raw mode.
    muted = true;
    mp.replInit();
    mp.replProcessChar(CTRL_A);
    muted = false;
    emit('raw REPL; CTRL-B to exit\r\n>');
    rawLineLen = 0;
  }
  announceBooted();
  flushOut();
}

// Feed one byte to the event-driven REPL, keeping track of its mode.
function feed(c) {
  let ret;
  if (mode === MODE_FRIENDLY && c === CTRL_A) {
    tap = [];
    ret = mp.replProcessChar(c);
    if (Buffer.from(tap).includes('raw REPL; CTRL-B to exit')) {
      setMode(MODE_RAW);
      rawLineLen = 0;
    }
    tap = null;
  } else {
    ret = mp.replProcessChar(c);
    if (mode === MODE_RAW) {
      if (c === CTRL_B) setMode(MODE_FRIENDLY);
      else if (c === CTRL_A || c === CTRL_C || c === CTRL_D) rawLineLen = 0;
      else rawLineLen++;
    }
  }
  return ret;
}

// Raw-paste mode, as mpremote drives it: "\x05A\x01" -> "R\x01" + window, then code
// with flow control, ended by Ctrl-D; the code then runs like a raw REPL command.
function rawPaste() {
  emit(Buffer.from([0x52, 0x01, PASTE_WINDOW & 0xff, PASTE_WINDOW >> 8, 0x01]));
  const code = [];
  let remain = PASTE_WINDOW;
  for (;;) {
    const c = take();
    if (c === CTRL_D) break;
    if (c === CTRL_C) {
      emit('\x04\x04KeyboardInterrupt: \r\n\x04>');
      return 0;
    }
    code.push(c);
    if (--remain === 0) {
      emit(Buffer.from([0x01])); // another window is free
      remain = PASTE_WINDOW;
    }
  }
  emit('\x04'); // end of data acknowledged
  for (const b of code) mp.replProcessChar(b);
  swallow = 2; // the raw REPL says "OK"; raw-paste does not
  const ret = mp.replProcessChar(CTRL_D);
  swallow = 0;
  rawLineLen = 0;
  return ret;
}

function handle(c) {
  if (mode === MODE_RAW && rawLineLen === 0 && c === CTRL_E) {
    const cmd = take();
    const end = take();
    if (end !== CTRL_A) {
      // not a raw-paste request: let the REPL see the bytes
      feed(CTRL_E);
      feed(cmd);
      return feed(end);
    }
    if (cmd !== 0x41) {
      emit('R\x00>');
      return 0;
    }
    return rawPaste();
  }
  return feed(c);
}

Atomics.store(ctl, CTL.BUSY, 1);
setMode(boot.mode);
await powerOn({ runMain: boot.runMain, note: boot.note });
for (;;) {
  const ret = handle(take());
  if (handover) runHandedOver();
  flushOut();
  if (resetRequest) {
    const kind = resetRequest;
    if (kind === 'hard') {
      // Input sent before the reboot goes nowhere, as when a board's USB drops.
      setMode(MODE_FRIENDLY);
      drop(available());
    } else {
      muted = false;
      emit('MPY: soft reboot\r\n');
    }
    await powerOn({ runMain: true });
  } else if (ret & PYEXEC_FORCED_EXIT) {
    emit('MPY: soft reboot\r\n');
    await powerOn({ runMain: true });
  }
}
