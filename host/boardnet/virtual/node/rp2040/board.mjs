// One emulated Raspberry Pi Pico: an rp2040js chip with its boot ROM and flash, run in
// slices on the event loop, rebuilt from its flash when the watchdog resets it.
//
// Time: while the core executes, the emulated clock advances by its cycle count (at clk_sys,
// 125 MHz once the firmware has set up its clocks),
// so time.ticks_us() measures emulated work. While the core waits (WFI/WFE), the host
// sleeps and the emulated clock follows the wall clock, so time.sleep(1) takes about 1 s
// and an idle board costs no CPU. Waits shorter than SLACK_NS are not slept but skipped (the
// clock may run up to SLACK_NS ahead of the wall); USB transfers are full of 10 us waits,
// which would otherwise each cost a host timer of at least 1 ms.

import { FLASH_SIZE, hookFlashRoutines } from './flash.mjs';

const SLICE_MS = 10; // run this long before yielding to the event loop (I/O)
const BATCH = 4096; // instructions between looks at the wall clock
const SLACK_NS = 4e6;
const WATCHDOG_BASE = 0x40058000;
const BOOT2_SIZE = 256;
const BOOT2_RAM = 0x20041f00; // where the boot ROM copies the second-stage bootloader
const WATCHDOG_BOOT_MAGIC = 0xb007c0d3;
const VREG_AND_CHIP_RESET = 0x40064; // key in mcu.peripherals (address >>> 14 << 2)
const CHIP_RESET_HAD_POR = 1 << 8;

// CRC-32/MPEG-2, the boot ROM's check of boot2 (its last 4 bytes hold the CRC of the rest).
function crc32mpeg2(bytes) {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b << 24;
    for (let k = 0; k < 8; k++) crc = crc & 0x80000000 ? (crc << 1) ^ 0x04c11db7 : crc << 1;
  }
  return crc >>> 0;
}

/**
 * Starts the core the way the boot ROM would after its reset code. The ROM reads boot2 (the
 * flash's first 256 bytes) over the SSI, which rp2040js does not model, so its two ways on
 * are taken here: the watchdog's boot vector (watchdog_reboot() with a PC), else boot2
 * copied to SRAM, CRC-checked and called with LR = 0 (boot2 then enables XIP and jumps
 * through the vector table at 0x10000100). Without a valid boot2 the ROM itself runs from
 * its reset vector, fails to boot from flash and enters USB BOOTSEL mode, as a real one does.
 * Returns false in that case.
 */
function romBoot(mcu, watchdog) {
  const { core } = mcu;
  const [s4, s5, s6, s7] = watchdog.scratchData.subarray(4, 8);
  if (s4 === WATCHDOG_BOOT_MAGIC && ((s5 ^ s7) + s4) >>> 0 === 0) {
    watchdog.scratchData[4] = 0;
    core.SP = s6;
    core.PC = s7 & ~1;
    return true;
  }
  const boot2 = mcu.flash.subarray(0, BOOT2_SIZE);
  const stored = new DataView(boot2.buffer, boot2.byteOffset).getUint32(BOOT2_SIZE - 4, true);
  if (crc32mpeg2(boot2.subarray(0, BOOT2_SIZE - 4)) !== stored) return false;
  mcu.sram.set(boot2, BOOT2_RAM - 0x20000000);
  core.SP = mcu.readUint32(0); // the ROM's own stack (its initial SP), just below boot2
  core.LR = 0;
  core.PC = BOOT2_RAM;
  return true;
}

/**
 * VREG_AND_CHIP_RESET, which rp2040js leaves unimplemented (reads give 0xffffffff). The boot
 * ROM reads CHIP_RESET first thing: with PSM_RESTART_FLAG (bit 24) set it parks the core in
 * a WFI loop for a debugger. HAD_POR after power-on and nothing after a watchdog reset is
 * what makes machine.reset_cause() tell the two apart.
 */
class ChipReset {
  constructor(chipReset) {
    this.regs = [0x10b1, 0x91, chipReset]; // VREG (1.10 V, regulation OK), BOD, CHIP_RESET
  }

  readUint32(offset) {
    return offset <= 8 ? this.regs[offset >> 2] : 0;
  }

  // rp2040js' peripheral interface; atomicType: the register alias written (RP2040
  // datasheet 2.1.2): 0 normal, 1 XOR, 2 set bits, 3 clear bits.
  writeUint32Atomic(offset, value, atomicType) {
    if (offset > 8) return;
    const old = this.regs[offset >> 2];
    const v = [value, old ^ value, old | value, old & ~value][atomicType];
    if (offset === 0) this.regs[0] = (v & 0xf3) | 0x1000;
    else if (offset === 4) this.regs[1] = v & 0xf1;
    else this.regs[2] = (old & ~(1 << 24)) | (v & (1 << 24));
  }
}

const wallNanos = () => performance.now() * 1e6;

export class Board {
  /**
   * rp2040js: the emulator module; bootrom: the 16 KiB boot ROM; flash: the initial 2 MiB;
   * host: the CdcHost to attach to each chip; chipLog: rp2040js' logger;
   * onFlashChange(): after each flash erase/program; log(msg): the bridge's log.
   */
  constructor({ rp2040js, bootrom, flash, host, chipLog, onFlashChange, log }) {
    this.RP2040 = rp2040js.RP2040;
    this.bootrom = new Uint32Array(bootrom.buffer.slice(bootrom.byteOffset, bootrom.byteOffset + bootrom.length));
    this.host = host;
    this.chipLog = chipLog;
    this.onFlashChange = onFlashChange;
    this.log = log;
    this.rebootPending = false;
    this.timer = null; // the pending slice: a setImmediate or setTimeout handle
    this.timerIsTimeout = false;
    this.stopped = false;
    this.breakpoints = new Set(); // BKPT addresses already reported
    this.boot(flash, null);
  }

