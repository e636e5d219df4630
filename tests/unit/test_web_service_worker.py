"""The web client's service worker (web/public/sw.js), run in Node with the browser's objects stubbed:
it keeps the page for offline use and leaves the model's files alone (the page keeps the model in
IndexedDB and must see, offline, that the model server cannot be reached)."""
from __future__ import annotations

import json
import subprocess

import pytest

from testkit import browser as bh

APP = "http://127.0.0.1:8080"
SCRIPT = """
import { readFileSync } from 'node:fs';
import vm from 'node:vm';
const listeners = {};
const self = { location: { origin: %(app)s, href: %(app)s + '/sw.js' }, addEventListener: (type, f) => { listeners[type] = f; },
  skipWaiting: () => undefined, clients: { claim: () => Promise.resolve() } };
const nothing = { match: async () => undefined, put: async () => undefined };
const context = vm.createContext({ self, fetch: () => new Promise(() => {}), Response, URL, setTimeout, clearTimeout,
  caches: { ...nothing, open: async () => nothing } });
vm.runInContext(readFileSync('public/sw.js', 'utf8'), context);
const answered = {};
for (const url of %(urls)s) {
  let taken = false;
  listeners.fetch({ request: { method: 'GET', url }, respondWith: () => { taken = true; }, waitUntil: () => undefined });
  answered[url] = taken;
}
process.stdout.write(JSON.stringify(answered));
process.exit(0);  // the worker's wait for a stalled network would keep Node up
"""


