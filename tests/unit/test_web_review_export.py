"""The web client's review export (web/src/reviewExport.js) in Node, on fake-indexeddb's IndexedDB, read
back by the pipeline's own reader of exports."""
from __future__ import annotations

import base64
import hashlib

from components.image_example_gen.lab_sources import read_export
from testkit import browser as bh
from testkit.images import sample_jpegs

CLASSES = ["EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"]
JPEGS = [p.read_bytes() for p in sample_jpegs("TEST", "LYMPHOCYTE")[:3]]


def cell(data: bytes, lab: str, label: str) -> str:
    sha = hashlib.sha256(data).hexdigest()
    return (f"{{sha256: '{sha}', originalName: 'cell {sha[:4]}.jpg', mime: 'image/jpeg', "
            f"bytes: Uint8Array.from(atob('{base64.b64encode(data).decode()}'), (c) => c.charCodeAt(0)).buffer, "
            f"lab: '{lab}', modelVersion: '5', answer: 'NEUTROPHIL', probabilities: [0, 0, 0, 1], "
            "flags: {lowConfidence: false, unlikeTraining: false, invalid: false}, cropBox: null, "
            f"label: '{label}', reviewedAt: '2026-12-07T00:00:00.000Z'}}")


def run_export(body: str):
    script = ("import 'fake-indexeddb/auto';\n"
              "import { IDBObjectStore as FakeStore } from 'fake-indexeddb';\n"
              "const store = await import('./src/reviewStore.js');\n"
              "const { exportLab } = await import('./src/reviewExport.js');\n"
              # getAll would hold every image's bytes at once: the export must not need it.
              "const getAll = FakeStore.prototype.getAll;\n"
              "FakeStore.prototype.getAll = function (...args) {\n"
              "  if (this.name === 'cells') throw new Error('out of memory');\n"
              "  return getAll.apply(this, args);\n"
              "};\n" + body)
    return bh.node_json(script)


def test_an_export_is_built_one_cell_at_a_time_and_the_pipeline_takes_it(tmp_path):
    """The export read every image of the store at once (getAll), then built the zip in memory, then
    copied it into a Blob: a lab's store of full-field images could not be exported at all."""
    result = run_export(f"""
        await store.saveReview({cell(JPEGS[0], 'mylab', 'LYMPHOCYTE')});
        await store.saveReview({cell(JPEGS[1], '', 'MONOCYTE')});  // reviewed before the lab was named
        await store.saveReview({cell(JPEGS[2], 'otherlab', 'UNSURE')});
        const out = await exportLab('mylab', new Date('2026-12-07T10:00:00Z'), 64);  // many small parts
        const zip = Buffer.from(await out.blobs[0].arrayBuffer()).toString('base64');
        const renamed = (await store.getReview('{hashlib.sha256(JPEGS[1]).hexdigest()}')).lab;
        process.stdout.write(JSON.stringify({{zip, zips: out.blobs.length, cells: out.cells.length, others: out.others,
                                              renamed}}));
    """)
    assert result["zips"] == 1 and result["cells"] == 2 and result["others"] == ["otherlab"], result
    assert result["renamed"] == "mylab", result
    path = tmp_path / "export.zip"
    path.write_bytes(base64.b64decode(result["zip"]))
    reviews, refused, header = read_export(str(path), "export.zip", CLASSES, 0)
    assert header.lab == "mylab" and (header.part, header.parts) == (1, 1) and refused == []
    assert sorted((r.sha256, r.label) for r in reviews) == sorted(
        [(hashlib.sha256(JPEGS[0]).hexdigest(), "LYMPHOCYTE"), (hashlib.sha256(JPEGS[1]).hexdigest(), "MONOCYTE")])


def test_an_export_that_fails_leaves_the_store_as_it_was():
    # The cursor goes by sha256: the unnamed cell comes first, and is renamed before the failure.
    first, second = sorted(JPEGS[:2], key=lambda data: hashlib.sha256(data).hexdigest())
    result = run_export(f"""
        await store.saveReview({cell(first, '', 'LYMPHOCYTE')});
        await store.saveReview({{...{cell(second, 'mylab', 'MONOCYTE')}, bytes: null}});  // unreadable
        let failure = null;
        try {{ await exportLab('mylab'); }} catch (err) {{ failure = err instanceof Error ? err.name : String(err); }}
        const unnamed = (await store.getReview('{hashlib.sha256(first).hexdigest()}')).lab;
        process.stdout.write(JSON.stringify({{failure, unnamed}}));
    """)
    assert result == {"failure": "TypeError", "unnamed": ""}


