"""The web client's review store (web/src/reviewStore.js) in Node, on fake-indexeddb's IndexedDB."""
from __future__ import annotations

from testkit import browser as bh

CELL = ("{sha256: 'a'.repeat(64), originalName: 'x.jpg', mime: 'image/jpeg', bytes: new ArrayBuffer(4), "
        "lab: 'mylab', modelVersion: '5', answer: 'NEUTROPHIL', probabilities: [0, 0, 0, 1], "
        "flags: {lowConfidence: false, unlikeTraining: false, invalid: false}, cropBox: null, "
        "label: 'NEUTROPHIL', reviewedAt: '2026-12-07T00:00:00.000Z'}")


def run_store(body: str):
    """`body` (JavaScript, with `store` and `FakeStore` in scope) in Node; what it printed, as JSON."""
    script = ("import 'fake-indexeddb/auto';\n"
              "import { IDBObjectStore as FakeStore } from 'fake-indexeddb';\n"
              "const store = await import('./src/reviewStore.js');\n"
              "const labelsKept = async () => { const labels = []; "
              "await store.eachReview((c) => { labels.push(c.label); }); return labels; };\n" + body)
    return bh.node_json(script)


def test_a_write_whose_request_fails_rejects_with_an_error_that_says_why():
    """A failed request (Firefox reports a full quota so) rejected with null: the page's 'Not saved'
    line then threw, and the verdict vanished without a word while the old one stayed on screen."""
    result = run_store(f"""
        await store.saveReview({CELL});
        FakeStore.prototype.put = function (value) {{ return this.add(value); }};  // fails: the key exists
        let outcome;
        try {{ await store.saveReview({{...{CELL}, label: 'MONOCYTE'}}); outcome = 'saved'; }}
        catch (err) {{ outcome = err instanceof Error ? err.name + ': ' + err.message : String(err); }}
        const labels = await labelsKept();
        process.stdout.write(JSON.stringify({{outcome, labels}}));
    """)
    assert result["outcome"].startswith("ConstraintError: "), result
    assert result["labels"] == ["NEUTROPHIL"]


def test_a_second_verdict_on_a_cell_replaces_the_first():
    result = run_store(f"""
        await store.saveReview({CELL});
        await store.saveReview({{...{CELL}, label: 'MONOCYTE'}});
        process.stdout.write(JSON.stringify({{count: await store.countReviews(),
                                              labels: await labelsKept()}}));
    """)
    assert result == {"count": 1, "labels": ["MONOCYTE"]}


def test_a_cell_already_reviewed_is_found_by_its_hash():
    """Added again after a reload or a crash, an image had shown no sign of the verdict kept for it."""
    result = run_store(f"""
        await store.saveReview({{...{CELL}, label: 'MONOCYTE'}});
        process.stdout.write(JSON.stringify({{kept: (await store.getReview('a'.repeat(64)))?.label ?? null,
                                              other: (await store.getReview('b'.repeat(64))) ?? null}}));
    """)
    assert result == {"kept": "MONOCYTE", "other": None}


def test_the_lab_names_are_read_one_cell_at_a_time():
    """"Delete reviews" read every image's bytes at once to count lab names (getAll), and on a large
    store that failed: the page then asked to delete "all 0 reviewed cells"."""
    result = run_store(f"""
        await store.saveReview({CELL});
        await store.saveReview({{...{CELL}, sha256: 'b'.repeat(64), lab: 'mylba'}});
        const getAll = FakeStore.prototype.getAll;
        FakeStore.prototype.getAll = function (...args) {{
          if (this.name === 'cells') throw new Error('out of memory');
          return getAll.apply(this, args);
        }};
        process.stdout.write(JSON.stringify((await store.reviewSummary()).labs.sort()));
    """)
    assert result == ["mylab", "mylba"]


