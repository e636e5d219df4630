// A reviewer at work in headless chromium (playwright-core, no bundled browser):
//   node scripts/browser-review.mjs --app URL --model CDN_MODEL_URL --lab NAME --images A,B,C \
//        --keys KEY,KEY,KEY --export OUT.zip [--fast] [--chromium /usr/bin/chromium]
// Names the lab, classifies the images, then reviews each in turn (focus on the first result, one verdict
// per image: 1-4 a class, Enter confirms, 5-7 not one of the classes; `click:N` clicks the image's N-th
// verdict button instead of a key, `hold:K` holds key K down so that it repeats; each verdict moves to
// the next image; `now:K` presses K at once on the focused image, which may not show its answer yet, and
// is no image's verdict; with --fast the verdicts come one after another without waiting for them to be
// saved, as a quick reviewer works; with --early each verdict comes as soon as its image shows its answer,
// from the first one on, while the next ones are still being classified; --clock-ahead-hours H sets the
// browser's clock H hours ahead of the machine's), reloads the page (the reviews must still be there) and exports them
// (with --close-unsaved, then gives a verdict the store refuses and closes the tab). Prints
// what it saw as JSON (answers, verdicts, crop boxes, the count before and after the reload, the lab's
// figure, whether the browser keeps the reviews' storage); the Python test decides pass or fail.
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values: opt } = parseArgs({
  options: {
    app: { type: 'string' }, model: { type: 'string' }, lab: { type: 'string' }, images: { type: 'string' },
    keys: { type: 'string' }, export: { type: 'string' }, profile: { type: 'string' }, fast: { type: 'boolean' },
    early: { type: 'boolean' }, 'clock-ahead-hours': { type: 'string', default: '0' },
    'close-unsaved': { type: 'boolean' },
    chromium: { type: 'string', default: process.env.BLOODCELL_CHROMIUM || '/usr/bin/chromium' },
  },
});
const TIMEOUT = 120_000;
const images = opt.images.split(',');
const keys = opt.keys.split(',');

// A persistent profile: a second run (the reviewer coming back) finds the first run's reviews.
const context = await chromium.launchPersistentContext(opt.profile, {
  executablePath: opt.chromium, headless: true, acceptDownloads: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});
