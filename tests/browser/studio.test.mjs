// Headless Chromium walk through the sessionctl studio: log in with the API key, open app `web`,
// find ada@example.com, revoke one of her two sessions, and check through the API that exactly that
// session's token stopped validating. Run by scripts/browser-test, which starts the server and seeds
// the data; everything comes in through the environment:
//
//   STUDIO_BASE_URL   http://127.0.0.1:PORT
//   SESSION_API_KEY   the server's API key
//   SEED_JSON         {"app","email","user_id","sessions":[{"id","token"},{"id","token"}]}
//   SCREENSHOT_DIR    where studio-apps.png, studio-screenshot.png (and studio-failure.png) go
//   CHROMIUM_PATH     the browser (default /usr/bin/chromium)

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') {
    console.error(`browser-test: ${name} is not set (run scripts/browser-test)`);
    process.exit(2);
  }
  return value;
};

const base = env('STUDIO_BASE_URL').replace(/\/$/, '');
const apiKey = env('SESSION_API_KEY');
const seed = JSON.parse(env('SEED_JSON'));
const shots = env('SCREENSHOT_DIR');
const executablePath = env('CHROMIUM_PATH', '/usr/bin/chromium');
const [first, second] = seed.sessions;

const TIMEOUT_MS = 10_000;
let passed = 0;
let current = '(setup)';

class Failure extends Error {}
const expect = (condition, message) => {
  if (!condition) throw new Failure(message);
};
const step = async (description, body) => {
  current = description;
  await body();
  passed += 1;
  console.log(`ok ${passed} - ${description}`);
};
const pathOf = (url) => new URL(url).pathname.replace(/\/$/, '') || '/';

// The main frame's last document response (after redirects), for messages that say what happened.
let lastDocument = null;
const describeLast = () =>
  lastDocument ? `HTTP ${lastDocument.status} for ${lastDocument.method} ${lastDocument.path}` : 'no response';
// Runs an action that loads a new page, then checks it landed on `expectedPath` with a 200.
const navigate = async (what, action, expectedPath) => {
  await Promise.all([page.waitForEvent('load'), action()]);
  const landed = pathOf(page.url());
  expect(
    landed === expectedPath && lastDocument?.status === 200,
    `${what}: expected a 200 page at ${expectedPath}, got ${describeLast()} (now at ${landed})`,
  );
};

// Outside the browser: the public API with the key, as an application would call it.
const validate = async (token) => {
  const response = await fetch(`${base}/v1/apps/${seed.app}/sessions/validate`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ token }),
  });
  return { status: response.status, body: await response.text() };
};

const userDataDir = mkdtempSync(join(tmpdir(), 'studio-chromium-'));
let context;
let page;
const serverErrors = [];
const pageErrors = [];

