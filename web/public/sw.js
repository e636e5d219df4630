// Offline copy of the page itself (the model is cached separately, in IndexedDB). At install it keeps
// the page and every file of the build (asset-manifest.json, written by Vite): the first visit fetched
// them before this worker ran, so without that an offline reload after one visit found nothing. Each
// file is kept on its own, and a visit that reaches the server fills in what is missing and drops built
// files the build no longer lists: one failed download must not leave the page without its offline
// copy, and deployments must not pile up. Built files are named by their content, so the cache answers
// them first. The page: the network first, so a new deployment is picked up at once, but a link that
// stalls waits a few seconds, not minutes, before the cached page answers. Only this origin's GET
// requests are touched: the model CDN is left to the HTTP cache and IndexedDB, and so are the model's
// files when they are served from this origin (the default /models/...): cached here, latest.json would
// answer offline as if the server were reachable, and old shards would pile up.
const CACHE = 'bloodcell-app-v1';
const MODEL_FILE = /\/(latest|metadata|model)\.json$|\.bin$/;
const BUILT_FILE = /\/assets\//;      // Vite's output, content-hashed names
const NETWORK_WAIT_MS = 3000;

const SHELL = new URL('./', self.location.href).href;

/** Keeps `copy` (a clone, taken before the page reads the answer); a cache that cannot (storage full)
 * costs the offline copy, never the answer. */
async function keep(url, copy) {
  try {
    await (await caches.open(CACHE)).put(url, copy);
    return true;
  } catch {
    return false;
  }
}

// One download per file at a time: the page's own requests and the fill-in share it (a slow link must
// not carry the bundle twice). The response kept in the cache is a copy; each caller gets its own.
const downloads = new Map();

function download(url) {
  if (!downloads.has(url)) {
    const fetched = fetch(url).then(async (response) => {
      if (response.ok) await keep(url, response.clone());
      return response;
    }).finally(() => downloads.delete(url));
    downloads.set(url, fetched);
  }
  return downloads.get(url).then((response) => response.clone());
}

/** The build's files (the page first), or null when the manifest cannot be read. */
async function shellFiles() {
  const manifest = await fetch(new URL('asset-manifest.json', SHELL), { cache: 'no-cache' });
  if (!manifest.ok) return null;
  const files = new Set([SHELL]);
  for (const chunk of Object.values(await manifest.json())) {
    for (const file of [chunk.file, ...(chunk.css ?? []), ...(chunk.assets ?? [])]) {
      if (file) files.add(new URL(file, SHELL).href);
    }
  }
  return [...files];
}

/** Keeps every file of the build the cache lacks, each on its own. With `pageKept` (a promise: the page
 * of this deployment is in the cache), once every listed file is kept too, drops built files the build
 * no longer lists: until then an older cached page may still need them. */
async function keepShell(pageKept = Promise.resolve(false)) {
  const files = await shellFiles();
  if (!files) return;
  const cache = await caches.open(CACHE);
  const missing = [];
  for (const url of files) if (!(await cache.match(url))) missing.push(url);
  await Promise.allSettled(missing.map(download));
  if (!(await pageKept)) return;
  for (const url of files) if (!(await cache.match(url))) return;
  const listed = new Set(files);
  for (const request of await cache.keys()) {
    if (BUILT_FILE.test(new URL(request.url).pathname) && !listed.has(request.url)) await cache.delete(request);
  }
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

const isPage = (response) => response.ok && (response.headers.get('content-type') ?? '').includes('text/html');

/** The page, whatever its query (?model=..., ?backend=...): one copy, the latest the network gave (an
 * HTML page: a JSON or script file opened in a tab is not the page). Resolves to [answer, kept], kept a
 * promise of whether this deployment's page is now in the cache. */
function page(request) {
  // Past the HTTP cache: an older deployment's page kept there would be stored as this deployment's,
  // and the pruning below would leave it without its files.
  const network = fetch(request, { cache: 'no-cache' });
  const kept = network.then((response) => (isPage(response) ? keep(SHELL, response.clone()) : false), () => false);
  const cached = () => caches.match(SHELL).catch(() => undefined);
  const answer = new Promise((resolve) => {
    let answered = false;
    const settle = (response) => { if (!answered) { answered = true; resolve(response); } };
    // A stalled link: past the wait the cached page answers, if there is one (the network's answer still
    // refreshes the cache).
    const timer = setTimeout(() => cached().then((hit) => { if (hit) settle(hit); }), NETWORK_WAIT_MS);
    // A server error (a proxy whose server is down answers 502 at once) is no page: the cached one answers.
    network.then((response) => {
      clearTimeout(timer);
      if (response.status < 500) settle(response);
      else cached().then((hit) => settle(hit || response));
    }).catch(() => { clearTimeout(timer); cached().then((hit) => settle(hit || Response.error())); });
  });
  return [answer, kept];
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin || MODEL_FILE.test(url.pathname)) return;
  if (request.mode === 'navigate') {
    const [answer, kept] = page(request);
    event.respondWith(answer);
    // A visit that reaches the server fills in what an earlier try could not keep.
    event.waitUntil?.(keepShell(kept).catch(() => undefined));
    return;
  }
  const cachedFirst = BUILT_FILE.test(url.pathname);
  event.respondWith((async () => {
    const hit = cachedFirst ? await caches.match(request).catch(() => undefined) : undefined;
    if (hit) return hit;
    try {
      return await download(request.url);
    } catch {
      return (await caches.match(request).catch(() => undefined)) || Response.error();
    }
  })());
});
