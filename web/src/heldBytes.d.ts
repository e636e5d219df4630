export const HELD_BYTES_LIMIT: number;
export class HeldBytes {
  constructor(limit?: number);
  readonly limit: number;
  readonly held: number;
  take(bytes: ArrayBuffer): ArrayBuffer | null;
  release(bytes: ArrayBuffer | null): void;
}