def answered_by_worker(urls: list[str]) -> dict[str, bool]:
    done = subprocess.run(["node", "--input-type=module", "-e",
                           SCRIPT % {"app": json.dumps(APP), "urls": json.dumps(urls)}],
                          cwd=bh.WEB, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_the_page_is_kept_for_offline_use():
    urls = [f"{APP}/", f"{APP}/index.html", f"{APP}/assets/index-abc123.js", f"{APP}/assets/tfjs-backend-wasm.wasm"]
    assert all(answered_by_worker(urls).values())


@pytest.mark.parametrize("path", ["/models/bloodcell/latest.json", "/models/bloodcell/7/model.json",
                                  "/models/bloodcell/7/metadata.json",
                                  "/models/bloodcell/7/group1-shard1of1.0123456789abcdef.bin"])
def test_the_models_files_on_the_pages_own_origin_are_left_to_the_page(path):
    # Cached here, latest.json would answer offline as if the server were reachable, and every
    # version's shards would pile up in the page's cache.
    assert answered_by_worker([APP + path]) == {APP + path: False}


def test_another_origin_is_left_alone():
    url = "http://cdn.example/bloodcell/latest.json"
    assert answered_by_worker([url]) == {url: False}


ACTIVATE = """
import { readFileSync } from 'node:fs';
import vm from 'node:vm';
const listeners = {};
const kept = %(kept)s.map((url) => ({ url }));
const cache = { keys: async () => kept.slice(),
  delete: async (request) => { kept.splice(kept.indexOf(request), 1); return true; } };
const self = { location: { origin: %(app)s, href: %(app)s + '/sw.js' }, addEventListener: (type, f) => { listeners[type] = f; },
  skipWaiting: () => undefined, clients: { claim: () => Promise.resolve() } };
const context = vm.createContext({ self, fetch: () => new Promise(() => {}), caches: { open: async () => cache },
  Response, URL, Promise });
vm.runInContext(readFileSync('public/sw.js', 'utf8'), context);
let done;
listeners.activate({ waitUntil: (promise) => { done = promise; } });
await done;
process.stdout.write(JSON.stringify(kept.map((r) => r.url)));
"""


def test_model_files_an_earlier_worker_cached_are_dropped_when_it_activates():
    # An earlier worker cached latest.json and shards on the page's origin: left there, they would
    # still answer offline as if the server were up.
    page = [f"{APP}/", f"{APP}/assets/index-abc123.js"]
    model = [f"{APP}/models/bloodcell/latest.json", f"{APP}/models/bloodcell/7/model.json",
             f"{APP}/models/bloodcell/7/group1-shard1of1.0123456789abcdef.bin"]
    done = subprocess.run(["node", "--input-type=module", "-e",
                           ACTIVATE % {"app": json.dumps(APP), "kept": json.dumps(page + model)}],
                          cwd=bh.WEB, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == page


WORKER = """
import { readFileSync } from 'node:fs';
import vm from 'node:vm';
const APP = %(app)s;
const network = %(network)s;   // url -> 'hang' | 'fail' | [status, body]; '*' for the rest
const store = new Map(Object.entries(%(cached)s));
const key = (r) => String(r?.url ?? r);
const blocked = %(blocked)s;  // storage the browser refuses: every cache call throws
const full = %(full)s;        // storage full: writes throw
const cache = {
  match: async (r) => {
    if (blocked) throw new DOMException('The operation is insecure.', 'SecurityError');
    return store.has(key(r)) ? new Response(store.get(key(r))) : undefined;
  },
  put: async (r, response) => {
    if (blocked || full) throw new DOMException('Quota exceeded.', 'QuotaExceededError');
    store.set(key(r), await response.text());
  },
  keys: async () => [...store.keys()].map((url) => ({ url })),
  delete: async (r) => store.delete(key(r)),
  // All or nothing, as the browser's: one failed download keeps none.
  addAll: async (urls) => {
    const answers = await Promise.all(urls.map((u) => fetch(u)));
    if (answers.some((a) => !a.ok)) throw new TypeError('Request failed');
    for (const [i, a] of answers.entries()) store.set(key(urls[i]), await a.text());
  },
};
const fetches = {};
const cacheModes = {};
function fetch(input, init) {
  fetches[key(input)] = (fetches[key(input)] ?? 0) + 1;
  cacheModes[key(input)] = init?.cache ?? input?.cache ?? 'default';
  const how = network[key(input)] ?? network['*'];
  if (how === 'hang') return new Promise(() => {});
  if (how === 'fail') return Promise.reject(new TypeError('Failed to fetch'));
  // [status, body, delay ms, content type (default: a page)]: a slow link
  const headers = { 'content-type': how[3] ?? 'text/html' };
  return new Promise((r) => setTimeout(() => r(new Response(how[1], { status: how[0], headers })), how[2] ?? 0));
}
const listeners = {};
const self = { location: { origin: APP, href: APP + '/sw.js' }, addEventListener: (type, f) => { listeners[type] = f; },
  skipWaiting: () => undefined, clients: { claim: () => Promise.resolve() } };
vm.runInContext(readFileSync('public/sw.js', 'utf8'), vm.createContext({ self, fetch, Response, URL, Promise,
  setTimeout, clearTimeout, caches: { open: async () => cache, match: (r, o) => cache.match(r, o) } }));
const report = { answers: [] };
for (const step of %(steps)s) {
  const pending = [];
  const event = { waitUntil: (p) => pending.push(p) };
  if (step.install) {
    listeners.install(event);
  } else {
    // Requests of one step are made together, as a page makes them.
    const started = Date.now();
    const answers = (step.together ?? [step]).map((one) => {
      let answer = null;
      listeners.fetch({ ...event, request: { method: 'GET', url: one.url, mode: one.mode ?? 'no-cors' },
        respondWith: (p) => { answer = p; } });
      return Promise.race([answer.then((r) => (r.type === 'error' ? 'error' : r.text())),
        new Promise((r) => setTimeout(() => r('no answer'), step.wait_ms))]);
    });
    for (const text of await Promise.all(answers)) report.answers.push({ text, ms: Date.now() - started });
  }
  // What the worker keeps doing after answering (waitUntil), unless the network stalls it for good.
  await Promise.race([Promise.allSettled(pending), new Promise((r) => setTimeout(r, 2000))]);
}
report.kept = [...store.keys()].sort();
report.bodies = Object.fromEntries(store);
report.fetches = fetches;
report.cacheModes = cacheModes;
process.stdout.write(JSON.stringify(report));
process.exit(0);
"""

MANIFEST = {"index.html": {"file": "assets/index-abc.js", "css": ["assets/index-def.css"],
                           "assets": ["assets/tfjs-backend-wasm-123.wasm"]}}
SHELL_FILES = [f"{APP}/", f"{APP}/assets/index-abc.js", f"{APP}/assets/index-def.css",
               f"{APP}/assets/tfjs-backend-wasm-123.wasm"]


def run_worker(steps, network, cached=None, blocked=False, full=False) -> dict:
    return bh.node_json(WORKER % {"app": json.dumps(APP), "network": json.dumps(network), "cached": json.dumps(cached or {}),
                                  "steps": json.dumps(steps), "blocked": json.dumps(blocked), "full": json.dumps(full)})


def test_one_file_that_fails_at_install_leaves_the_others_kept_and_the_next_visit_fetches_it():
    """The browser's addAll keeps nothing when one download fails, and the failure was swallowed: one
    flaky first visit left no offline page, and the same worker never installed again."""
    wasm = f"{APP}/assets/tfjs-backend-wasm-123.wasm"
    network = {f"{APP}/asset-manifest.json": [200, json.dumps(MANIFEST)], wasm: "fail", "*": [200, "fresh"]}
    first = run_worker([{"install": True}], network)
    assert first["kept"] == sorted(set(SHELL_FILES) - {wasm})
    network[wasm] = [200, "wasm"]
    later = run_worker([{"url": f"{APP}/", "mode": "navigate", "wait_ms": 2000}], network,
                       cached={url: "old" for url in first["kept"]})
    assert later["answers"][0]["text"] == "fresh" and later["kept"] == sorted(SHELL_FILES)


def test_a_built_file_comes_from_the_cache_without_waiting_for_a_stalled_link():
    """Built files are named by their content: network first, a connected but dead link held the page
    for as long as the browser waits, though every file was cached."""
    url = f"{APP}/assets/index-abc.js"
    seen = run_worker([{"url": url, "wait_ms": 1000}], {"*": "hang"}, cached={url: "kept"})
    assert seen["answers"][0]["text"] == "kept"


def test_the_page_comes_from_the_cache_when_the_link_stalls():
    seen = run_worker([{"url": f"{APP}/?model=x", "mode": "navigate", "wait_ms": 8000}], {"*": "hang"},
                      cached={f"{APP}/": "kept page"})
    assert seen["answers"][0]["text"] == "kept page" and 2500 <= seen["answers"][0]["ms"] < 6000, seen


def test_the_page_from_the_network_when_it_answers_and_the_cache_offline():
    answered = run_worker([{"url": f"{APP}/", "mode": "navigate", "wait_ms": 2000}], {"*": [200, "new page"]},
                          cached={f"{APP}/": "kept page"})
    assert answered["answers"][0]["text"] == "new page"
    offline = run_worker([{"url": f"{APP}/", "mode": "navigate", "wait_ms": 2000}], {"*": "fail"},
                         cached={f"{APP}/": "kept page"})
    assert offline["answers"][0]["text"] == "kept page"


def test_a_deployment_replaces_the_built_files_it_no_longer_lists():
    old = f"{APP}/assets/index-old.js"
    network = {f"{APP}/asset-manifest.json": [200, json.dumps(MANIFEST)], "*": [200, "new"]}
    seen = run_worker([{"url": f"{APP}/", "mode": "navigate", "wait_ms": 2000}], network,
                      cached={**{url: "kept" for url in SHELL_FILES}, old: "old bundle"})
    assert seen["kept"] == sorted(SHELL_FILES)


def test_the_page_under_any_query_is_one_cached_copy_the_latest():
    """Each ?model=... was kept apart, and offline the first match (maybe the oldest) answered."""
    network = {f"{APP}/asset-manifest.json": "fail", "*": [200, "page of today"]}
    seen = run_worker([{"url": f"{APP}/?model=a", "mode": "navigate", "wait_ms": 2000}], network,
                      cached={f"{APP}/": "page of last month"})
    assert seen["kept"] == [f"{APP}/"]
    offline = run_worker([{"url": f"{APP}/?backend=webgl", "mode": "navigate", "wait_ms": 2000}], {"*": "fail"},
                         cached={f"{APP}/": "page of today"})
    assert offline["answers"][0]["text"] == "page of today"


def test_a_file_the_page_and_the_fill_in_both_want_is_downloaded_once():
    """On a slow link the page's requests and the fill-in after a new deployment each fetched the bundle."""
    bundle = f"{APP}/assets/index-abc.js"
    network = {f"{APP}/asset-manifest.json": [200, json.dumps(MANIFEST)], bundle: [200, "bundle", 400],
               "*": [200, "x"]}
    seen = run_worker([{"together": [{"url": f"{APP}/", "mode": "navigate"}, {"url": bundle}], "wait_ms": 3000}],
                      network, cached={f"{APP}/": "page"})
    assert [a["text"] for a in seen["answers"]] == ["x", "bundle"]
    assert seen["fetches"][bundle] == 1 and bundle in seen["kept"]


def test_storage_that_throws_leaves_no_request_unanswered():
    seen = run_worker([{"url": f"{APP}/", "mode": "navigate", "wait_ms": 6000},
                       {"url": f"{APP}/assets/index-abc.js", "wait_ms": 2000}], {"*": "fail"}, blocked=True)
    assert [a["text"] for a in seen["answers"]] == ["error", "error"]


def test_a_full_cache_costs_the_offline_copy_not_the_answer():
    """The answer waited for its copy to be kept: a write that failed turned a good download into an error."""
    seen = run_worker([{"url": f"{APP}/", "mode": "navigate", "wait_ms": 2000},
                       {"url": f"{APP}/assets/index-abc.js", "wait_ms": 2000}],
                      {f"{APP}/asset-manifest.json": [200, json.dumps(MANIFEST)], "*": [200, "fine"]}, full=True)
    assert [a["text"] for a in seen["answers"]] == ["fine", "fine"]


def test_a_file_opened_in_a_tab_is_not_kept_as_the_page():
    seen = run_worker([{"url": f"{APP}/asset-manifest.json", "mode": "navigate", "wait_ms": 2000}],
                      {"*": [200, "{}", 0, "application/json"]}, cached={f"{APP}/": "the page"})
    assert seen["bodies"] == {f"{APP}/": "the page"}


def test_old_built_files_stay_while_the_cached_page_is_the_old_one():
    """Pruned as soon as the new manifest arrived, they left the old cached page without its bundle when
    the new page itself failed to download."""
    old = f"{APP}/assets/index-old.js"
    network = {f"{APP}/asset-manifest.json": [200, json.dumps(MANIFEST)], f"{APP}/": "fail", "*": [200, "new"]}
    seen = run_worker([{"url": f"{APP}/", "mode": "navigate", "wait_ms": 2000}], network,
                      cached={f"{APP}/": "old page", old: "old bundle"})
    assert old in seen["kept"] and seen["answers"][0]["text"] == "old page"


def test_the_page_is_fetched_past_the_http_cache():
    """An older deployment's page from the HTTP cache was stored as this one's: with all of this
    deployment's files kept, the older files were pruned, and the stored page lost its bundle."""
    seen = run_worker([{"url": f"{APP}/?model=a", "mode": "navigate", "wait_ms": 2000}],
                      {f"{APP}/asset-manifest.json": [200, json.dumps(MANIFEST)], "*": [200, "page"]})
    assert seen["cacheModes"][f"{APP}/?model=a"] == "no-cache"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_server_error_gives_the_cached_page_and_keeps_it(status):
    """A proxy in front of a server that is down answers 502 at once: the reviewer had that error page,
    not the page kept for offline use."""
    steps = [{"url": f"{APP}/", "mode": "navigate", "wait_ms": 2000},
             {"url": f"{APP}/assets/index-abc.js", "wait_ms": 2000}]
    network = {"*": [status, "Bad Gateway"]}
    seen = run_worker(steps, network, cached={f"{APP}/": "kept page"})
    assert seen["answers"][0]["text"] == "kept page" and seen["bodies"][f"{APP}/"] == "kept page", seen
    # A built file the cache lacks: the server's error is the only answer there is.
    assert seen["answers"][1]["text"] == "Bad Gateway", seen


def test_a_server_error_with_no_cached_page_is_shown():
    seen = run_worker([{"url": f"{APP}/", "mode": "navigate", "wait_ms": 2000}], {"*": [503, "Down for upkeep"]})
    assert seen["answers"][0]["text"] == "Down for upkeep", seen
