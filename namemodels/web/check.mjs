// node check.mjs NODE_MODULES CHROMIUM URL: open URL (check.html) in Chromium with the puppeteer-core
// of NODE_MODULES and print the conformance result it writes.
import { createRequire } from "node:module";

const [nodeModules, chromium, url] = process.argv.slice(2);
const puppeteer = createRequire(`${nodeModules}/`)("puppeteer-core");
const browser = await puppeteer.launch({ executablePath: chromium, headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
try {
  const page = await browser.newPage();
  await page.goto(url, { waitUntil: "load" });
  await page.waitForFunction(() => document.body.dataset.result, { timeout: 120000 });
  console.log(await page.evaluate(() => document.body.dataset.result));
} finally {
  await browser.close();
}