  /** The live 2 MiB of flash. */
  get flash() {
    return this.mcu.flash.subarray(0, FLASH_SIZE);
  }

  boot(flash, oldWatchdog) {
    const mcu = new this.RP2040();
    mcu.logger = this.chipLog;
    mcu.peripherals[VREG_AND_CHIP_RESET] = new ChipReset(oldWatchdog ? 0 : CHIP_RESET_HAD_POR);
    mcu.loadBootrom(this.bootrom); // also resets the chip and erases its flash
    mcu.flash.set(flash);
    const flashHook = hookFlashRoutines(mcu, this.onFlashChange);
    mcu.onBreak = (code) => {
      if (flashHook(code)) return;
      // A real chip without a debugger would take a HardFault; panic() loops on BKPT.
      const pc = mcu.core.PC - 2;
      if (this.breakpoints.has(pc)) return;
      this.breakpoints.add(pc);
      this.log(`firmware hit BKPT #${code} at 0x${pc.toString(16)} (a panic?)`);
    };
    const watchdog = mcu.findPeripheral(WATCHDOG_BASE);
    if (oldWatchdog) {
      // A watchdog reset keeps the scratch registers and the reason (the boot ROM reads them).
      watchdog.scratchData.set(oldWatchdog.scratchData);
      watchdog.reason = oldWatchdog.reason;
    }
    watchdog.onWatchdogTrigger = () => {
      this.rebootPending = true;
      // The reset stops the watchdog; left running, a zero LOAD would fire again at once, forever.
      watchdog.alarm.enable = false;
      watchdog.timer.enable = false;
    };
    if (!romBoot(mcu, watchdog)) {
      this.log('no valid second-stage bootloader (boot2) at the start of flash: the boot ROM will enter USB BOOTSEL mode');
    }
    this.mcu = mcu;
    this.watchdog = watchdog;
    this.host.attach(mcu);
    // The emulated clock tied to the wall clock (see the top): emulated ns = wall ns + anchor.
    this.anchor = mcu.clock.nanos - wallNanos();
  }

  reboot() {
    this.rebootPending = false;
    this.log('watchdog reset: rebooting from flash');
    this.host.clearInput();
    this.boot(this.flash.slice(), this.watchdog);
  }

  start() {
    this.schedule(0);
  }

  stop() {
    this.cancel();
    this.stopped = true;
  }

  /**
   * For events from outside (host bytes, DTR): first brings an idle chip's clock up to the
   * wall clock, so the event happens at the right emulated time, then wakes the loop.
   */
  inject(fn) {
    const { core, clock } = this.mcu;
    if (core.waiting) {
      const late = wallNanos() + this.anchor - clock.nanos;
      if (late > 0) clock.tick(Math.min(late, this.nanosToNextAlarm()));
    }
    fn();
    if (this.timer === null || this.timerIsTimeout) this.schedule(0); // sleeping: wake up now
  }

  nanosToNextAlarm() {
    const { clock } = this.mcu;
    return clock.nextAlarm ? Math.max(0, clock.nextAlarm.nanos - clock.nanos) : Infinity;
  }

  cancel() {
    if (this.timer === null) return;
    if (this.timerIsTimeout) clearTimeout(this.timer);
    else clearImmediate(this.timer);
    this.timer = null;
    this.timerIsTimeout = false;
  }

  /** Runs the next slice after `ms` (0: as soon as pending I/O has been handled); Infinity: never. */
  schedule(ms) {
    this.cancel();
    if (this.stopped || ms === Infinity) return;
    this.timerIsTimeout = ms > 0;
    this.timer = ms > 0 ? setTimeout(() => this.slice(), Math.ceil(ms)) : setImmediate(() => this.slice());
  }

  slice() {
    this.timer = null;
    this.timerIsTimeout = false;
    const deadline = performance.now() + SLICE_MS;
    for (;;) {
      if (this.rebootPending) this.reboot();
      const { core, clock } = this.mcu;
      if (core.waiting) {
        const gap = this.nanosToNextAlarm();
        const now = clock.nanos;
        const wallNow = wallNanos() + this.anchor; // where the emulated clock should be
        if (now + gap <= wallNow + SLACK_NS) {
          clock.tick(gap); // the next event is due (or close): go there
        } else {
          if (wallNow > now) clock.tick(wallNow - now); // catch up with the wall, short of the event
          this.schedule((now + gap - Math.max(now, wallNow)) / 1e6); // sleep until the event is due
          return;
        }
      } else {
        this.execute();
        // While busy, emulated time runs slower than the wall; idle time is tied to the wall
        // from here on, not caught up.
        this.anchor = Math.min(this.anchor, clock.nanos - wallNanos());
      }
      if (performance.now() >= deadline) {
        this.schedule(0);
        return;
      }
    }
  }

  execute() {
    const { core, clock } = this.mcu;
    const cycleNanos = 1e9 / this.mcu.clkSys;
    for (let i = 0; i < BATCH && !core.waiting && !this.rebootPending; i++) {
      clock.tick(core.executeInstruction() * cycleNanos);
    }
  }
}
