// The emulated Raspberry Pi Pico's bridge: runs real RP2040 firmware (a UF2 file) on the
// rp2040js emulator and serves its USB CDC serial port on a pseudo-terminal, which pyserial
// and mpremote use like a real Pico's /dev/ttyACM0.
//
//   node rp2040/bridge.mjs --master-fd N [--slave-fd N] [--ready-fd N] [--lifeline]
//                   --bootrom PATH --firmware UF2 [--flash-image PATH] [--log-usb]
//                   [--node-modules DIR]
//
// The launcher creates the pty pair and passes both ends as inherited descriptors. Once the
// device has enumerated over USB, "ready" is written to --ready-fd (or stdout). Everything
// else this process says (its own log, the emulator's warnings) goes to stderr.
// --node-modules: the folder holding the rp2040js package, when it is not next to this script.

import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { Board } from './board.mjs';
import { CdcHost } from './cdc-host.mjs';
import { FLASH_SIZE, FlashImage } from './flash.mjs';
import { PtyPort } from './pty-port.mjs';
import { parseUf2, programUf2 } from './uf2.mjs';

const READY_TIMEOUT_MS = 20000;
const HANG_S = 30;
const BOOTROM_SIZE = 16384;

const log = (msg) => process.stderr.write(`${new Date().toISOString()} rp2040: ${msg}\n`);

const USAGE = 'usage: node rp2040/bridge.mjs --master-fd N [--slave-fd N] [--ready-fd N] [--lifeline] ' +
  '--bootrom PATH --firmware UF2 [--flash-image PATH] [--log-usb] [--node-modules DIR]';
let opt;
try {
  ({ values: opt } = parseArgs({
    options: {
      'master-fd': { type: 'string' },
      'slave-fd': { type: 'string' },
      'ready-fd': { type: 'string' },
      lifeline: { type: 'boolean', default: false },
      bootrom: { type: 'string' },
      firmware: { type: 'string' },
      'flash-image': { type: 'string' },
      'log-usb': { type: 'boolean', default: false },
      'node-modules': { type: 'string' },
    },
  }));
} catch (e) {
  process.stderr.write(`${e.message}\n${USAGE}\n`);
  process.exit(2);
}
if (opt['master-fd'] === undefined || !opt.bootrom || !opt.firmware) {
  process.stderr.write(`${USAGE}\n`);
  process.exit(2);
}
const fail = (msg) => {
  log(msg);
  process.exit(1);
};

// rp2040js logs unimplemented registers and the like, often from tight loops: keep the
// first few of each kind of message (numbers aside), on stderr (its ConsoleLogger prints
// debug/info on stdout and throws on errors, which would stop the emulation).
const MAX_REPEATS = 3;
const MAX_KINDS = 1000;
const seen = new Map();
function chipMessage(level, component, msg) {
  const kind = `${component}: ${msg}`.replace(/0x-?[0-9a-f]+|\d+/gi, '#');
  const n = (seen.get(kind) ?? 0) + 1;
  if (n === 1 && seen.size >= MAX_KINDS) return;
  seen.set(kind, n);
  if (n <= MAX_REPEATS) {
    log(`[${level} ${component}: ${msg}]${n === MAX_REPEATS ? ' (more like this not shown)' : ''}`);
  }
}
const chipLog = {
  debug() {},
  info() {},
  warn: (component, msg) => chipMessage('warn', component, msg),
  error: (component, msg) => chipMessage('error', component, msg),
};

// ------------------------------------------------------------------ boot ROM, firmware, flash

let rp2040js;
try {
  rp2040js = await import(opt['node-modules']
    ? pathToFileURL(path.join(opt['node-modules'], 'rp2040js/dist/esm/index.js')).href
    : 'rp2040js');
} catch (e) {
  fail(`cannot load rp2040js: ${e.message}`);
}
let bootrom;
let blocks;
try {
  bootrom = fs.readFileSync(opt.bootrom);
  if (bootrom.length !== BOOTROM_SIZE) throw new Error(`${bootrom.length} bytes, expected ${BOOTROM_SIZE}`);
} catch (e) {
  fail(`bad boot ROM ${opt.bootrom}: ${e.message}`);
}
try {
  blocks = parseUf2(fs.readFileSync(opt.firmware), FLASH_SIZE);
} catch (e) {
  fail(`bad firmware ${opt.firmware}: ${e.message}`);
}
const image = new FlashImage(opt['flash-image'], log);
try {
  image.load();
} catch (e) {
  fail(`cannot read the flash image: ${e.message}`);
}
if (programUf2(image.bytes, blocks)) image.changed();

