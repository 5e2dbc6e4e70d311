import { type Browser, chromium } from "playwright-core";

/** Debian's Chromium; `.ci/run` installs the `chromium` package. */
export const CHROMIUM = "/usr/bin/chromium";

// The machines have no route out: every background fetch Chromium makes on its own would be
// refused (and retried). Turn them all off so the only traffic is the page under test.
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-default-apps",
  "--disable-extensions",
  "--metrics-recording-only",
  "--no-default-browser-check",
];

/** A headless Chromium; Playwright gives it a new empty profile, removed on `close()`. */
export interface TestBrowser {
  browser: Browser;
  close(): Promise<void>;
}

/** Launches Debian's Chromium through Playwright. */
export async function launchBrowser(): Promise<TestBrowser> {
  try {
    Deno.statSync(CHROMIUM);
  } catch {
    throw new Error(`${CHROMIUM} not found: install Debian's chromium package (.ci/run does)`);
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
  });
  return {
    browser,
    close: () => browser.close(),
  };
}