const report = { console: [] };
try {
  const page = context.pages()[0] ?? await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') report.console.push(m.text()); });
  const ahead = Number(opt['clock-ahead-hours']) * 3600_000;
  if (ahead) await page.clock.install({ time: Date.now() + ahead });  // and it runs on from there
  await page.goto(`${opt.app}/?model=${encodeURIComponent(opt.model)}`);
  await page.waitForSelector('#model-status:is([data-state="ready"], [data-state="error"])', { timeout: TIMEOUT });
  report.version = await page.$eval('#model-status', (el) => el.dataset.version ?? el.textContent);
  await page.fill('#lab-name', opt.lab);
  await page.dispatchEvent('#lab-name', 'change');
  report.labFigure = await page.$eval('#lab-accuracy', (el) => el.textContent);
  report.countBefore = Number(await page.$eval('#review-count', (el) => el.dataset.count ?? '0'));

  await page.setInputFiles('#file-input', images);
  await page.waitForFunction((n) => document.querySelectorAll('#results li .review-buttons').length >= n
    || document.querySelectorAll('#results li[data-state="error"]').length > 0, opt.early ? 1 : images.length,
  { timeout: TIMEOUT });
  await page.focus('#results li:nth-child(1)');
  report.notYet = [];
  let row = 0;  // the image the next verdict is for
  for (let i = 0; i < keys.length; i++) {
    if (keys[i].startsWith('now:')) {  // at once, on an image that may not show its answer yet
      const state = await page.evaluate(() => document.activeElement?.dataset?.state ?? null);
      await page.keyboard.press(keys[i].slice(4));
      report.notYet.push({ state, text: await page.evaluate(() => document.activeElement?.textContent ?? null) });
      continue;
    }
    row += 1;
    if (opt.early) {  // the reviewer acts as soon as the answer shows
      await page.waitForSelector(`#results li:nth-child(${row}):is([data-state="done"], [data-state="error"])`,
        { timeout: TIMEOUT });
    }
    if (keys[i].startsWith('click:')) {
      await page.waitForSelector(`#results li:nth-child(${row}) .review-buttons`, { timeout: 1000 });
      await page.click(`#results li:nth-child(${row}) .review-buttons button:nth-child(${keys[i].slice(6)})`);
    } else if (keys[i].startsWith('hold:')) {
      for (let r = 0; r < 3; r++) await page.keyboard.down(keys[i].slice(5));  // the 2nd and 3rd repeat
      await page.keyboard.up(keys[i].slice(5));
    } else {
      await page.keyboard.press(keys[i]);
    }
    if (opt.fast || opt.early) continue;
    // Reviewed, and the focus has moved on (the next key is for the next image).
    await page.waitForFunction(([n, last]) => document.querySelector(`#results li:nth-child(${n})`)?.dataset.reviewed
      && (n === last || document.activeElement === document.querySelector(`#results li:nth-child(${n + 1})`)),
    [row, images.length], { timeout: TIMEOUT });
  }
  // Keys past the last image land on it (the focus stays there); an image that could not be classified
  // takes no verdict.
  await page.waitForFunction((n) => {
    const answered = Array.from(document.querySelectorAll('#results li')).slice(0, n)
      .filter((li) => li.dataset.state !== 'error').length;
    return document.querySelectorAll('#results li[data-reviewed]').length >= answered
      && Number(document.getElementById('review-count')?.dataset.count) >= answered;
  }, Math.min(row, images.length), { timeout: TIMEOUT });
  report.results = await page.$$eval('#results li', (items) => items.map((li) => ({
    file: li.dataset.file, answer: li.dataset.class ?? null, reviewed: li.dataset.reviewed ?? null,
    cropBox: li.querySelector('canvas')?.dataset.cropBox ?? null,
    focused: document.activeElement === li,
  })));
  const clock = await page.$eval('#clock-note', (el) => (el.hidden ? null : el.textContent));
  report.clockNote = clock;
  report.countAfterReview = Number(await page.$eval('#review-count', (el) => el.dataset.count ?? '0'));
  await page.waitForSelector('#storage-note[data-persisted]', { state: 'attached', timeout: TIMEOUT });
  report.storage = await page.$eval('#storage-note', (el) => ({ persisted: el.dataset.persisted,
    shown: !el.hidden, text: el.textContent.trim() }));

  await page.reload();
  await page.waitForSelector('#model-status:is([data-state="ready"], [data-state="error"])', { timeout: TIMEOUT });
  await page.waitForFunction(() => document.getElementById('review-count')?.dataset.count !== undefined);
  report.countAfterReload = Number(await page.$eval('#review-count', (el) => el.dataset.count));
  report.labAfterReload = await page.$eval('#lab-name', (el) => el.value);

  await page.focus('#export-reviews');
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: TIMEOUT }),
    page.keyboard.press('Enter')]);
  await download.saveAs(opt.export);
  report.exportName = download.suggestedFilename();
  report.exportText = await page.$eval('#review-count', (el) => el.textContent);

  if (opt['close-unsaved']) {
    // The store refuses a verdict (a full disk): closing the tab must ask first, not lose it silently.
    await page.setInputFiles('#file-input', images[0]);
    await page.waitForSelector('#results li:nth-child(1) .review-buttons', { timeout: TIMEOUT });
    await page.evaluate(() => {
      IDBObjectStore.prototype.put = () => { throw new DOMException('the disk is full', 'QuotaExceededError'); };
    });
    await page.focus('#results li:nth-child(1)');
    await page.keyboard.press('7');
    await page.waitForSelector('#review-count[data-unsaved="1"]', { timeout: TIMEOUT });
    const asked = page.waitForEvent('dialog', { timeout: 10_000 })
      .then(async (dialog) => { const type = dialog.type(); await dialog.dismiss(); return type; })
      .catch(() => null);
    await page.close({ runBeforeUnload: true });
    report.closeUnsaved = await asked;
  }
} catch (err) {
  report.error = String(err && err.stack || err);
  // What the page showed when it failed: each image's verdict and the count.
  report.page = await context.pages()[0]?.evaluate(() => ({
    items: Array.from(document.querySelectorAll('#results li'), (li) => [li.dataset.file, li.dataset.reviewed ?? null,
      li.querySelector('.verdict')?.textContent ?? null]),
    count: [document.getElementById('review-count')?.textContent, document.getElementById('review-count')?.dataset.count],
  })).catch((e) => String(e));
} finally {
  await context.close();
}
console.log(JSON.stringify(report));
