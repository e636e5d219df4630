// Where the model comes from: the CDN's channel pointer (latest.json) and versioned files, with a copy
// in IndexedDB so that the client keeps working with no network once a model was loaded.
import * as tf from '@tensorflow/tfjs';
import { withdrawn } from './channel.js';
import { serverOffsetMs } from './clock.js';
import { warmUp } from './inference.js';

export interface Pointer {
  version: string;
  model_url: string;
  metadata_url: string;
  rolled_back_from?: string | null;  // the publisher's record of rollbacks (web/src/channel.js reads them)
  withdrawn?: string[];
}

export interface ModelMetadata {
  model_name: string;
  version: string;
  class_names: string[];
  image_size: number;
  review_threshold: number;
  quantization: string;
  eval: {
    split: string; metrics: Record<string, number>; confusion_matrix?: number[][] | null;
    // Per source: "base" (the dataset's TEST) and each lab's held-out reviewed cells.
    sources?: Record<string, { accuracy: number | null; cells: number; recall?: Record<string, number> }>;
    min_lab_cells?: number;
  };
  pipeline?: { name?: string; run_id?: string | null };
  published_at?: string;
}

// cache-fallback: the channel names a version that could not be loaded; the cached one answers.
export type Source = 'network' | 'cache' | 'cache-fallback' | 'offline-cache';

export interface LoadedModel {
  model: tf.GraphModel;
  metadata: ModelMetadata;
  source: Source;
  note: string;
  unloadable?: string;  // cache-fallback: the channel's version that could not be loaded
}

// Model and metadata are kept as one IndexedDB record, written in one transaction: a tab closed in
// between cannot pair one version's weights with another's classes.
interface CacheRecord {
  base: string;
  version: string;
  metadata: ModelMetadata;
  artifacts: tf.io.ModelArtifacts;
}

const DB_NAME = 'bloodcell';
const STORE = 'models';
const KEY = 'current';