try {
  await step(`launch ${executablePath} headless`, async () => {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1280, height: 800 },
      timeout: 60_000,
    });
    context.setDefaultTimeout(TIMEOUT_MS);
    page = context.pages()[0] ?? (await context.newPage());
    page.on('response', (response) => {
      if (response.status() >= 500) serverErrors.push(`${response.status()} ${response.url()}`);
      const request = response.request();
      if (request.isNavigationRequest() && request.frame() === page.mainFrame()) {
        lastDocument = { status: response.status(), method: request.method(), path: pathOf(response.url()) };
      }
    });
    page.on('pageerror', (error) => pageErrors.push(String(error)));
    page.on('console', (message) => {
      if (message.type() === 'error') {
        console.log(`  (browser console error: ${message.text()} ${message.location().url ?? ''})`);
      }
    });
    // A confirm() on revoke would otherwise be dismissed by Playwright and nothing would happen.
    page.on('dialog', (dialog) => dialog.accept());
  });

  await step('GET /studio/login shows the login form', async () => {
    const response = await page.goto(`${base}/studio/login`);
    expect(response && response.status() === 200, `GET /studio/login answered ${response?.status()}`);
    await page.locator('input#api-key').waitFor({ state: 'visible' });
    await page.locator('button#login').waitFor({ state: 'visible' });
  });

  await step('logging in with the API key lands on /studio with app web listed', async () => {
    await page.fill('#api-key', apiKey);
    await navigate('log in', () => page.click('#login'), '/studio');
    await page.locator('table#apps').waitFor({ state: 'visible' });
    const link = page.locator('table#apps a.app-link', { hasText: new RegExp(`^\\s*${seed.app}\\s*$`) });
    expect((await link.count()) === 1, `expected one a.app-link "${seed.app}" in #apps, found ${await link.count()}`);
    await page.screenshot({ path: join(shots, 'studio-apps.png'), fullPage: true });
  });

  await step(`the app link opens /studio/apps/${seed.app}`, async () => {
    const link = page.locator('table#apps a.app-link', { hasText: new RegExp(`^\\s*${seed.app}\\s*$`) });
    await navigate('open the app', () => link.click(), `/studio/apps/${seed.app}`);
    await page.locator('form#user-search').waitFor({ state: 'visible' });
  });

  await step(`searching ${seed.email} lists exactly that user`, async () => {
    await page.fill('#email', seed.email);
    await navigate('search', () => page.click('#search'), `/studio/apps/${seed.app}`);
    await page.locator('table#users').waitFor({ state: 'visible' });
    const links = page.locator('table#users a.user-link');
    const count = await links.count();
    expect(count === 1, `expected one a.user-link in #users, found ${count}`);
    const text = await page.locator('table#users').innerText();
    expect(text.includes(seed.email), `#users does not show ${seed.email}: ${JSON.stringify(text)}`);
  });

  await step("the user link opens the user's page with both sessions", async () => {
    const userPath = `/studio/apps/${seed.app}/users/${seed.user_id}`;
    await navigate('open the user', () => page.locator('table#users a.user-link').click(), userPath);
    await page.locator('table#sessions').waitFor({ state: 'visible' });
    const ids = await page.locator('table#sessions tr[data-session-id]').evaluateAll((rows) =>
      rows.map((row) => row.getAttribute('data-session-id')),
    );
    expect(ids.length === 2, `expected 2 tr[data-session-id] in #sessions, found ${ids.length}: ${ids}`);
    for (const id of ids) expect(/^[0-9a-f]{64}$/.test(id), `data-session-id is not 64 hex characters: ${id}`);
    expect(
      [...ids].sort().join() === [first.id, second.id].sort().join(),
      `the rows show sessions ${ids}, expected ${first.id} and ${second.id}`,
    );
  });

  await step('revoking the first session shows #notice and leaves one row', async () => {
    const button = page.locator(`table#sessions tr[data-session-id="${first.id}"] button.revoke`);
    expect((await button.count()) === 1, `no button.revoke in the row of session ${first.id}`);
    await navigate('revoke', () => button.click(), `/studio/apps/${seed.app}/users/${seed.user_id}`);
    await page.locator('#notice').waitFor({ state: 'visible' });
    const ids = await page.locator('table#sessions tr[data-session-id]').evaluateAll((rows) =>
      rows.map((row) => row.getAttribute('data-session-id')),
    );
    expect(
      ids.length === 1 && ids[0] === second.id,
      `after the revoke expected only ${second.id}, the page shows [${ids}] (notice: ${await page.locator('#notice').innerText()})`,
    );
    await page.screenshot({ path: join(shots, 'studio-screenshot.png'), fullPage: true });
  });

  await step('through the API: the revoked token is 401, the other one still 200', async () => {
    const revoked = await validate(first.token);
    expect(revoked.status === 401, `validate(first token) answered ${revoked.status}, expected 401: ${revoked.body}`);
    const live = await validate(second.token);
    expect(live.status === 200, `validate(second token) answered ${live.status}, expected 200: ${live.body}`);
    expect(JSON.parse(live.body).id === second.id, `validate(second token) returned another session: ${live.body}`);
  });

  await step('no 5xx response and no uncaught page error on the way', async () => {
    expect(serverErrors.length === 0, `server errors: ${serverErrors.join(', ')}`);
    expect(pageErrors.length === 0, `page errors: ${pageErrors.join(', ')}`);
  });

  console.log(`browser-test: ${passed} passed, 0 failed`);
} catch (error) {
  console.log(`not ok ${passed + 1} - ${current}`);
  console.log(`  ${error instanceof Failure ? error.message : error.stack || error}`);
  if (page) {
    console.log(`  page: ${page.url()}`);
    try {
      const failure = join(shots, 'studio-failure.png');
      await page.screenshot({ path: failure, fullPage: true });
      console.log(`  screenshot of the page at the failure: ${failure}`);
      const text = (await page.locator('body').innerText()).slice(0, 1500);
      console.log(`  page text: ${JSON.stringify(text)}`);
    } catch {
      // the page itself may be gone
    }
  }
  console.log(`browser-test: ${passed} passed, 1 failed`);
  process.exitCode = 1;
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