def test_delete_knows_which_verdicts_were_never_exported_as_they_stand():
    """"Delete reviews" asked the same question whether or not the cells had been exported: cells
    reviewed after the last export were deleted with the rest, without a word."""
    result = run_store(f"""
        const a = {CELL}, b = {{...{CELL}, sha256: 'b'.repeat(64)}}, c = {{...{CELL}, sha256: 'c'.repeat(64)}};
        for (const cell of [a, b, c]) await store.saveReview(cell);
        const before = (await store.reviewSummary()).unexported;
        await store.markExported([a, b]);
        const exported = (await store.reviewSummary()).unexported;
        await store.saveReview({{...b, label: 'MONOCYTE', reviewedAt: '2026-12-08T00:00:00.000Z'}});
        const changed = (await store.reviewSummary()).unexported;
        await store.clearReviews();
        await store.saveReview(a);
        process.stdout.write(JSON.stringify({{before, exported, changed, afterClear: (await store.reviewSummary()).unexported}}));
    """)
    assert result == {"before": 3, "exported": 1, "changed": 2, "afterClear": 1}


def test_delete_deletes_the_verdicts_it_asked_about_and_not_one_saved_meanwhile():
    """The reviewer is asked before a deletion; a verdict saved meanwhile in another tab (a new cell, or
    a cell reviewed again) was deleted with the rest, though the question did not count it."""
    result = run_store(f"""
        const a = {CELL}, b = {{...{CELL}, sha256: 'b'.repeat(64)}}, c = {{...{CELL}, sha256: 'c'.repeat(64)}};
        for (const cell of [a, b]) await store.saveReview(cell);
        await store.markExported([a, b]);
        const asked = (await store.reviewSummary()).verdicts;
        await store.saveReview(c);  // while the question is on screen
        await store.saveReview({{...b, label: 'MONOCYTE', reviewedAt: '2026-12-08T00:00:00.000Z'}});
        // Reviewed again with the very stamp asked about (two tabs stamp after one earlier verdict).
        const d = {{...{CELL}, sha256: 'd'.repeat(64)}};
        await store.saveReview(d);
        asked.push((await store.reviewSummary()).verdicts.find((v) => v.sha256 === d.sha256));
        await store.saveReview({{...d, label: 'EOSINOPHIL'}});
        const stayed = await store.clearReviews(asked);
        const left = [];
        await store.eachReview((cell) => {{ left.push([cell.sha256[0], cell.label]); }}, 'readonly');
        await store.saveReview(a);  // its export mark went with it: reviewed again, it is unexported
        process.stdout.write(JSON.stringify({{stayed, left, unexported: (await store.reviewSummary()).unexported}}));
    """)
    assert result == {"stayed": 3, "left": [["b", "MONOCYTE"], ["c", "NEUTROPHIL"], ["d", "EOSINOPHIL"]],
                      "unexported": 4}


def test_a_store_from_before_the_export_marks_keeps_its_cells_and_its_version():
    """The export marks came in a second version of the reviews' database: every tab still on the older
    page then failed to open it (VersionError) and could save no verdict. They have a database of their
    own; the reviews' stays at version 1, and its cells count as never exported."""
    result = run_store(f"""
        const openV1 = () => new Promise((resolve, reject) => {{
          const open = indexedDB.open('bloodcell-reviews', 1);
          open.onupgradeneeded = () => open.result.createObjectStore('cells', {{ keyPath: 'sha256' }})
            .put({CELL});
          open.onsuccess = () => {{ open.result.close(); resolve('opened'); }};
          open.onerror = () => reject(open.error);
        }});
        await openV1();
        const summary = await store.reviewSummary();
        await store.markExported([{CELL}]);
        process.stdout.write(JSON.stringify({{count: await store.countReviews(), unexported: summary.unexported,
                                              olderPage: await openV1().catch((e) => e.name)}}));
    """)
    assert result == {"count": 1, "unexported": 1, "olderPage": "opened"}
