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
const context = vm.createContext({ self, fetch: () => new Promise(() => {}), caches: {}, Response, URL });
vm.runInContext(readFileSync('public/sw.js', 'utf8'), context);
const answered = {};
for (const url of %(urls)s) {
  let taken = false;
  listeners.fetch({ request: { method: 'GET', url }, respondWith: () => { taken = true; } });
  answered[url] = taken;
}
process.stdout.write(JSON.stringify(answered));
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
