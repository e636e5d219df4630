// A classified image keeps its bytes in memory until its verdict is saved, so that a file that goes (a
// mail attachment's temporary copy) does not cost its verdict; but only up to a limit: a page given
// thousands of camera fields must not hold them all (the tab would run out of memory and crash). Past
// the limit an image keeps only its file, read again (and checked against its hash) at its verdict.

export const HELD_BYTES_LIMIT = 256 * 2 ** 20;

export class HeldBytes {
  constructor(limit = HELD_BYTES_LIMIT) {
    this.limit = limit;
    this.held = 0;
  }

  /** `bytes` when they fit under the limit (from now on counted), else null. */
  take(bytes) {
    if (this.held + bytes.byteLength > this.limit) return null;
    this.held += bytes.byteLength;
    return bytes;
  }

  /** Bytes `take` gave are no longer held (null: nothing to do). */
  release(bytes) {
    if (bytes) this.held = Math.max(0, this.held - bytes.byteLength);
  }
}
