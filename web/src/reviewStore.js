// The reviewer's verdicts in this browser's IndexedDB, one record per image (by content). Plain
// JavaScript with JSDoc types so that Node runs it as is (tests, with fake-indexeddb) and Vite bundles it.

const DB_NAME = 'bloodcell-reviews';
const STORE = 'cells';

/** @returns {Promise<IDBDatabase>} */
function openDb() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: 'sha256' });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/**
 * What `work` gives once its transaction has committed.
 * @template T
 * @param {IDBTransactionMode} mode
 * @param {(store: IDBObjectStore) => () => T} work starts the requests; returns how to read the result
 * @returns {Promise<T>}
 */
async function inStore(mode, work) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const result = work(tx.objectStore(STORE));
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

/** The lab name of every reviewed cell, one at a time through a cursor: getAll would hold every
 * image's bytes at once, and fail on a large store. */
export function reviewLabs() {
  return inStore('readonly', (store) => {
    /** @type {string[]} */
    const labs = [];
    const cursor = store.openCursor();
    cursor.onsuccess = () => {
      if (!cursor.result) return;
      labs.push(cursor.result.value.lab);
      cursor.result.continue();
    };
    return () => labs;
  });
}

/** A second verdict on the same cell replaces the first. @param {object} cell */
export function saveReview(cell) {
  return inStore('readwrite', (store) => requestResult(store.put(cell)));
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
  return inStore('readwrite', (store) => requestResult(store.clear()));
}
