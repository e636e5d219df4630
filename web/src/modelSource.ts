// Where the model comes from: the CDN's channel pointer (latest.json) and versioned files, with a copy
// in IndexedDB so that the client keeps working with no network once a model was loaded.
import * as tf from '@tensorflow/tfjs';

export interface Pointer {
  version: string;
  model_url: string;
  metadata_url: string;
}

export interface ModelMetadata {
  model_name: string;
  version: string;
  class_names: string[];
  image_size: number;
  review_threshold: number;
  quantization: string;
  eval: { split: string; metrics: Record<string, number>; confusion_matrix?: number[][] | null };
  pipeline?: { name?: string; run_id?: string | null };
  published_at?: string;
}

export type Source = 'network' | 'cache' | 'offline-cache';

export interface LoadedModel {
  model: tf.GraphModel;
  metadata: ModelMetadata;
  source: Source;
  note: string;
}

interface CacheRecord {
  base: string;
  version: string;
  metadata: ModelMetadata;
}

const RECORD_KEY = 'bloodcell.cached-model';
// One slot: IndexedDB saves are transactions, so the slot holds a whole model or the previous one.
const IDB_URL = 'indexeddb://bloodcell-model';

function readRecord(base: string): CacheRecord | null {
  try {
    const record = JSON.parse(localStorage.getItem(RECORD_KEY) ?? 'null') as CacheRecord | null;
    return record && record.base === base ? record : null;
  } catch {
    return null;
  }
}

async function fetchJson<T>(url: string, init?: RequestInit): Promise<T> {
  const response = await fetch(url, init);
  if (!response.ok) throw new Error(`${url} answered HTTP ${response.status}`);
  try {
    return (await response.json()) as T;
  } catch {
    throw new Error(`${url} is not valid JSON`);
  }
}

export function checkMetadata(metadata: ModelMetadata): ModelMetadata {
  const ok = Array.isArray(metadata?.class_names) && metadata.class_names.length >= 2
    && Number.isFinite(metadata.image_size) && Number.isFinite(metadata.review_threshold);
  if (!ok) throw new Error('the model metadata lacks class_names, image_size or review_threshold');
  return metadata;
}

function reason(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0];
}

/** The newest published model; the cached copy when it is current or when the CDN is unreachable. */
export async function loadModel(baseUrl: string): Promise<LoadedModel> {
  const base = new URL(baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`, location.href).href;
  const cached = readRecord(base);
  let pointer: Pointer;
  try {
    pointer = await fetchJson<Pointer>(new URL('latest.json', base).href, { cache: 'no-cache' });
  } catch (err) {
    if (!cached) throw new Error(`cannot reach the model server (${reason(err)}) and no model is cached yet`);
    return {
      model: await tf.loadGraphModel(IDB_URL),
      metadata: cached.metadata,
      source: 'offline-cache',
      note: `Offline: the model server cannot be reached; using the cached version ${cached.version}.`,
    };
  }
  if (cached && cached.version === pointer.version) {
    try {
      return {
        model: await tf.loadGraphModel(IDB_URL),
        metadata: cached.metadata,
        source: 'cache',
        note: `Version ${cached.version} is current; loaded from this browser's cache.`,
      };
    } catch {
      // The cached copy is unreadable (storage cleared mid-way): download it again below.
    }
  }
  const metadata = checkMetadata(await fetchJson<ModelMetadata>(new URL(pointer.metadata_url, base).href));
  const model = await tf.loadGraphModel(new URL(pointer.model_url, base).href);
  let note = `Downloaded version ${pointer.version}; kept in this browser for offline use.`;
  try {
    await model.save(IDB_URL);
    // The record is written only after the model itself was stored.
    localStorage.setItem(RECORD_KEY, JSON.stringify({ base, version: pointer.version, metadata }));
  } catch (err) {
    note = `Downloaded version ${pointer.version}; it could not be kept for offline use (${reason(err)}).`;
  }
  return { model, metadata, source: 'network', note };
}
