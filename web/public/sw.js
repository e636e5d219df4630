// Offline copy of the page itself (the model is cached separately, in IndexedDB). Network first, so a
// new deployment is picked up at once; the cache answers only when the network does not. Only this
// origin's GET requests are touched: the model CDN is left to the HTTP cache and IndexedDB, and so are
// the model's files when they are served from this origin (the default /models/...): cached here,
// latest.json would answer offline as if the server were reachable, and old shards would pile up.
const CACHE = 'bloodcell-app-v1';
const MODEL_FILE = /\/(latest|metadata|model)\.json$|\.bin$/;

self.addEventListener('install', () => self.skipWaiting());
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
      .catch(() => caches.match(request).then((hit) => hit || Response.error())),
  );
});
