// The reviewer's verdicts in this browser's IndexedDB, one record per image (by content), and which of
// them were exported as they stand. Plain JavaScript with JSDoc types so that Node runs it as is (tests,
// with fake-indexeddb) and Vite bundles it.

// Each store in a database of its own, at version 1: a new version of a database would make every tab
// still on the older page fail to open it (VersionError) until reloaded.
const STORE = 'cells';
// sha256 -> the reviewedAt of the verdict last exported: a verdict changed since is not exported.
const EXPORTED = 'exported';
const DATABASES = { [STORE]: 'bloodcell-reviews', [EXPORTED]: 'bloodcell-review-exports' };

/** @param {string} store @returns {Promise<IDBDatabase>} */
function openDb(store) {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DATABASES[store], 1);
    request.onupgradeneeded = () => request.result.createObjectStore(store, { keyPath: 'sha256' });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/**
 * What `work` gives once its transaction has committed.
 * @template T
 * @param {IDBTransactionMode} mode
 * @param {(store: IDBObjectStore) => () => T} work starts the requests; returns how to read the result
 * @param {string} name the store `work` gets
 * @returns {Promise<T>}
 */
async function inStore(mode, work, name = STORE) {
  const db = await openDb(name);
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(name, mode);
      const result = work(tx.objectStore(name));
      tx.oncomplete = () => resolve(result());
      // A failed request reaches the transaction before it aborts, while tx.error is still null.
      tx.onerror = (event) => reject(/** @type {IDBRequest} */ (event.target)?.error ?? tx.error
        ?? new Error('the review store refused the write'));
      tx.onabort = () => reject(tx.error ?? new Error('the review store refused the write'));
    });
  } finally {
    db.close();
  }
}

/** @template T @param {IDBRequest<T>} request */
function requestResult(request) {
  return () => request.result;
}

/** The lab name of every reviewed cell, how many cells were never exported as they stand, and each
 * verdict (what a deletion asked about deletes), one cell at a time through a cursor: getAll would hold
 * every image's bytes at once, and fail on a large store.
 * @returns {Promise<{labs: string[], unexported: number, verdicts: Verdict[]}>} */
export async function reviewSummary() {
  /** @type {{sha256: string, reviewedAt: string}[]} */
  const marks = await inStore('readonly', (exported) => requestResult(exported.getAll()), EXPORTED);
  const exportedAt = new Map(marks.map((m) => [m.sha256, m.reviewedAt]));
  /** @type {string[]} */
  const labs = [];
  /** @type {Verdict[]} */
  const verdicts = [];
  let unexported = 0;
  await eachReview((cell) => {
    labs.push(cell.lab);
    verdicts.push({ sha256: cell.sha256, reviewedAt: cell.reviewedAt, label: cell.label, lab: cell.lab });
    if (exportedAt.get(cell.sha256) !== cell.reviewedAt) unexported += 1;
    return undefined;
  }, 'readonly');
  return { labs, unexported, verdicts };
}

/** Calls `visit` on every reviewed cell in one pass, one cell at a time through a cursor (getAll would
 * hold every image's bytes at once). `visit` runs synchronously and returns the record to put in the
 * cell's place or null to delete the cell (a read-write pass only), or undefined. A throw from `visit` undoes the pass's changes
 * and is rethrown.
 * @param {(cell: any) => object | null | undefined} visit
 * @param {IDBTransactionMode} mode */
export async function eachReview(visit, mode = 'readwrite') {
  /** @type {unknown} */
  let failure = null;
  try {
    await inStore(mode, (cells) => {
      const cursor = cells.openCursor();
      cursor.onsuccess = () => {
        const at = cursor.result;
        if (!at) return;
        try {
          const replacement = visit(at.value);
          if (replacement === null) at.delete();
          else if (replacement) at.update(replacement);
          at.continue();
        } catch (err) {
          failure = err;
          cursor.transaction.abort();
        }
      };
      return () => undefined;
    });
  } catch (err) {
    throw failure ?? err;
  }
}

/** A second verdict on the same cell replaces the first. @param {object} cell */
export function saveReview(cell) {
  return inStore('readwrite', (store) => requestResult(store.put(cell)));
}

/** Notes that these verdicts, as they stand, went into an export.
 * @param {{sha256: string, reviewedAt: string}[]} cells */
export function markExported(cells) {
  return inStore('readwrite', (exported) => {
    for (const { sha256, reviewedAt } of cells) exported.put({ sha256, reviewedAt });
    return () => undefined;
  }, EXPORTED);
}

/** The verdict kept for one image, or undefined. @param {string} sha256 */
export function getReview(sha256) {
  return inStore('readonly', (store) => requestResult(store.get(sha256)));
}

export function countReviews() {
  return inStore('readonly', (store) => requestResult(store.count()));
}

/** A verdict as a deletion was asked about it.
 * @typedef {{sha256: string, reviewedAt: string, label: string, lab: string}} Verdict */

/** @param {Verdict} verdict one stamp may be given twice (two tabs stamping after one earlier verdict) */
function verdictKey(verdict) {
  return JSON.stringify([verdict.reviewedAt, verdict.label, verdict.lab]);
}

/** Deletes the verdicts `only` lists (all when it is not given) with their export marks. A verdict saved
 * since `only` was read (in another tab, while the reviewer was asked) stays: nobody was asked about it.
 * @param {Verdict[]} [only] @returns {Promise<number>} how many stayed */
export async function clearReviews(only) {
  if (!only) {
    await inStore('readwrite', (cells) => requestResult(cells.clear()));
    await inStore('readwrite', (exported) => requestResult(exported.clear()), EXPORTED);
    return 0;
  }
  const asked = new Map(only.map((v) => [v.sha256, verdictKey(v)]));
  /** @type {string[]} */
  const deleted = [];
  let stayed = 0;
  await eachReview((cell) => {
    if (asked.get(cell.sha256) !== verdictKey(cell)) {
      stayed += 1;
      return undefined;
    }
    deleted.push(cell.sha256);
    return null;
  });
  await inStore('readwrite', (exported) => {
    for (const sha256 of deleted) exported.delete(sha256);
    return () => undefined;
  }, EXPORTED);
  return stayed;
}
