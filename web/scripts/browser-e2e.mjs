// Drives the built web client in headless chromium (playwright-core, no bundled browser):
//   node scripts/browser-e2e.mjs --app URL --model CDN_MODEL_URL --image GOOD.jpeg --corrupt BAD.jpeg \
//        --huge HUGE.png --clear CLEAR.png --flat FLAT.png --plain PLAIN.png --gamma GAMMA.png --tiny TINY.png \
//        --cdn-pid PID --origin DIR [--chromium ...]
// 1. loads the page, which fetches the model through the CDN; 2. classifies GOOD, chosen through the
// keyboard (Tab to the drop zone, Enter, file chooser); 3. gives it BAD, then HUGE (a small file of too
// many pixels), then CLEAR (transparent parts) and FLAT (CLEAR as the pipeline ingests it), PLAIN and
// GAMMA (the same pixels, with a gamma chunk), TINY (3 x 3 pixels); 4. on the
// CDN's origin DIR,
// points latest.json at a copy of the version with one shard altered (same length) and reloads: the
// shard must be refused and the cached version must answer, saying so; then at a copy whose metadata
// names a fifth class: the model loads but cannot answer so, and the cached version must answer; 5. opens the page with a model
// URL of a foreign origin: refused (before it, a new profile meets a version whose shard is damaged, then
// mended on the origin: the reload must load it); 6. stops the CDN (SIGTERM to PID) and reloads: the model must come
// from the offline cache and classify GOOD again. Before 6, a new profile visits once, then goes
// offline altogether and reloads: the page and the model must come from that browser alone.
// Prints what it saw as JSON; the Python test decides pass or fail.
import { cpSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values: opt } = parseArgs({
  options: {
    app: { type: 'string' }, model: { type: 'string' }, image: { type: 'string' },
    corrupt: { type: 'string' }, huge: { type: 'string' },
    clear: { type: 'string' }, flat: { type: 'string' }, plain: { type: 'string' }, gamma: { type: 'string' },
    tiny: { type: 'string' }, 'cdn-pid': { type: 'string' }, origin: { type: 'string' },
    chromium: { type: 'string', default: process.env.BLOODCELL_CHROMIUM || '/usr/bin/chromium' },
  },
});

const TIMEOUT = 120_000;

async function modelState(page) {
  await page.waitForSelector('#model-status:is([data-state="ready"], [data-state="offline"], [data-state="error"])',
    { timeout: TIMEOUT });
  return page.$eval('#model-status', (el) => ({
    state: el.dataset.state, source: el.dataset.source ?? null, version: el.dataset.version ?? null,
    text: el.textContent, note: el.dataset.note ?? null,
  }));
}

async function lastResult(page, count) {
  // Complete: an error, or an answer with its review controls (or the line saying it cannot be reviewed).
  await page.waitForFunction((n) => {
    const item = document.querySelectorAll('#results li')[n - 1];
    return item && (item.dataset.state === 'error' || (item.dataset.state === 'done'
      && item.querySelector('.review-buttons, p.hint:not(.answer-record)') !== null));
  }, count, { timeout: TIMEOUT });
  return page.$eval(`#results li:nth-child(${count})`, (el) => ({
    state: el.dataset.state, className: el.dataset.class ?? null, review: el.dataset.review ?? null,
    role: el.getAttribute('role'), text: el.textContent,
    record: el.querySelector('.answer-record')?.textContent ?? null,
    probabilities: Array.from(el.querySelectorAll('meter'), (m) => m.value),
  }));
}

/** The window the model classified, as drawn on the image once its review controls are up. */
async function cropBox(page, n) {
  const canvas = `#results li:nth-child(${n}) canvas.cell-view`;
  await page.waitForSelector(canvas, { timeout: TIMEOUT });
  return page.$eval(canvas, (el) => el.dataset.cropBox ?? null);
}

