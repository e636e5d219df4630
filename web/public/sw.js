// Offline copy of the page itself (the model is cached separately, in IndexedDB). At install it keeps
// the page and every file of the build (asset-manifest.json, written by Vite): the first visit fetched
// them before this worker ran, so without that an offline reload after one visit found nothing. Each
// file is kept on its own, and a file that failed (a flaky first visit) is fetched again on the next
// visit that reaches the server: one failure must not leave the page without its offline copy.
// Built files are named by their content, so the cache answers them first. The page itself: the network
// first, so a new deployment is picked up at once, but a link that stalls waits a few seconds, not
// minutes, before the cached page answers. Only this origin's GET requests are touched: the model CDN is
// left to the HTTP cache and IndexedDB, and so are the model's files when they are served from this
// origin (the default /models/...): cached here, latest.json would answer offline as if the server were
// reachable, and old shards would pile up.
const CACHE = 'bloodcell-app-v1';
const MODEL_FILE = /\/(latest|metadata|model)\.json$|\.bin$/;
const BUILT_FILE = /\/assets\//;      // Vite's output, content-hashed names
const NETWORK_WAIT_MS = 3000;

const SHELL = new URL('./', self.location.href).href;

async function shellFiles() {
  const files = new Set([SHELL]);
  const manifest = await fetch(new URL('asset-manifest.json', SHELL), { cache: 'no-cache' });
  if (manifest.ok) {
    for (const chunk of Object.values(await manifest.json())) {
      for (const file of [chunk.file, ...(chunk.css ?? []), ...(chunk.assets ?? [])]) {
        if (file) files.add(new URL(file, SHELL).href);
      }
    }
  }
  return [...files];
}

/** Keeps every file of the page that the cache lacks, each on its own. */
async function keepShell() {
  const cache = await caches.open(CACHE);
  const missing = [];
  for (const url of await shellFiles()) if (!(await cache.match(url))) missing.push(url);
  await Promise.allSettled(missing.map(async (url) => {
    const response = await fetch(url, { cache: 'no-cache' });
    if (response.ok) await cache.put(url, response);
  }));
}

self.addEventListener('install', (event) => {
  self.skipWaiting();
  event.waitUntil(keepShell().catch(() => undefined));  // no offline copy is no reason to fail
});
// Model files an earlier worker kept are dropped: they are the page's to keep, in IndexedDB.
const dropModelFiles = () => caches.open(CACHE).then((cache) => cache.keys().then((requests) => Promise.all(
  requests.filter((r) => MODEL_FILE.test(new URL(r.url).pathname)).map((r) => cache.delete(r)))));
self.addEventListener('activate', (event) => event.waitUntil(
  Promise.all([self.clients.claim(), dropModelFiles().catch(() => undefined)])));

function fromNetwork(request) {
  return fetch(request).then((response) => {
    if (response.ok) {
      const copy = response.clone();
      caches.open(CACHE).then((cache) => cache.put(request, copy));
    }
    return response;
  });
}

function fromCache(request) {
  return caches.match(request, { ignoreSearch: request.mode === 'navigate' })
    .then((hit) => hit || (request.mode === 'navigate' ? caches.match(SHELL) : undefined));
}

/** The network's answer; the cached copy when the network fails, or when it has not answered within
 * NETWORK_WAIT_MS and a cached copy exists (the network's answer still refreshes the cache). */
function networkFirst(request) {
  const network = fromNetwork(request);
  return new Promise((resolve) => {
    let answered = false;
    const answer = (response) => { if (!answered) { answered = true; resolve(response); } };
    const timer = setTimeout(() => fromCache(request).then((hit) => { if (hit) answer(hit); }), NETWORK_WAIT_MS);
    network.then((response) => { clearTimeout(timer); answer(response); })
      .catch(() => { clearTimeout(timer); fromCache(request).then((hit) => answer(hit || Response.error())); });
  });
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin || MODEL_FILE.test(url.pathname)) return;
  if (BUILT_FILE.test(url.pathname)) {
    event.respondWith(caches.match(request).then((hit) => hit || fromNetwork(request)));
    return;
  }
  event.respondWith(networkFirst(request));
  // A visit that reaches the server fills in what an earlier try could not keep.
  if (request.mode === 'navigate') event.waitUntil?.(keepShell().catch(() => undefined));
});
