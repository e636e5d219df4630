// Offline copy of the page itself (the model is cached separately, in IndexedDB). At install it keeps
// the page and every file of the build (asset-manifest.json, written by Vite): the first visit fetched
// them before this worker ran, so without that an offline reload after one visit found nothing.
// Network first, so a new deployment is picked up at once; the cache answers only when the network does not. Only this
// origin's GET requests are touched: the model CDN is left to the HTTP cache and IndexedDB, and so are
// the model's files when they are served from this origin (the default /models/...): cached here,
// latest.json would answer offline as if the server were reachable, and old shards would pile up.
const CACHE = 'bloodcell-app-v1';
const MODEL_FILE = /\/(latest|metadata|model)\.json$|\.bin$/;

const SHELL = new URL('./', self.location.href).href;

async function keepShell() {
  const cache = await caches.open(CACHE);
  const manifest = await fetch(new URL('asset-manifest.json', SHELL), { cache: 'no-cache' });
  const files = new Set();
  if (manifest.ok) {
    for (const chunk of Object.values(await manifest.json())) {
      for (const file of [chunk.file, ...(chunk.css ?? []), ...(chunk.assets ?? [])]) if (file) files.add(file);
    }
  }
  await cache.addAll([SHELL, ...[...files].map((f) => new URL(f, SHELL).href)]);
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
self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin || MODEL_FILE.test(url.pathname)) return;
  event.respondWith(
    fetch(request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(request, copy));
        }
        return response;
      })
      .catch(() => caches.match(request, { ignoreSearch: request.mode === 'navigate' })
        .then((hit) => hit || (request.mode === 'navigate' ? caches.match(SHELL) : undefined))
        .then((hit) => hit || Response.error())),
  );
});
