// Cold load and inference of published models in headless chromium, for benchmarks/browser_delivery.py.
//   node scripts/browser-bench.mjs --app URL --model NAME=CDN_MODEL_URL ... [--backend wasm --backend webgl]
//        [--loads 5] [--repeats 30]
// For each model and backend: `loads` cold loads, each in a fresh browser context (empty HTTP cache and
// IndexedDB): bytes received from the CDN (encoded, as on the wire) and the time from navigation to a
// warmed-up model; then the median per-image prediction time on a 240x320 image. Prints JSON.
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values: opt } = parseArgs({
  options: {
    app: { type: 'string' }, model: { type: 'string', multiple: true }, backend: { type: 'string', multiple: true },
    loads: { type: 'string', default: '5' }, repeats: { type: 'string', default: '30' },
    chromium: { type: 'string', default: process.env.BLOODCELL_CHROMIUM || '/usr/bin/chromium' },
  },
});

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function coldLoad(browser, app, modelUrl, backend, cdnOrigin) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  const urls = new Map();
  let bytes = 0;
  cdp.on('Network.responseReceived', (e) => urls.set(e.requestId, e.response.url));
  cdp.on('Network.loadingFinished', (e) => {
    if ((urls.get(e.requestId) ?? '').startsWith(cdnOrigin)) bytes += e.encodedDataLength;
  });
  const start = Date.now();
  await page.goto(`${app}/?model=${encodeURIComponent(modelUrl)}&backend=${backend}`);
  await page.waitForSelector('#model-status:is([data-state="ready"], [data-state="error"])', { timeout: 180_000 });
  const ms = Date.now() - start;
  const status = await page.$eval('#model-status', (el) => el.textContent);
  const used = await page.evaluate(() => window.bloodcell?.backend ?? null);
  return { context, page, ms, bytes, status, used };
}

const browser = await chromium.launch({
  executablePath: opt.chromium, headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--use-angle=swiftshader', '--enable-unsafe-swiftshader'],
});
const results = [];
try {
  for (const spec of opt.model) {
    const [name, modelUrl] = spec.split(/=(.*)/s);
    const cdnOrigin = new URL(modelUrl).origin;
    for (const backend of opt.backend ?? ['wasm']) {
      const loads = [];
      let last = null;
      for (let i = 0; i < Number(opt.loads); i++) {
        if (last) await last.context.close();
        last = await coldLoad(browser, opt.app, modelUrl, backend, cdnOrigin);
        loads.push(last);
      }
      const row = { model: name, backend, requested: backend, ran_on: last.used,
        cold_load_ms: loads.map((l) => l.ms), bytes: loads.map((l) => l.bytes), status: last.status };
      if (last.used) {
        row.inference_ms = await last.page.evaluate((n) => window.bloodcell.medianPredictionMs(n), Number(opt.repeats));
      }
      row.cold_load_median_ms = median(row.cold_load_ms);
      results.push(row);
      await last.context.close();
    }
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(results));
