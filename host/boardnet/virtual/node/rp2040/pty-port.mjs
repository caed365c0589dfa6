// The master side of the pseudo-terminal that stands in for /dev/ttyACM0.
//
// Whether a client (pyserial, mpremote, a terminal) has the port open decides DTR, as on a
// real host. The only sign of it on the master is the hang-up state: with no process
// holding the slave, poll() reports POLLHUP and read() fails with EIO; with one, read()
// blocks until there is data. Node has no poll(), so the master (a blocking descriptor, as
// os.openpty() makes it) is read with ordinary blocking reads on libuv's thread pool: EIO
// means "no client" (retried every PROBE_MS), a read still pending after PRESENT_MS means
// "a client holds the port open", and a client closing the port ends a pending read with
// EIO at once. This only works if this process does not hold the slave itself, so the
// bridge closes its copy at start.
//
// Output goes out with one blocking write at a time on the thread pool, in order. While no
// client holds the port, output is dropped (a real host reads nothing from a closed port).
// While a client holds it but does not read (say, while it writes a long burst), output
// waits in a queue, as a real host's tty buffer holds it; beyond OUT_LIMIT bytes, nobody
// is reading and further output is dropped until the pending write completes.
//
// Node joins its thread pool on exit, so a read or write still blocked there would hang
// process.exit(): close() first makes them return, through the slave side.

import fs from 'node:fs';

const READ_SIZE = 65536;
const PROBE_MS = 100;
const PRESENT_MS = 40;
const POLL_NONBLOCKING_MS = 5;
const OUT_LIMIT = 1 << 20;
const RELEASE_TIMEOUT_MS = 1000;

export class PtyPort {
  /**
   * onData(bytes): bytes a client wrote. onPresence(present): a client opened (true) or
   * closed (false) the port. onError(err): the master can no longer be used.
   */
  constructor(fd, { onData, onPresence, onError }) {
    this.fd = fd;
    this.onData = onData;
    this.onPresence = onPresence;
    this.onError = onError;
    this.present = false;
    this.closing = false;
    this.reading = false; // a read is pending on the thread pool
    this.readSeq = 0;
    this.writing = false; // a write is pending on the thread pool
    this.retry = null; // the timer of the next read when none is pending
    this.out = [];
    this.outBytes = 0;
    this.readBuf = Buffer.alloc(READ_SIZE); // one read at a time
  }

  /** /dev/pts/N of this master (Linux: the pty number is in the descriptor's fdinfo). */
  slavePath() {
    const info = fs.readFileSync(`/proc/self/fdinfo/${this.fd}`, 'utf8');
    const index = /^tty-index:\s*(\d+)/m.exec(info);
    if (!index) throw new Error(`descriptor ${this.fd} is not a pty master`);
    return `/dev/pts/${index[1]}`;
  }

  start() {
    this.read();
  }

  setPresent(present) {
    if (present === this.present) return;
    this.present = present;
    if (!present) this.discard();
    this.onPresence(present);
  }

  read() {
    this.retry = null;
    if (this.closing) return;
    this.reading = true;
    const seq = ++this.readSeq;
    // Checked once more after the event loop's I/O phase: a read that ended while this
    // process was busy must not count as a client.
    const pending = setTimeout(() => setImmediate(() => {
      if (this.reading && this.readSeq === seq) this.setPresent(true);
    }), PRESENT_MS);
    fs.read(this.fd, this.readBuf, 0, READ_SIZE, null, (err, n) => {
      this.reading = false;
      clearTimeout(pending);
      if (this.closing) return;
      if (err?.code === 'EIO' || (!err && n === 0)) {
        this.setPresent(false);
        this.retry = setTimeout(() => this.read(), PROBE_MS);
      } else if (err?.code === 'EAGAIN') {
        // A non-blocking master (not what the launcher passes): poll it instead.
        this.setPresent(true);
        this.retry = setTimeout(() => this.read(), POLL_NONBLOCKING_MS);
      } else if (err) {
        this.onError(err);
      } else {
        this.setPresent(true);
        this.onData(Buffer.from(this.readBuf.subarray(0, n))); // a copy: the buffer is reused
        this.read();
      }
    });
  }

  write(bytes) {
    if (!this.present || this.closing || this.outBytes + bytes.length > OUT_LIMIT) return;
    this.out.push(bytes);
    this.outBytes += bytes.length;
    if (!this.writing) this.flush();
  }

  discard() {
    this.out = [];
    this.outBytes = 0;
  }

  flush() {
    const buf = Buffer.concat(this.out); // outBytes keeps counting it until written
    this.out = [];
    this.writing = true;
    fs.write(this.fd, buf, 0, buf.length, null, (err, n) => {
      this.writing = false;
      if (err || !this.present || this.closing) {
        this.discard(); // EIO: the client has gone; EAGAIN: a non-blocking master, full
        return;
      }
      this.outBytes -= n;
      if (n < buf.length) this.out.unshift(buf.subarray(n));
      if (this.out.length && this.present && !this.closing) this.flush();
    });
  }

  /**
   * Stops all I/O. A read pending on the thread pool gets a byte written into the slave,
   * a write gets the slave drained. Resolves to whether nothing is left pending.
   */
  close() {
    this.closing = true;
    clearTimeout(this.retry);
    if (!this.reading && !this.writing) return Promise.resolve(true);
    let slave;
    try {
      slave = fs.openSync(this.slavePath(), fs.constants.O_RDWR | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK);
    } catch {
      return Promise.resolve(false);
    }
    const sink = Buffer.alloc(READ_SIZE);
    const started = Date.now();
    return new Promise((resolve) => {
      const poke = () => {
        try {
          if (this.reading) fs.writeSync(slave, '\n');
          while (this.writing && fs.readSync(slave, sink) > 0);
        } catch { /* EAGAIN: drained for now */ }
        const done = !this.reading && !this.writing;
        if (done || Date.now() - started > RELEASE_TIMEOUT_MS) {
          fs.closeSync(slave);
          resolve(done);
        } else {
          setTimeout(poke, 5);
        }
      };
      poke();
    });
  }
}