function openDb(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function readRecord(base: string): Promise<CacheRecord | null> {
  try {
    const db = await openDb();
    const record = await new Promise<CacheRecord | undefined>((resolve, reject) => {
      const request = db.transaction(STORE).objectStore(STORE).get(KEY);
      request.onsuccess = () => resolve(request.result as CacheRecord | undefined);
      request.onerror = () => reject(request.error);
    });
    db.close();
    return record && record.base === base ? record : null;
  } catch {
    return null;
  }
}

/** One read-write transaction on the store, settled once it commits. */
async function change(edit: (store: IDBObjectStore) => void): Promise<void> {
  const db = await openDb();
  try {
    await new Promise<void>((resolve, reject) => {
      const tx = db.transaction(STORE, 'readwrite');
      edit(tx.objectStore(STORE));
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

function writeRecord(record: CacheRecord): Promise<void> {
  return change((store) => store.put(record, KEY));
}

/** Drops this browser's copy of `version` from `base` (a rollback withdrew it): offline, a reload must
 * not bring it back. Only that copy: another tab may have stored the channel's version meanwhile. */
function forget(base: string, version: string): Promise<void> {
  return change((store) => {
    const request = store.get(KEY);
    request.onsuccess = () => {
      const record = request.result as CacheRecord | undefined;
      if (record && record.base === base && record.version === version) store.delete(KEY);
    };
  });
}

export function forgetCachedModel(baseUrl: string, version: string): Promise<void> {
  return forget(baseOf(baseUrl), version);
}

async function keep(model: tf.GraphModel, base: string, version: string, metadata: ModelMetadata): Promise<void> {
  let artifacts: tf.io.ModelArtifacts | null = null;
  await model.save(tf.io.withSaveHandler(async (a) => {
    artifacts = a;
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
  if (!artifacts) throw new Error('the model gave nothing to keep');
  await writeRecord({ base, version, metadata, artifacts });
}

// Shards are published under content-hashed names (<name>.<first 16 hex of sha256>.bin): a shard
// altered on the way, even to the same length, is refused and so never cached.
const HASHED_SHARD = /\.([0-9a-f]{16})\.bin$/;

// A link that stalls without failing must not hold the page at "Loading": past these, the cached
// version answers (the pointer is small; a model file may be megabytes on a slow link).
const POINTER_TIMEOUT_MS = 15_000;
const FILE_TIMEOUT_MS = 120_000;

async function fetchWithin(input: RequestInfo | URL, init: RequestInit | undefined, ms: number): Promise<Response> {
  try {
    return await fetch(input, { ...init, signal: init?.signal ?? AbortSignal.timeout(ms) });
  } catch (err) {
    if ((err as Error)?.name === 'TimeoutError') throw new Error(`no answer within ${ms / 1000} s`);
    throw err;
  }
}

export async function verifiedFetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
  const url = input instanceof Request ? input.url : String(input);
  const expected = HASHED_SHARD.exec(new URL(url, location.href).pathname)?.[1];
  const response = await fetchWithin(input, init, FILE_TIMEOUT_MS);
  if (!expected || !response.ok) return response;
  let data = await response.arrayBuffer();
  if (!await hashStarts(data, expected)) {
    // Once more past the browser's HTTP cache: a shard is cached for a year unchecked (immutable), so a
    // copy damaged on the way, or on an origin mended since, would fail this version there for good.
    const again = await fetchWithin(input, { ...init, cache: 'reload' }, FILE_TIMEOUT_MS);
    data = again.ok ? await again.arrayBuffer() : new ArrayBuffer(0);
    if (!again.ok || !await hashStarts(data, expected)) throw new Error(`${url.split('/').pop()} does not match its hash`);
  }
  return new Response(data, { status: response.status, statusText: response.statusText, headers: response.headers });
}

async function hashStarts(data: ArrayBuffer, expected: string): Promise<boolean> {
  const digest = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', data)),
    (b) => b.toString(16).padStart(2, '0')).join('');
  return digest.startsWith(expected);
}

// The server was reached but its answer is not what was asked for (an HTTP error, a sign-in page of
// the network, a file of another kind): not the same as being offline, and said differently.
class WrongAnswer extends Error {}

let serverOffset: number | null = null;

/** The model server's clock minus this machine's, in ms, from its last channel answer; null before one
 * (offline). */
export function serverClockOffsetMs(): number | null {
  return serverOffset;
}

async function fetchJson<T>(url: string, init?: RequestInit, ms = FILE_TIMEOUT_MS,
  onAnswer?: (response: Response, sentMs: number, receivedMs: number) => void): Promise<T> {
  const sent = Date.now();
  const response = await fetchWithin(url, init, ms);
  onAnswer?.(response, sent, Date.now());
  if (!response.ok) throw new WrongAnswer(`${url} answered HTTP ${response.status}`);
  try {
    return (await response.json()) as T;
  } catch {
    const type = response.headers.get('content-type')?.split(';')[0];
    throw new WrongAnswer(`${url} is not valid JSON${type ? ` (it came as ${type})` : ''}`);
  }
}

function checkPointer(pointer: Pointer): Pointer {
  const ok = typeof pointer === 'object' && pointer !== null && /^[0-9]+$/.test(String(pointer.version))
    && typeof pointer.model_url === 'string' && typeof pointer.metadata_url === 'string';
  if (!ok) throw new WrongAnswer('latest.json is not a model pointer (a numeric version, model_url and metadata_url)');
  return { ...pointer, version: String(pointer.version) };
}

export function checkMetadata(metadata: ModelMetadata, version?: string): ModelMetadata {
  const ok = Array.isArray(metadata?.class_names) && metadata.class_names.length >= 2
    && Number.isFinite(metadata.image_size) && Number.isFinite(metadata.review_threshold);
  if (!ok) throw new Error('the model metadata lacks class_names, image_size or review_threshold');
  if (version !== undefined && String(metadata.version) !== version) {
    throw new Error(`the metadata is of version ${metadata.version}, not ${version}`);
  }
  return metadata;
}

function reason(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0];
}

function baseOf(baseUrl: string): string {
  return new URL(baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`, location.href).href;
}

/** The channel pointer (latest.json) now. Throws WrongAnswer when the server answers something else. */
async function fetchPointer(base: string): Promise<Pointer> {
  return checkPointer(await fetchJson<Pointer>(new URL('latest.json', base).href, { cache: 'no-cache' }, POINTER_TIMEOUT_MS,
    (response, sent, received) => {
      // The CDN exposes Date and Age to another origin (infra/nginx); unreadable, they leave the offset as it was.
      const offset = response.ok ? serverOffsetMs(response.headers.get('date'), response.headers.get('age'), sent, received) : null;
      if (offset !== null) serverOffset = offset;
    }));
}

/** The channel pointer, read again by a page that has been open a while. */
export function readPointer(baseUrl: string): Promise<Pointer> {
  return fetchPointer(baseOf(baseUrl));
}

/** " (published 2026-12-07)", from the metadata, for notes about an older copy. */
function publishedOn(metadata: ModelMetadata): string {
  return metadata.published_at ? ` (published ${metadata.published_at.slice(0, 10)})` : '';
}

/** The newest published model, warmed up; the cached copy when it is current, when the CDN is
 * unreachable, or when the version the channel names cannot be loaded. */
export async function loadModel(baseUrl: string): Promise<LoadedModel> {
  const base = baseOf(baseUrl);
  const cached = await readRecord(base);
  const fromCache = async (source: Source, note: string, unloadable?: string): Promise<LoadedModel> => {
    const model = await tf.loadGraphModel(tf.io.fromMemory(cached!.artifacts));
    await warmUp(model, cached!.metadata.image_size, cached!.metadata.class_names);
    return { model, metadata: cached!.metadata, source, note, unloadable };
  };
  let pointer: Pointer;
  try {
    pointer = await fetchPointer(base);
  } catch (err) {
    if (err instanceof WrongAnswer) {
      if (!cached) throw new Error(`the model server was reached, but ${reason(err)}; no model is cached yet`);
      return fromCache('cache-fallback', `The model server was reached, but ${reason(err)}; using the cached `
        + `version ${cached.version}${publishedOn(cached.metadata)}.`);
    }
    if (!cached) throw new Error(`cannot reach the model server (${reason(err)}) and no model is cached yet`);
    return fromCache('offline-cache', `Offline: the model server cannot be reached; using the cached version `
      + `${cached.version}${publishedOn(cached.metadata)}.`);
  }
  if (cached && cached.version === pointer.version) {
    try {
      return await fromCache('cache', `Version ${cached.version} is current; loaded from this browser's cache.`);
    } catch {
      // The cached copy is unreadable (storage cleared mid-way): download it again below.
    }
  }
  // A copy a rollback withdrew is dropped as soon as the channel says so: it must not answer offline
  // later, whether the channel's version then loads, fails, or cannot be kept (storage full).
  const cachedWithdrawn = cached !== null && withdrawn(cached.version, pointer);
  if (cachedWithdrawn) await forget(base, cached!.version).catch(() => undefined);
  let metadata: ModelMetadata;
  let model: tf.GraphModel | undefined;
  try {
    metadata = checkMetadata(await fetchJson<ModelMetadata>(new URL(pointer.metadata_url, base).href), pointer.version);
    model = await tf.loadGraphModel(new URL(pointer.model_url, base).href, { fetchFunc: verifiedFetch });
    // Tried before it is kept: a model that loads but cannot answer must not replace the cached one.
    await warmUp(model, metadata.image_size, metadata.class_names);
  } catch (err) {
    model?.dispose();
    if (!cached) throw new Error(`version ${pointer.version} could not be loaded: ${reason(err)}`);
    // A rollback withdrew the copy this browser holds: it must not answer in the channel's place.
    if (cachedWithdrawn) {
      throw new Error(`version ${pointer.version} could not be loaded (${reason(err)}), and this browser's copy, `
        + `version ${cached.version}, was withdrawn by a rollback: it does not answer`);
    }
    return fromCache('cache-fallback',
      `Version ${pointer.version} could not be loaded (${reason(err)}); using the cached version ${cached.version}.`,
      String(pointer.version));
  }
  let note = `Downloaded version ${pointer.version}; kept in this browser for offline use.`;
  try {
    await keep(model!, base, pointer.version, metadata);
  } catch (err) {
    note = `Downloaded version ${pointer.version}; it could not be kept for offline use (${reason(err)}).`;
  }
  return { model: model!, metadata, source: 'network', note };
}
