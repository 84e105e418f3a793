/**
 * The ATA register map (ATA/ATAPI-6, T13 1410D, section 7): port offsets of the command block,
 * bits of each register, and the command codes the drives here accept. One place for them, so
 * the channel, the drive and the tests agree.
 *
 * @module
 */

/** Offsets from the command block base (0x1F0 / 0x170). */
export const ATA_REG = {
  /** Data: 16-bit PIO (32-bit accesses move two words). */
  DATA: 0,
  /** Error (read) / Features (write). */
  ERROR: 1,
  FEATURES: 1,
  /** Sector Count. */
  COUNT: 2,
  /** LBA Low (Sector Number in CHS). */
  LBA_LOW: 3,
  /** LBA Mid (Cylinder Low). */
  LBA_MID: 4,
  /** LBA High (Cylinder High). */
  LBA_HIGH: 5,
  /** Device (Drive/Head): DEV selects the slave, LBA selects LBA addressing, low nibble LBA 27:24. */
  DEVICE: 6,
  /** Status (read, clears a pending interrupt) / Command (write). */
  STATUS: 7,
  COMMAND: 7,
} as const;

/** Ports in the command block. */
export const ATA_COMMAND_BLOCK_PORTS = 8;

/** Status register. */
export const ATA_STATUS = {
  /** Error: the Error register says which. */
  ERR: 0x01,
  /** Data request: the drive wants or offers a block on the data port. */
  DRQ: 0x08,
  /** Device seek complete (obsolete in ATA-6, still set by drives and QEMU). */
  DSC: 0x10,
  /** Device fault. */
  DF: 0x20,
  /** Device ready: accepts commands. */
  DRDY: 0x40,
  /** Busy: the other bits are not valid. */
  BSY: 0x80,
} as const;

/** Error register. */
export const ATA_ERROR = {
  /** After reset or EXECUTE DEVICE DIAGNOSTIC: "device 0 passed". */
  DIAG_PASSED: 0x01,
  /** Command aborted: not supported, bad parameters, or a write that failed. */
  ABRT: 0x04,
  /** ID not found: an address beyond the medium. */
  IDNF: 0x10,
  /** Uncorrectable data: a read failed. */
  UNC: 0x40,
} as const;

/** Device Control register (the control block port, 0x3F6 / 0x376, write). */
export const ATA_CONTROL = {
  /** Interrupts disabled: the drive does not drive INTRQ. */
  NIEN: 0x02,
  /** Software reset of both drives, while set. */
  SRST: 0x04,
  /** High order byte: reads return the previous (LBA48 high) value of each register. */
  HOB: 0x80,
} as const;

/** Device register bits. */
export const ATA_DEVICE = {
  /** Selects device 1 (the slave). */
  DEV: 0x10,
  /** LBA addressing (else CHS). */
  LBA: 0x40,
} as const;

/** Command codes. */
export const ATA_CMD = {
  RECALIBRATE: 0x10,
  READ_SECTORS: 0x20,
  READ_SECTORS_NORETRY: 0x21,
  READ_SECTORS_EXT: 0x24,
  READ_NATIVE_MAX_EXT: 0x27,
  READ_MULTIPLE_EXT: 0x29,
  WRITE_SECTORS: 0x30,
  WRITE_SECTORS_NORETRY: 0x31,
  WRITE_SECTORS_EXT: 0x34,
  WRITE_MULTIPLE_EXT: 0x39,
  READ_VERIFY: 0x40,
  READ_VERIFY_NORETRY: 0x41,
  READ_VERIFY_EXT: 0x42,
  SEEK: 0x70,
  EXECUTE_DEVICE_DIAGNOSTIC: 0x90,
  INITIALIZE_DEVICE_PARAMETERS: 0x91,
  IDENTIFY_PACKET_DEVICE: 0xa1,
  READ_MULTIPLE: 0xc4,
  WRITE_MULTIPLE: 0xc5,
  SET_MULTIPLE_MODE: 0xc6,
  STANDBY_IMMEDIATE: 0xe0,
  IDLE_IMMEDIATE: 0xe1,
  STANDBY: 0xe2,
  IDLE: 0xe3,
  CHECK_POWER_MODE: 0xe5,
  SLEEP: 0xe6,
  FLUSH_CACHE: 0xe7,
  FLUSH_CACHE_EXT: 0xea,
  IDENTIFY_DEVICE: 0xec,
  SET_FEATURES: 0xef,
  READ_NATIVE_MAX: 0xf8,
} as const;
