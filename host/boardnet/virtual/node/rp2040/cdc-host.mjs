// The USB host side of the emulated Pico's CDC-ACM serial port: enumerates the device on
// rp2040js' device-mode USB controller, carries serial bytes both ways, and sets DTR/RTS.
//
// Unlike rp2040js' own USBCDC helper, host-to-device bytes wait in an unbounded queue until
// the firmware arms its OUT endpoint (nothing is ever dropped), and an OUT request with
// nothing queued is held, as a real host NAKs, instead of being answered with an empty
// packet (which would cost the firmware a USB interrupt every 10 us of emulated time).

const EP0_MAX_PACKET = 64;
const CONTROL_GAP_NS = 100_000; // between control transfers, as a host would leave
const DESC_DEVICE = 1;
const DESC_CONFIGURATION = 2;
const DESC_INTERFACE = 4;
const DESC_ENDPOINT = 5;
const CLASS_CDC = 0x02;
const SUBCLASS_ACM = 0x02;
const CLASS_CDC_DATA = 0x0a;
const TRANSFER_BULK = 2;
const REQ_SET_ADDRESS = 0x05;
const REQ_GET_DESCRIPTOR = 0x06;
const REQ_SET_CONFIGURATION = 0x09;
const REQ_SET_CONTROL_LINE_STATE = 0x22;
const LINE_DTR = 1;
const LINE_RTS = 2;

function setupPacket(requestType, request, value, index, length) {
  return Uint8Array.of(requestType, request, value & 0xff, value >> 8,
    index & 0xff, index >> 8, length & 0xff, length >> 8);
}
const getDescriptor = (type, length) => setupPacket(0x80, REQ_GET_DESCRIPTOR, type << 8, 0, length);

/** The CDC control interface number and the data interface's bulk endpoints. */
function findCdc(config) {
  const found = { control: -1, in: -1, out: -1 };
  let inData = false;
  for (let i = 0; i + 2 <= config.length && config[i] >= 2; i += config[i]) {
    const d = config.subarray(i, i + config[i]);
    if (d[1] === DESC_INTERFACE && d.length >= 9) {
      if (d[5] === CLASS_CDC && d[6] === SUBCLASS_ACM && found.control < 0) found.control = d[2];
      inData = d[5] === CLASS_CDC_DATA && found.in < 0;
    } else if (d[1] === DESC_ENDPOINT && d.length >= 7 && inData && (d[3] & 3) === TRANSFER_BULK) {
      if (d[2] & 0x80) found.in = d[2] & 0xf;
      else found.out = d[2] & 0xf;
    }
  }
  return found;
}

export class CdcHost {
  /**
   * onConfigured(): the device has been configured (its serial port is usable).
   * onSerialData(bytes): bytes the device sent. log(msg): problems; trace(msg): USB events,
   * or undefined.
   */
  constructor({ onConfigured, onSerialData, log, trace }) {
    this.onConfigured = onConfigured;
    this.onSerialData = onSerialData;
    this.log = log;
    this.trace = trace;
    this.chunks = []; // host-to-device bytes not yet handed over
    this.head = 0; // bytes of chunks[0] already handed over
    this.queued = 0;
    this.lineState = 0;
  }

  /** Connects to a (new) chip's USB controller; the device will enumerate afresh. */
  attach(mcu) {
    this.usb = mcu.usbCtrl;
    // (ClockAlarm.scheduled stays true after the alarm fires, hence our own flag)
    this.gapAlarm = mcu.clock.createAlarm(() => {
      this.inGap = false;
      this.nextControl();
    });
    this.resetState();
    this.usb.onUSBEnabled = () => {
      this.trace?.('controller enabled: bus reset');
      this.resetState();
      this.usb.resetDevice();
    };
    this.usb.onResetReceived = () => this.enumerate();
    this.usb.onEndpointWrite = (ep, data) => this.endpointIn(ep, data);
    this.usb.onEndpointRead = (ep, size) => this.endpointOut(ep, size);
  }

  resetState() {
    this.configured = false;
    this.cdc = { control: -1, in: -1, out: -1 };
    this.controls = []; // control transfers waiting their turn
    this.control = null; // the one in progress
    this.ep0OutArmed = false;
    this.outRequest = 0; // size of the firmware's armed OUT buffer, 0 when none
    this.gapAlarm.cancel();
    this.inGap = false;
  }

  /** Queues bytes for the device (the bytes of a terminal's write). */
  send(bytes) {
    if (bytes.length === 0) return;
    this.chunks.push(bytes);
    this.queued += bytes.length;
    this.serviceOut();
  }

  /** Drops what the device has not taken yet (it was reset: a real host's data is lost too). */
  clearInput() {
    this.chunks = [];
    this.head = 0;
    this.queued = 0;
  }