async function cdnDown(url) {
  for (let i = 0; i < 100; i++) {
    try { await fetch(url); } catch { return; }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the CDN still answers after SIGTERM');
}

const browser = await chromium.launch({
  executablePath: opt.chromium, headless: true,
  // The test already runs in a sandbox (bubblewrap), where chromium's own one cannot start.
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});
const report = { console: [] };
try {
  const page = await (await browser.newContext()).newPage();
  page.on('console', (m) => { if (m.type() === 'error') report.console.push(m.text()); });
  // Listening from the start turns on file-chooser interception before any key is pressed.
  const choosers = [];
  page.on('filechooser', (c) => choosers.push(c));
  const url = `${opt.app}/?model=${encodeURIComponent(opt.model)}`;
  await page.goto(url);
  report.first = await modelState(page);
  if (report.first.state !== 'ready') throw new Error(`model not ready: ${report.first.text}`);
  // The offline copy of the model is only as safe as the page's storage: kept, reviews or not.
  await page.waitForSelector('#storage-note[data-persisted]', { state: 'attached', timeout: TIMEOUT });
  report.storageAfterLoad = await page.$eval('#storage-note', (el) => ({ persisted: el.dataset.persisted, shown: !el.hidden }));
  report.labels = await page.evaluate(() => ({
    fileInput: document.querySelector('label[for="file-input"]')?.textContent ?? null,
    dropZone: document.getElementById('drop-zone')?.getAttribute('aria-label') ?? null,
  }));

  // Keyboard only: Tab until the drop zone has focus, then Enter opens the file chooser.
  let focused = null;
  for (let i = 0; i < 10 && focused !== 'drop-zone'; i++) {
    await page.keyboard.press('Tab');
    focused = await page.evaluate(() => document.activeElement?.id ?? null);
  }
  report.keyboardReachedDropZone = focused === 'drop-zone';
  await page.keyboard.press('Enter');
  for (let i = 0; i < 100 && !choosers.length; i++) await page.waitForTimeout(100);
  if (!choosers.length) throw new Error('Enter on the drop zone opened no file chooser');
  await choosers[0].setFiles(opt.image);
  report.good = await lastResult(page, 1);

  await page.setInputFiles('#file-input', opt.corrupt);
  report.corrupt = await lastResult(page, 2);
  await page.setInputFiles('#file-input', opt.huge);
  report.huge = await lastResult(page, 3);
  await page.setInputFiles('#file-input', opt.clear);
  report.clear = { ...await lastResult(page, 4), cropBox: await cropBox(page, 4) };
  await page.setInputFiles('#file-input', opt.flat);
  report.flat = { ...await lastResult(page, 5), cropBox: await cropBox(page, 5) };
  // PLAIN and GAMMA hold the same pixels, GAMMA with a PNG gamma chunk that TF does not apply.
  await page.setInputFiles('#file-input', opt.plain);
  report.plain = { ...await lastResult(page, 6), cropBox: await cropBox(page, 6) };
  await page.setInputFiles('#file-input', opt.gamma);
  report.gamma = { ...await lastResult(page, 7), cropBox: await cropBox(page, 7) };
  // TINY: 3 x 3 pixels.
  await page.setInputFiles('#file-input', opt.tiny);
  report.tiny = await lastResult(page, 8);

  // A channel pointing at a broken version: a shard altered on the CDN, same length, original name.
  const channel = join(opt.origin, 'bloodcell');
  const good = JSON.parse(readFileSync(join(channel, 'latest.json'), 'utf8')).version;
  const broken = '9999999999';
  cpSync(join(channel, good), join(channel, broken), { recursive: true });
  const shard = readdirSync(join(channel, broken)).find((f) => f.endsWith('.bin'));
  const bytes = readFileSync(join(channel, broken, shard));
  for (let i = 0; i < 64; i++) bytes[i] ^= 0xff;
  writeFileSync(join(channel, broken, shard), bytes);
  const metadata = JSON.parse(readFileSync(join(channel, broken, 'metadata.json'), 'utf8'));
  writeFileSync(join(channel, broken, 'metadata.json'), JSON.stringify({ ...metadata, version: broken }));
  writeFileSync(join(channel, 'latest.json'), JSON.stringify(
    { version: broken, model_url: `${broken}/model.json`, metadata_url: `${broken}/metadata.json` }));
  await page.reload();
  report.brokenChannel = await modelState(page);
  await page.setInputFiles('#file-input', opt.image);
  report.brokenChannelGood = await lastResult(page, 1);
  // Read again with the channel unchanged, that version's failure is still what the page says.
  await page.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
  await page.waitForSelector('#model-status[data-channel="unloadable"]', { timeout: TIMEOUT });
  report.brokenChannelRechecked = await modelState(page);

  // A channel pointing at a version that loads but cannot answer as its metadata says: a fifth class.
  const mismatched = '9999999998';
  cpSync(join(channel, good), join(channel, mismatched), { recursive: true });
  writeFileSync(join(channel, mismatched, 'metadata.json'), JSON.stringify(
    { ...metadata, version: mismatched, class_names: [...metadata.class_names, 'BASOPHIL'] }));
  writeFileSync(join(channel, 'latest.json'), JSON.stringify(
    { version: mismatched, model_url: `${mismatched}/model.json`, metadata_url: `${mismatched}/metadata.json` }));
  // Same length as the pointer before, and maybe the same second: nginx's ETag and Last-Modified would
  // not change, and the browser's revalidation would keep the old pointer.
  const later = new Date(Date.now() + 10_000);
  utimesSync(join(channel, 'latest.json'), later, later);
  await page.reload();
  report.mismatchedChannel = await modelState(page);

  // A link that stalls: latest.json never answers. The cached version must answer, not "Loading" forever.
  await page.route('**/latest.json', () => {});
  await page.reload();
  report.stalledChannel = await modelState(page);
  await page.unroute('**/latest.json');

  // A network that answers every address with its own page (a Wi-Fi sign-in): reached, not offline.
  await page.route('**/latest.json', (route) => route.fulfill(
    { status: 200, contentType: 'text/html', body: '<html><body>Sign in to continue</body></html>' }));
  await page.reload();
  report.htmlChannel = await modelState(page);
  await page.unroute('**/latest.json');

  // A tab left open: the channel is read again when the page comes back into view. A newer version is
  // announced; a rollback that withdrew the loaded version stops it answering.
  const pointTo = (pointer, seconds) => {
    writeFileSync(join(channel, 'latest.json'), JSON.stringify(pointer));
    const at = new Date(Date.now() + seconds * 1000);
    utimesSync(join(channel, 'latest.json'), at, at);
  };
  pointTo({ version: good, model_url: `${good}/model.json`, metadata_url: `${good}/metadata.json` }, 12);
  await page.reload();
  report.reopened = await modelState(page);
  const seen = () => page.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
  const channelSays = async (kind) => {
    await page.waitForSelector(`#model-status[data-channel="${kind}"]`, { timeout: TIMEOUT });
    return { ...await modelState(page), fileInputDisabled: await page.$eval('#file-input', (el) => el.disabled) };
  };
  const newer = '9999999997';
  pointTo({ version: newer, model_url: `${newer}/model.json`, metadata_url: `${newer}/metadata.json` }, 14);
  await seen();
  report.newerWhileOpen = await channelSays('newer');
  // A rollback from the cached version to one this browser cannot load (version 1 is not there).
  const rolledBack = { version: '1', model_url: '1/model.json', metadata_url: '1/metadata.json', pinned: true,
    rolled_back_from: good, withdrawn: [good] };
  const back = { version: good, model_url: `${good}/model.json`, metadata_url: `${good}/metadata.json` };
  // Reloaded: the cached copy is the withdrawn version, so it must not answer in place of version 1.
  pointTo(rolledBack, 16);
  await page.reload();
  report.withdrawnCache = await modelState(page);
  // That copy was dropped (offline, a reload would have used it again): with the channel back on that
  // version, it comes from the network.
  pointTo(back, 18);
  await page.reload();
  report.afterWithdrawal = await modelState(page);
  // Open, the page reads the rollback on coming into view: it stops answering.
  pointTo(rolledBack, 20);
  await seen();
  report.withdrawnWhileOpen = await channelSays('withdrawn');
  // Dropped onto the page (the file input is off, the drop zone is not): not classified either.
  const rows = () => page.$$eval('#results li', (items) => items.length);
  const before = await rows();
  await page.evaluate(() => {
    const dropped = new DataTransfer();
    dropped.items.add(new File([new Uint8Array(64)], 'dropped.png', { type: 'image/png' }));
    document.getElementById('drop-zone').dispatchEvent(new DragEvent('drop', { dataTransfer: dropped, bubbles: true, cancelable: true }));
  });
  await page.waitForTimeout(1000);
  report.droppedWhileWithdrawn = (await rows()) - before;
  // Dropped there too: back on that version, it comes from the network again.
  pointTo(back, 22);
  await page.reload();
  report.afterWithdrawalWhileOpen = await modelState(page);
  // Two tabs: the other one loads the rollback's version and keeps it; this one then sees its own
  // version withdrawn, and must drop only that version's copy, not the other tab's.
  const second = '2';
  cpSync(join(channel, good), join(channel, second), { recursive: true });
  writeFileSync(join(channel, second, 'metadata.json'), JSON.stringify({ ...metadata, version: second }));
  pointTo({ version: second, model_url: `${second}/model.json`, metadata_url: `${second}/metadata.json`, pinned: true,
    rolled_back_from: good, withdrawn: [good] }, 24);
  const other = await page.context().newPage();
  await other.goto(url);
  report.otherTab = await modelState(other);
  await seen();
  report.withdrawnBesideOther = await channelSays('withdrawn');
  await other.reload();
  report.otherTabReloaded = await modelState(other);
  await other.close();
  pointTo(back, 26);
  await page.reload();
  report.afterOtherTab = await modelState(page);

  // Storage full: a browser holding a version that a rollback withdrew downloads the rollback's version
  // but cannot keep it. The withdrawn copy must not stay behind to answer offline.
  const full = await browser.newContext();
  const tab = await full.newPage();
  await tab.goto(url);
  report.beforeFull = await modelState(tab);
  await tab.evaluate(() => navigator.serviceWorker.ready.then(() => true));
  await full.addInitScript(() => {
    IDBObjectStore.prototype.put = () => { throw new DOMException('the disk is full', 'QuotaExceededError'); };
  });
  pointTo({ version: second, model_url: `${second}/model.json`, metadata_url: `${second}/metadata.json`, pinned: true,
    rolled_back_from: good, withdrawn: [good] }, 28);
  await tab.reload();
  report.fullRollback = await modelState(tab);
  await full.setOffline(true);
  await tab.reload().catch(() => undefined);
  report.fullOffline = await modelState(tab).catch((e) => ({ error: String(e?.message ?? e).split('\n')[0] }));
  await full.close();

  // A shard damaged on the origin, then mended there (a publish run again): a browser sent the damaged
  // one keeps it in its HTTP cache (a year, immutable), and must not fail on that copy for good.
  const mended = '9999999996';
  cpSync(join(channel, good), join(channel, mended), { recursive: true });
  writeFileSync(join(channel, mended, 'metadata.json'), JSON.stringify({ ...metadata, version: mended }));
  const sound = readFileSync(join(channel, mended, shard));
  writeFileSync(join(channel, mended, shard), bytes);
  pointTo({ version: mended, model_url: `${mended}/model.json`, metadata_url: `${mended}/metadata.json` }, 30);
  const mend = await browser.newContext();
  const mendTab = await mend.newPage();
  await mendTab.goto(url);
  report.damagedShard = await modelState(mendTab);
  writeFileSync(join(channel, mended, shard), sound);
  await mendTab.reload();
  report.mendedShard = await modelState(mendTab);
  await mend.close();

  // A model URL of another origin (a link someone sent): refused, whatever it serves.
  const foreign = await (await browser.newContext()).newPage();
  await foreign.goto(`${opt.app}/?model=${encodeURIComponent('https://models.example.invalid/bloodcell/')}`);
  report.foreign = await modelState(foreign);
  await foreign.close();

  // One visit in a new browser profile, then no network at all, the page's own server included: the
  // page must come from this browser's service worker, and the model from IndexedDB.
  writeFileSync(join(channel, 'latest.json'), JSON.stringify(
    { version: good, model_url: `${good}/model.json`, metadata_url: `${good}/metadata.json` }));
  const evenLater = new Date(Date.now() + 40_000);  // after every pointTo above
  utimesSync(join(channel, 'latest.json'), evenLater, evenLater);
  const fresh = await browser.newContext();
  const visitor = await fresh.newPage();
  // Opened while the CDN is down, nothing cached: the page loads the model once the network returns.
  await fresh.route('**/latest.json', (route) => route.abort('connectionrefused'));
  await visitor.goto(url);
  report.firstVisitCdnDown = await modelState(visitor);
  await fresh.unroute('**/latest.json');
  await visitor.evaluate(() => window.dispatchEvent(new Event('online')));
  await visitor.waitForSelector('#model-status[data-state="ready"]', { timeout: TIMEOUT });
  report.firstVisit = await modelState(visitor);
  await visitor.evaluate(() => navigator.serviceWorker.ready.then(() => true));
  await fresh.setOffline(true);
  await visitor.reload().catch(() => undefined);
  report.firstVisitOffline = await modelState(visitor).catch((e) => ({ error: String(e?.message ?? e).split('\n')[0] }));
  await fresh.close();

  process.kill(Number(opt['cdn-pid']), 'SIGTERM');
  await cdnDown(new URL('latest.json', opt.model).href);
  await page.reload();
  report.offline = await modelState(page);
  await page.setInputFiles('#file-input', opt.image);
  report.offlineGood = await lastResult(page, 1);
} catch (err) {
  report.error = String(err?.message ?? err).split('\n')[0];
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(report));
