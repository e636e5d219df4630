// The model server's clock, as its answers' Date (and a cache's Age) headers tell it. Review times are
// stamped by it: the pipeline keeps a cell's latest verdict by its stamp, so a workstation whose clock
// is hours out would let an old verdict beat a newer correction. Plain JavaScript so that Node tests it.

/** Offsets within this are left alone: a Date header counts whole seconds, and a shared cache may hand
 * on an answer up to a minute old without saying so. */
export const CLOCK_TOLERANCE_MS = 2 * 60_000;

/** The server's clock minus this machine's, in ms, from one answer: null when the answer gives no date.
 * The server dated its answer between the request leaving and the answer arriving: the midpoint is taken.
 * @param {string | null} date the Date header @param {string | null} age the Age header (seconds)
 * @param {number} sentMs @param {number} receivedMs this machine's clock */
export function serverOffsetMs(date, age, sentMs, receivedMs) {
  const dated = date ? Date.parse(date) : NaN;
  if (!Number.isFinite(dated)) return null;
  const aged = Number(age ?? 0);
  const server = dated + 500 + (Number.isFinite(aged) && aged >= 0 ? aged * 1000 : 0);
  return server - (sentMs + receivedMs) / 2;
}

/** What to add to this machine's clock when stamping: the offset when it is past the tolerance, else 0.
 * @param {number | null} offsetMs */
export function stampCorrectionMs(offsetMs) {
  return offsetMs !== null && Math.abs(offsetMs) > CLOCK_TOLERANCE_MS ? Math.round(offsetMs) : 0;
}

/** One line for the reviewer when the correction is not 0, else null. @param {number} correctionMs */
export function clockNote(correctionMs) {
  if (!correctionMs) return null;
  const minutes = Math.round(Math.abs(correctionMs) / 60_000);
  const span = minutes >= 60 ? `${Math.floor(minutes / 60)} h ${minutes % 60} min` : `${minutes} min`;
  return `This computer's clock is ${span} ${correctionMs < 0 ? 'ahead of' : 'behind'} the model server's: `
    + 'review times are stamped by the server\'s clock. Have the clock set right.';
}
