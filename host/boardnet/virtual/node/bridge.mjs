// The virtual MicroPython board's bridge: serves one pseudo-terminal.
//
//   node bridge.mjs --master-fd N --fs DIR --node-modules DIR
//                   [--slave-fd N] [--ready-fd N] [--lifeline]
//
// The launcher (boardnet.virtual.node) creates the pty pair and hands both ends over as
// inherited file descriptors; this process keeps the slave end open so that the
// master never sees EIO while no client has the port open. The main thread reads
// the master and fills a shared ring buffer; the interpreter runs in a worker
// (board.mjs) that may block on that buffer, and writes its output to the master.

import { Worker } from 'node:worker_threads';
import tty from 'node:tty';
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { CTL, RING_OFFSET, RING_SIZE, MODE_FRIENDLY, MODE_RAW } from './ring.mjs';

// A running program that has not taken a Ctrl-C after this long is stuck in code
// that never reaches an interrupt check (the WebAssembly VM has no periodic hook):
// the interpreter is then replaced, as a last resort.
const CTRL_C_GRACE_MS = 1500;

const { values: opt } = parseArgs({
  options: {
    'master-fd': { type: 'string' },
    'slave-fd': { type: 'string' },
    'ready-fd': { type: 'string' },
    fs: { type: 'string' },
    'node-modules': { type: 'string' },
    lifeline: { type: 'boolean', default: false },
  },
});
if (opt['master-fd'] === undefined || !opt.fs || !opt['node-modules']) {
  process.stderr.write('usage: node bridge.mjs --master-fd N --fs DIR --node-modules DIR ' +
    '[--slave-fd N] [--ready-fd N] [--lifeline]\n');
  process.exit(2);
}
const masterFd = Number(opt['master-fd']);
const fsDir = opt.fs;
fs.mkdirSync(fsDir, { recursive: true });
const nodeModules = opt['node-modules'];

const log = (msg) => process.stderr.write(`${new Date().toISOString()} bridge: ${msg}\n`);

const sab = new SharedArrayBuffer(RING_OFFSET + RING_SIZE);
const ctl = new Int32Array(sab, 0, CTL.SIZE);
const ring = new Uint8Array(sab, RING_OFFSET);
const MASK = RING_SIZE - 1;

let worker = null;
let replacing = false;
let stopping = false;

function startWorker(boot) {
  const w = new Worker(new URL('./board.mjs', import.meta.url), {
    workerData: { sab, masterFd, fsDir, nodeModules, boot },
  });
  w.on('message', (m) => {
    if (m.type === 'booted') signalReady();
  });
  w.on('error', (e) => log(`board error: ${e.stack || e}`));
  w.on('exit', (code) => {
    if (w !== worker || replacing || stopping) return;
    log(`board interpreter ended (exit ${code}); starting a new one`);
    worker = null;
    startWorker({
      runMain: false,
      mode: MODE_FRIENDLY,
      note: '\r\n[virtual board: the interpreter crashed and was restarted]\r\n',
    });
  });
  worker = w;
}

let ready = false;
function signalReady() {
  if (ready) return;
  ready = true;
  if (opt['ready-fd'] !== undefined) {
    const fd = Number(opt['ready-fd']);
    fs.writeSync(fd, 'ready\n');
    fs.closeSync(fd);
  } else {
    process.stdout.write('ready\n');
  }
}

async function interruptByReplacing(pos) {
  if (replacing || stopping) return;
  replacing = true;
  const mode = Atomics.load(ctl, CTL.MODE);
  log('Ctrl-C not taken by running code: replacing the interpreter');
  await worker.terminate();
  Atomics.store(ctl, CTL.TAIL, pos); // the Ctrl-C has been acted on
  Atomics.store(ctl, CTL.BUSY, 1);
  const note = mode === MODE_RAW
    // end of normal output, the exception, end of error output: what mpremote expects
    ? '\x04Traceback (most recent call last):\r\nKeyboardInterrupt: \r\n\x04'
    : '\r\nKeyboardInterrupt: (the virtual board restarted its interpreter)\r\n';
  replacing = false;
  startWorker({ runMain: false, mode, note });
}

// Copy host bytes into the ring; returns how many fitted.
function push(buf) {
  const head = Atomics.load(ctl, CTL.HEAD);
  const free = RING_SIZE - ((head - Atomics.load(ctl, CTL.TAIL)) | 0);
  const n = Math.min(free, buf.length);
  for (let i = 0; i < n; i++) {
    ring[(head + i) & MASK] = buf[i];
    if (buf[i] === 0x03) {
      const pos = (head + i + 1) | 0; // TAIL once this Ctrl-C has been consumed
      setTimeout(() => {
        const pendingCtrlC = ((Atomics.load(ctl, CTL.TAIL) - pos) | 0) < 0;
        if (pendingCtrlC && Atomics.load(ctl, CTL.BUSY) === 1) interruptByReplacing(pos);
      }, CTRL_C_GRACE_MS);
    }
  }
  Atomics.store(ctl, CTL.HEAD, (head + n) | 0);
  Atomics.notify(ctl, CTL.HEAD);
  return n;
}

const input = new tty.ReadStream(masterFd);
let backlog = null;
function drainBacklog() {
  backlog = backlog.subarray(push(backlog));
  if (backlog.length) {
    setTimeout(drainBacklog, 5);
  } else {
    backlog = null;
    input.resume();
  }
}
input.on('data', (buf) => {
  const n = push(buf);
  if (n < buf.length) {
    input.pause();
    backlog = buf.subarray(n);
    setTimeout(drainBacklog, 5);
  }
});
input.on('error', (e) => {
  log(`pty read failed: ${e.code || e}`);
  shutdown(1);
});

function shutdown(status = 0) {
  if (stopping) return;
  stopping = true;
  const done = () => process.exit(status);
  if (worker) worker.terminate().then(done, done);
  else done();
  setTimeout(done, 1000).unref();
}

for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(sig, () => shutdown(0));
if (opt.lifeline) {
  // The launcher holds the other end of our stdin: when it goes away, so do we.
  process.stdin.on('end', () => shutdown(0));
  process.stdin.on('error', () => shutdown(0));
  process.stdin.resume();
}

Atomics.store(ctl, CTL.BUSY, 1);
Atomics.store(ctl, CTL.MODE, MODE_FRIENDLY);
startWorker({ runMain: true, mode: MODE_FRIENDLY, note: '' });
