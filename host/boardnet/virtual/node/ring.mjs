// Layout of the buffer shared by the bridge (main thread) and the board (worker).
// An Int32 control block, then a power-of-two ring of bytes from the host.
// HEAD and TAIL count bytes ever written / consumed (wrapping int32).

export const CTL = {
  HEAD: 0, // written by the main thread
  TAIL: 1, // advanced by the worker
  BUSY: 2, // 1 while the worker runs Python, 0 while it waits for input
  MODE: 3, // REPL mode of the board (MODE_FRIENDLY / MODE_RAW)
  SIZE: 16,
};
export const RING_OFFSET = CTL.SIZE * 4;
export const RING_SIZE = 1 << 20;
export const MODE_FRIENDLY = 0;
export const MODE_RAW = 1;
