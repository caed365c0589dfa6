// UF2 files (https://github.com/microsoft/uf2): 512-byte blocks, each carrying up to
// 476 bytes for one target address. Only blocks for the RP2040's flash are used.

const MAGIC_START0 = 0x0a324655;
const MAGIC_START1 = 0x9e5d5157;
const MAGIC_END = 0x0ab16f30;
const FLAG_NOT_MAIN_FLASH = 0x00000001;
const FLAG_FAMILY_ID_PRESENT = 0x00002000;
const FAMILY_RP2040 = 0xe48bff56;
const BLOCK_SIZE = 512;
const MAX_PAYLOAD = 476;

export const FLASH_BASE = 0x10000000;
export const SECTOR_SIZE = 4096;

/** The flash blocks of a UF2 file, as [{ offset (from the start of flash), data }]. */
export function parseUf2(file, flashSize) {
  if (file.length === 0 || file.length % BLOCK_SIZE !== 0) {
    throw new Error(`not a UF2 file: ${file.length} bytes is not a multiple of ${BLOCK_SIZE}`);
  }
  const view = new DataView(file.buffer, file.byteOffset, file.length);
  const blocks = [];
  for (let pos = 0; pos < file.length; pos += BLOCK_SIZE) {
    const word = (i) => view.getUint32(pos + i, true);
    if (word(0) !== MAGIC_START0 || word(4) !== MAGIC_START1 || word(508) !== MAGIC_END) {
      throw new Error(`not a UF2 file: bad magic numbers in block at byte ${pos}`);
    }
    const flags = word(8);
    if (flags & FLAG_NOT_MAIN_FLASH) continue;
    if (flags & FLAG_FAMILY_ID_PRESENT && word(28) !== FAMILY_RP2040) continue; // another chip's part
    const addr = word(12);
    const size = word(16);
    if (size > MAX_PAYLOAD) throw new Error(`bad UF2 block at byte ${pos}: payload of ${size} bytes`);
    const offset = addr - FLASH_BASE;
    if (offset < 0 || offset + size > flashSize) {
      throw new Error(`UF2 block at byte ${pos} targets 0x${addr.toString(16)}, outside the ` +
        `${flashSize >> 20} MiB flash (RAM-only UF2 files are not supported)`);
    }
    blocks.push({ offset, data: file.subarray(pos + 32, pos + 32 + size) });
  }
  if (blocks.length === 0) throw new Error('the UF2 file has no blocks for RP2040 flash');
  return blocks;
}

/**
 * Writes the blocks into `flash` the way the boot ROM's UF2 loader does: every 4 KiB sector
 * that a block touches is erased first, everything else (a littlefs partition, say) is kept.
 * Returns whether anything changed.
 */
export function programUf2(flash, blocks) {
  const before = flash.slice();
  const erased = new Set();
  for (const { offset, data } of blocks) {
    for (let s = Math.floor(offset / SECTOR_SIZE); s * SECTOR_SIZE < offset + data.length; s++) {
      if (erased.has(s)) continue;
      erased.add(s);
      flash.fill(0xff, s * SECTOR_SIZE, (s + 1) * SECTOR_SIZE);
    }
  }
  for (const { offset, data } of blocks) flash.set(data, offset);
  return Buffer.compare(before, flash) !== 0;
}
