// The Pico's 2 MiB QSPI flash: the file it persists in, and the boot ROM routines that
// change it. rp2040js ignores flash commands sent through the SSI, so the ROM's
// flash_range_erase / flash_range_program (which the pico-sdk's hardware_flash, hence
// MicroPython's littlefs, call) are replaced by code that edits the flash array directly.

import fs from 'node:fs';
import path from 'node:path';
import { SECTOR_SIZE } from './uf2.mjs';

export const FLASH_SIZE = 2 * 1024 * 1024;
const SETTLE_MS = 500; // save this long after the last erase/program...
const MAX_DEFER_MS = 5000; // ...but not later than this after the first unsaved change

export class FlashImage {
  /** path: the image file, or undefined to keep the flash in memory only. */
  constructor(file, log) {
    this.file = file;
    this.log = log;
    this.bytes = new Uint8Array(FLASH_SIZE).fill(0xff);
    this.firstUnsaved = 0;
    this.timer = null;
    this.source = null; // () => the live flash contents (the running chip's)
  }

  load() {
    if (!this.file || !fs.existsSync(this.file)) return;
    const data = fs.readFileSync(this.file);
    if (data.length !== FLASH_SIZE) {
      this.log(`flash image ${this.file} has ${data.length} bytes, expected ${FLASH_SIZE}; using what fits`);
    }
    this.bytes.set(data.subarray(0, FLASH_SIZE));
  }

  /** Called after each flash change: saves once the writes have settled. */
  changed() {
    if (!this.file) return;
    const now = Date.now();
    if (!this.firstUnsaved) this.firstUnsaved = now;
    clearTimeout(this.timer);
    const delay = Math.min(SETTLE_MS, this.firstUnsaved + MAX_DEFER_MS - now);
    this.timer = setTimeout(() => this.save(), Math.max(0, delay));
  }

  /** Writes the image atomically (temporary file + rename), if there is anything unsaved. */
  save() {
    clearTimeout(this.timer);
    this.timer = null;
    if (!this.file || !this.firstUnsaved) return;
    const data = this.source ? this.source() : this.bytes;
    const tmp = path.join(path.dirname(this.file), `.${path.basename(this.file)}.${process.pid}.tmp`);
    try {
      fs.writeFileSync(tmp, data);
      fs.renameSync(tmp, this.file);
      this.firstUnsaved = 0;
    } catch (e) {
      this.log(`could not save the flash image ${this.file}: ${e.message}`);
      try { fs.unlinkSync(tmp); } catch { /* not created */ }
    }
  }
}

// Boot ROM: a 16-bit pointer at 0x14 leads to the table of public functions, pairs of
// (two-letter code, 16-bit address), ended by a zero code.
const ROM_FUNC_TABLE_PTR = 0x14;
const romCode = (s) => s.charCodeAt(0) | (s.charCodeAt(1) << 8);

function romFunction(rom, code) {
  for (let p = rom.getUint16(ROM_FUNC_TABLE_PTR, true); ; p += 4) {
    const c = rom.getUint16(p, true);
    if (c === 0) throw new Error(`boot ROM has no function '${code}'`);
    if (c === romCode(code)) return rom.getUint16(p + 2, true) & ~1;
  }
}

const BKPT = 0xbe00;
const HOOK_ERASE = 0xe0;
const HOOK_PROGRAM = 0xe1;

/**
 * Puts a BKPT at the entry of flash_range_erase ('RE') and flash_range_program ('RP') in the
 * chip's boot ROM copy; `mcu.onBreak` must pass BKPT codes to the returned handler. A breakpoint
 * costs nothing until reached, unlike a PC check on every instruction.
 * onChange() is called after each change.
 */
export function hookFlashRoutines(mcu, onChange) {
  const rom = new DataView(mcu.bootrom.buffer, mcu.bootrom.byteOffset, mcu.bootrom.byteLength);
  rom.setUint16(romFunction(rom, 'RE'), BKPT | HOOK_ERASE, true);
  rom.setUint16(romFunction(rom, 'RP'), BKPT | HOOK_PROGRAM, true);
  const flash = mcu.flash;
  const { registers } = mcu.core;
  const range = (addr, count) => {
    const start = addr & 0xffffff; // a flash offset; drop any XIP base
    return [Math.min(start, FLASH_SIZE), Math.min(start + count, FLASH_SIZE)];
  };
  return (code) => {
    if (code === HOOK_ERASE) {
      // flash_range_erase(addr, count, block_size, block_cmd): whole 4 KiB sectors
      const [start, end] = range(registers[0], registers[1]);
      const s = start - (start % SECTOR_SIZE);
      const e = Math.min(FLASH_SIZE, Math.ceil(end / SECTOR_SIZE) * SECTOR_SIZE);
      flash.fill(0xff, s, e);
    } else if (code === HOOK_PROGRAM) {
      // flash_range_program(addr, data, count): programming can only clear bits
      const [start, end] = range(registers[0], registers[2]);
      const src = registers[1];
      for (let i = 0; i < end - start; i++) flash[start + i] &= mcu.readUint8(src + i);
    } else {
      return false;
    }
    mcu.core.PC = mcu.core.LR & ~1; // return to the caller
    onChange();
    return true;
  };
}
