// Offline copy of the page itself (the model is cached separately, in IndexedDB). Network first, so a
// new deployment is picked up at once; the cache answers only when the network does not. Only this
// origin's GET requests are touched: the model CDN is left to the HTTP cache and IndexedDB.
const CACHE = 'bloodcell-app-v1';

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET' || new URL(request.url).origin !== self.location.origin) return;
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
