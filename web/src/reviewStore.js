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
 * @template T
 * @param {IDBTransactionMode} mode
 * @param {(store: IDBObjectStore) => IDBRequest<T>} work
 * @returns {Promise<T>}
 */
async function inStore(mode, work) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = work(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request.result);
      // A failed request reaches the transaction before it aborts, while tx.error is still null.
      tx.onerror = (event) => reject(/** @type {IDBRequest} */ (event.target)?.error ?? tx.error
        ?? new Error('the review store refused the write'));
      tx.onabort = () => reject(tx.error ?? new Error('the review store refused the write'));
    });
  } finally {
    db.close();
  }
}

/** A second verdict on the same cell replaces the first. @param {object} cell */
export function saveReview(cell) {
  return inStore('readwrite', (store) => store.put(cell));
}

/** The verdict kept for one image, or undefined. @param {string} sha256 */
export function getReview(sha256) {
  return inStore('readonly', (store) => store.get(sha256));
}

export function allReviews() {
  return inStore('readonly', (store) => store.getAll());
}

export function countReviews() {
  return inStore('readonly', (store) => store.count());
}

export function clearReviews() {
  return inStore('readwrite', (store) => store.clear());
}
