// The reviewer's verdicts in this browser's IndexedDB, one record per image (by content), and which of
// them were exported as they stand. Plain JavaScript with JSDoc types so that Node runs it as is (tests,
// with fake-indexeddb) and Vite bundles it.

const DB_NAME = 'bloodcell-reviews';
const STORE = 'cells';
// sha256 -> the reviewedAt of the verdict last exported: a verdict changed since is not exported.
const EXPORTED = 'exported';

/** @returns {Promise<IDBDatabase>} */
function openDb() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 2);
    request.onupgradeneeded = () => {
      const db = request.result;
      if (!db.objectStoreNames.contains(STORE)) db.createObjectStore(STORE, { keyPath: 'sha256' });
      if (!db.objectStoreNames.contains(EXPORTED)) db.createObjectStore(EXPORTED, { keyPath: 'sha256' });
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/**
 * What `work` gives once its transaction has committed.
 * @template T
 * @param {IDBTransactionMode} mode
 * @param {(...stores: IDBObjectStore[]) => () => T} work starts the requests; returns how to read the result
 * @param {string[]} names the stores `work` gets, in order
 * @returns {Promise<T>}
 */
async function inStore(mode, work, names = [STORE]) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(names, mode);
      const result = work(...names.map((name) => tx.objectStore(name)));
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

/** The lab name of every reviewed cell, and how many cells were never exported as they stand, one cell
 * at a time through a cursor: getAll would hold every image's bytes at once, and fail on a large store.
 * @returns {Promise<{labs: string[], unexported: number}>} */
export function reviewSummary() {
  return inStore('readonly', (cells, exported) => {
    /** @type {string[]} */
    const labs = [];
    let unexported = 0;
    /** @type {Map<string, string>} */
    const exportedAt = new Map();
    const marks = exported.getAll();
    marks.onsuccess = () => {
      for (const mark of marks.result) exportedAt.set(mark.sha256, mark.reviewedAt);
      const cursor = cells.openCursor();
      cursor.onsuccess = () => {
        if (!cursor.result) return;
        const cell = cursor.result.value;
        labs.push(cell.lab);
        if (exportedAt.get(cell.sha256) !== cell.reviewedAt) unexported += 1;
        cursor.result.continue();
      };
    };
    return () => ({ labs, unexported });
  }, [STORE, EXPORTED]);
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
  }, [EXPORTED]);
}

/** The verdict kept for one image, or undefined. @param {string} sha256 */
export function getReview(sha256) {
  return inStore('readonly', (store) => requestResult(store.get(sha256)));
}

export function allReviews() {
  return inStore('readonly', (store) => requestResult(store.getAll()));
}

export function countReviews() {
  return inStore('readonly', (store) => requestResult(store.count()));
}

export function clearReviews() {
  return inStore('readwrite', (cells, exported) => {
    cells.clear();
    exported.clear();
    return () => undefined;
  }, [STORE, EXPORTED]);
}