  /** DTR and RTS together, as Linux' cdc-acm raises and drops them on open and close. */
  setDtrRts(on) {
    const state = on ? LINE_DTR | LINE_RTS : 0;
    if (state === this.lineState) return;
    this.lineState = state;
    if (this.configured) this.sendLineState();
  }

  sendLineState() {
    const state = this.lineState;
    this.transfer(setupPacket(0x21, REQ_SET_CONTROL_LINE_STATE, state, this.cdc.control, 0),
      () => this.trace?.(`line state: DTR=${state & LINE_DTR ? 1 : 0} RTS=${state & LINE_RTS ? 1 : 0}`));
  }

  enumerate() {
    this.trace?.('bus reset done: enumerating');
    this.resetState();
    this.transfer(setupPacket(0x00, REQ_SET_ADDRESS, 1, 0, 0));
    this.transfer(getDescriptor(DESC_DEVICE, 18), (d) => {
      const hex = (i) => (d[i] | (d[i + 1] << 8)).toString(16).padStart(4, '0');
      this.vidPid = `${hex(8)}:${hex(10)}`;
      this.trace?.(`device ${this.vidPid}`);
    });
    this.transfer(getDescriptor(DESC_CONFIGURATION, 9), (head) => {
      const total = head[2] | (head[3] << 8);
      this.transfer(getDescriptor(DESC_CONFIGURATION, total), (config) => {
        this.cdc = findCdc(config);
        if (this.cdc.control < 0 || this.cdc.in < 0 || this.cdc.out < 0) {
          this.log(`the USB device (${this.vidPid}) has no CDC-ACM serial port`);
          return;
        }
        this.transfer(setupPacket(0x00, REQ_SET_CONFIGURATION, 1, 0, 0), () => {
          this.configured = true;
          this.trace?.(`configured: CDC interface ${this.cdc.control}, ` +
            `IN endpoint ${this.cdc.in}, OUT endpoint ${this.cdc.out}`);
          if (this.lineState) this.sendLineState();
          this.onConfigured();
        });
      });
    });
  }

  // ------------------------------------------------------------ control transfers on EP0

  transfer(setup, onDone) {
    this.controls.push({ setup, onDone });
    if (!this.control && !this.inGap) this.nextControl();
  }

  nextControl() {
    const next = this.controls.shift();
    if (!next) return;
    this.control = {
      ...next,
      deviceToHost: (next.setup[0] & 0x80) !== 0,
      length: next.setup[6] | (next.setup[7] << 8),
      data: [],
      statusStage: false,
    };
    this.ep0OutArmed = false;
    this.usb.sendSetupPacket(next.setup);
  }

  endControl() {
    const { onDone, data } = this.control;
    this.control = null;
    this.inGap = true;
    this.gapAlarm.schedule(CONTROL_GAP_NS);
    onDone?.(Uint8Array.from(data));
  }

  // The host's zero-length OUT packet ending a device-to-host control transfer.
  sendStatus() {
    this.ep0OutArmed = false;
    this.usb.endpointReadDone(0, new Uint8Array(0));
    this.endControl();
  }

  // ------------------------------------------------------------ endpoint traffic

  endpointIn(ep, data) {
    if (ep === this.cdc.in && this.configured) {
      this.onSerialData(data);
      return;
    }
    const c = this.control;
    if (ep !== 0 || !c) return;
    if (!c.deviceToHost) {
      this.endControl(); // the device's zero-length status packet
    } else if (!c.statusStage) {
      c.data.push(...data);
      if (data.length < EP0_MAX_PACKET || c.data.length >= c.length) {
        c.statusStage = true;
        if (this.ep0OutArmed) this.sendStatus();
      }
    }
  }

  endpointOut(ep, size) {
    if (ep === 0) {
      // The firmware may arm EP0 OUT for the status stage before its last IN packet
      // has reached us; the status packet is sent when both have happened.
      if (this.control?.statusStage) this.sendStatus();
      else this.ep0OutArmed = true;
    } else if (ep === this.cdc.out) {
      this.outRequest = size;
      this.serviceOut();
    }
  }

  serviceOut() {
    if (!this.outRequest || !this.queued || !this.configured) return;
    const n = Math.min(this.outRequest, this.queued);
    const packet = new Uint8Array(n);
    for (let got = 0; got < n;) {
      const chunk = this.chunks[0];
      const take = Math.min(n - got, chunk.length - this.head);
      packet.set(chunk.subarray(this.head, this.head + take), got);
      got += take;
      this.head += take;
      if (this.head === chunk.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    this.queued -= n;
    this.outRequest = 0;
    this.usb.endpointReadDone(this.cdc.out, packet);
  }
}