// ------------------------------------------------------------------ wiring

let ready = false;
function signalReady() {
  if (ready) return;
  ready = true;
  clearTimeout(readyTimer);
  log(`ready: the device enumerated after ${Math.round(performance.now())} ms`);
  if (opt['ready-fd'] === undefined) {
    process.stdout.write('ready\n');
    return;
  }
  const fd = Number(opt['ready-fd']);
  try {
    fs.writeSync(fd, 'ready\n');
    fs.closeSync(fd);
  } catch (e) {
    log(`cannot write to --ready-fd: ${e.code || e.message}`);
  }
}

let port = null;
const host = new CdcHost({
  onConfigured: signalReady,
  onSerialData: (bytes) => port.write(bytes),
  log,
  trace: opt['log-usb'] ? (msg) => log(`usb: ${msg}`) : undefined,
});
let board;
try {
  board = new Board({
    rp2040js,
    bootrom,
    flash: image.bytes,
    host,
    chipLog,
    onFlashChange: () => image.changed(),
    log,
  });
} catch (e) {
  fail(`cannot start the emulated chip: ${e.message}`);
}
image.source = () => board.flash;

port = new PtyPort(Number(opt['master-fd']), {
  onData: (bytes) => board.inject(() => host.send(bytes)),
  onPresence: (present) => {
    if (opt['log-usb']) log(`usb: a client ${present ? 'opened' : 'closed'} the port`);
    board.inject(() => host.setDtrRts(present));
  },
  onError: (err) => {
    log(`pty master failed: ${err.code || err.message}`);
    shutdown(1);
  },
});

let stopping = false;
async function shutdown(status) {
  if (stopping) return;
  stopping = true;
  board.stop();
  image.save();
  if (!(await port.close())) {
    // process.exit() would wait forever for the blocked pty read or write (see pty-port.mjs)
    log('could not release the pty: ending with SIGKILL');
    process.kill(process.pid, 'SIGKILL');
  }
  process.exit(status);
}
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(sig, () => shutdown(0));
if (opt.lifeline) {
  // The launcher holds the other end of our stdin: when it goes away, so do we.
  process.stdin.on('end', () => shutdown(0));
  process.stdin.on('error', () => shutdown(0));
  process.stdin.resume();
}

// rp2040js can loop forever inside one clock step (a peripheral timer that firmware set to a
// zero period fires again at the same instant). The event loop then stops, and with it
// SIGTERM and --lifeline: a watcher thread ends such a process rather than leave it spinning.
const heartbeat = new Int32Array(new SharedArrayBuffer(4));
setInterval(() => Atomics.add(heartbeat, 0, 1), 1000).unref();
new Worker(`
  const fs = require('node:fs');
  const { workerData: { heartbeat, limit } } = require('node:worker_threads');
  let last = -1, still = 0;
  setInterval(() => {
    const beat = Atomics.load(heartbeat, 0);
    still = beat === last ? still + 1 : 0;
    last = beat;
    if (still >= limit) {
      fs.writeSync(2, new Date().toISOString() + ' rp2040: the emulator has been stuck for ' + limit + ' s: killing this process\\n');
      process.kill(process.pid, 'SIGKILL');
    }
  }, 1000);
`, { eval: true, workerData: { heartbeat, limit: HANG_S } }).unref();

const readyTimer = setTimeout(() => {
  log(`the firmware did not enumerate as a USB serial device within ${READY_TIMEOUT_MS / 1000} s`);
  shutdown(1);
}, READY_TIMEOUT_MS);

// Our copy of the slave would hide whether a client has the port open (see pty-port.mjs).
if (opt['slave-fd'] !== undefined) {
  try {
    fs.closeSync(Number(opt['slave-fd']));
  } catch (e) {
    fail(`bad --slave-fd: ${e.code || e.message}`);
  }
}
port.start();
board.start();