def test_reviews_one_zip_cannot_hold_go_out_as_several_whole_exports(tmp_path):
    """fflate writes no ZIP64: past 4 GiB or 65,535 files a zip came out corrupt. Then the export failed,
    and a lab with that many reviews could not export at all without deleting some."""
    data = sorted(JPEGS, key=lambda d: hashlib.sha256(d).hexdigest())
    result = run_export(f"""
        await store.saveReview({cell(data[0], '', 'LYMPHOCYTE')});
        await store.saveReview({cell(data[1], 'mylab', 'MONOCYTE')});
        await store.saveReview({cell(data[2], 'mylab', 'EOSINOPHIL')});
        const {{ exportFileName }} = await import('./src/reviewExport.js');
        const zips = async (limits) => {{
          const out = await exportLab('mylab', new Date('2026-12-07T10:00:00Z'), 64, limits);
          return Promise.all(out.blobs.map(async (b) => Buffer.from(await b.arrayBuffer()).toString('base64')));
        }};
        const byCount = await zips({{bytes: 1e9, files: 2, manifestBytes: 1e9}});
        const byBytes = await zips({{bytes: {len(data[0]) + len(data[1])}, files: 10, manifestBytes: 1e9}});
        const whole = await zips({{bytes: 1e9, files: 3, manifestBytes: 1e9}});
        const tooLarge = await exportLab('mylab', new Date(), 64, {{bytes: {max(map(len, data)) - 1}, files: 10}})
          .then(() => 'exported', (err) => err.message);
        const names = [exportFileName('mylab', new Date('2026-12-07T10:00:00Z'), 2, 3),
                       exportFileName('mylab', new Date('2026-12-07T10:00:00Z'))];
        process.stdout.write(JSON.stringify({{byCount, byBytes, whole, tooLarge, names}}));
    """)

    def read(zips):
        out = []
        for i, zipped in enumerate(zips):
            path = tmp_path / f"{len(zips)}-{i}.zip"
            path.write_bytes(base64.b64decode(zipped))
            reviews, refused, header = read_export(str(path), path.name, CLASSES, i)
            assert refused == [] and header.lab == "mylab"
            # Numbered, so that the pipeline can name a zip not copied over.
            assert (header.part, header.parts) == (i + 1, len(zips))
            out.append(sorted(r.sha256 for r in reviews))
        return out

    shas = [hashlib.sha256(d).hexdigest() for d in data]
    assert read(result["byCount"]) == [shas[:2], shas[2:]]
    assert read(result["byBytes"]) == [shas[:2], shas[2:]]
    assert read(result["whole"]) == [shas]
    assert result["tooLarge"].startswith("an image of mylab (cell ") and "larger than a zip can hold" in result["tooLarge"]
    assert result["names"] == ["bloodcell-review-mylab-2026-12-07T10-00-00-000Z-part2-of-3.zip",
                               "bloodcell-review-mylab-2026-12-07T10-00-00-000Z.zip"]


def test_each_zip_of_a_large_lab_keeps_its_manifest_under_what_the_pipeline_reads(tmp_path):
    """Zips were split at 65,534 images, but the pipeline refuses a manifest over
    REVIEW_MANIFEST_MAX_BYTES, reached at about 31,000 cells: a large lab's every export was refused
    whole ("not a review export (manifest.json of N bytes)")."""
    import zipfile

    from models.features import REVIEW_MANIFEST_MAX_BYTES

    data = sorted(JPEGS, key=lambda d: hashlib.sha256(d).hexdigest())
    saves = "\n".join(f"await store.saveReview({cell(d, 'mylab', 'LYMPHOCYTE')});" for d in data)

    def export(limits: str):
        return run_export(f"""
            {saves}
            const {{ ZIP_LIMITS, MAX_PARTS }} = await import('./src/reviewExport.js');
            const out = await exportLab('mylab', new Date('2026-12-07T10:00:00Z'), 64, {limits});
            const zips = await Promise.all(out.blobs.map(async (b) => Buffer.from(await b.arrayBuffer()).toString('base64')));
            process.stdout.write(JSON.stringify({{zips, limits: ZIP_LIMITS, maxParts: MAX_PARTS}}));
        """)

    def manifests(zips):
        out = []
        for i, zipped in enumerate(zips):
            path = tmp_path / f"{len(zips)}-{i}.zip"
            path.write_bytes(base64.b64decode(zipped))
            with zipfile.ZipFile(path) as archive:
                out.append(archive.getinfo("manifest.json").file_size)
            reviews, refused, _ = read_export(str(path), path.name, CLASSES, i)
            assert refused == [], refused
            out[-1] = (out[-1], len(reviews))
        return out

    whole = export("{bytes: 1e9, files: 10, manifestBytes: 1e9}")
    assert whole["limits"].get("manifestBytes", 1e18) <= REVIEW_MANIFEST_MAX_BYTES, whole["limits"]
    [(size, cells)] = manifests(whole["zips"])
    assert cells == 3
    # The count of zips is known only at the end: the sizing keeps room for the widest.
    room = size + len(str(whole["maxParts"])) - len("1")
    assert manifests(export(f"{{bytes: 1e9, files: 10, manifestBytes: {room}}}")["zips"]) == [(size, 3)]
    split = manifests(export(f"{{bytes: 1e9, files: 10, manifestBytes: {size - 1}}}")["zips"])
    assert [cells for _, cells in split] == [2, 1] and all(s <= size - 1 for s, _ in split), split


def test_an_export_from_a_machine_whose_clock_is_before_1980_is_written(tmp_path):
    """A zip's entries carry DOS times (1980-2099): fflate stamped each with the machine's clock, and on a
    machine reset to 1970 (a dead clock battery) the export failed ("date not in range 1980-2099")."""
    result = run_export(f"""
        await store.saveReview({cell(JPEGS[0], 'mylab', 'LYMPHOCYTE')});
        Date.now = () => Date.parse('1975-01-01T00:00:00Z');
        const out = await exportLab('mylab', new Date('1975-01-01T00:00:00Z'))
          .then(async (o) => Buffer.from(await o.blobs[0].arrayBuffer()).toString('base64'), (err) => String(err));
        process.stdout.write(JSON.stringify({{out}}));
    """)
    assert not result["out"].startswith("Error"), result
    path = tmp_path / "old-clock.zip"
    path.write_bytes(base64.b64decode(result["out"]))
    reviews, refused, lab = read_export(str(path), path.name, CLASSES, 0)
    assert refused == [] and len(reviews) == 1
