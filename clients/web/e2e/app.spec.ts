// The reference web client in Debian's Chromium against `groups-api serve` on another origin (e2e/global-setup.ts).
import { readFileSync } from 'node:fs';
import { expect, test, type Page } from '@playwright/test';
import { gql, type E2E } from './global-setup';

const e2e: E2E = JSON.parse(process.env.GROUPS_WEB_E2E ?? '{}');
const COOKIE = 'groups_api_refresh';

// The trusted documents the app sends, by operation name (the manifest is what the server loaded).
const manifest: Record<string, string> = JSON.parse(readFileSync(new URL('../persisted-documents.json', import.meta.url), 'utf8'));
const documentId = (name: string) => {
  const id = Object.keys(manifest).find((key) => manifest[key].match(/^\w+ (\w+)/)?.[1] === name);
  if (!id) throw new Error(`no trusted document ${name}`);
  return id;
};
const operation = (body: string | null) => {
  try {
    const id = JSON.parse(body ?? '{}').documentId as string | undefined;
    return id ? manifest[id]?.match(/^\w+ (\w+)/)?.[1] : undefined;
  } catch {
    return undefined;
  }
};

async function signIn(page: Page, email = e2e.ownerEmail): Promise<void> {
  await page.goto(e2e.app);
  await page.getByLabel('Practice').fill(e2e.slug);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(e2e.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.getByTestId('group-balance')).toBeVisible();
}

const signedIn = (page: Page) => expect(page.getByTestId('viewer')).toHaveText(e2e.ownerName);

test('sign-in shows the dashboard; the refresh token lives only in an httpOnly cookie', async ({ page, context }) => {
  const logIn = page.waitForResponse((r) => operation(r.request().postData()) === 'LogIn');
  await signIn(page);
  await signedIn(page);
  await expect(page.getByTestId('group-balance')).toHaveText('180.00 USD');
  const members = page.getByRole('table', { name: 'Members' });
  await expect(members).toContainText(e2e.ownerName);
  await expect(members).toContainText(e2e.clinicianName);

  // The answer carries the access token only (the app keeps it in memory); the refresh token is a cookie.
  const answer = await (await logIn).json();
  expect(answer.data.logIn.accessToken).toBeTruthy();
  expect(answer.data.logIn.refreshToken).toBeUndefined();
  const [cookie] = (await context.cookies(e2e.api)).filter((c) => c.name === COOKIE);
  expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/graphql' });

  // No script sees it: neither the app's nor one running at the cookie's own origin and path.
  expect(await page.evaluate(() => document.cookie)).not.toContain(COOKIE);
  const apiPage = await context.newPage();
  await apiPage.goto(e2e.api);
  expect(await apiPage.evaluate(() => document.cookie)).not.toContain(COOKIE);
  expect(await page.evaluate(() => JSON.stringify(localStorage) + JSON.stringify(sessionStorage))).not.toContain(
    cookie.value,
  );
});

test('a page reload keeps the session through the cookie', async ({ page }) => {
  await signIn(page);
  const refreshed = page.waitForResponse((r) => operation(r.request().postData()) === 'RefreshSession');
  await page.reload();
  expect((await (await refreshed).json()).data.refreshSession.accessToken).toBeTruthy();
  await signedIn(page);
  await expect(page.getByTestId('group-balance')).toHaveText('180.00 USD');
});

test('two tabs refreshing at once both stay signed in', async ({ page, context }) => {
  await signIn(page);
  const other = await context.newPage();
  // Hold each tab's refresh until both have sent theirs: both present the same refresh token, at once.
  let arrived = 0;
  let release!: () => void;
  const both = new Promise<void>((r) => (release = r));
  await context.route(e2e.api, async (route) => {
    if (operation(route.request().postData()) === 'RefreshSession') {
      if (++arrived === 2) release();
      await both;
    }
    await route.continue();
  });
  const answers = [page, other].map((p) =>
    p.waitForResponse((r) => operation(r.request().postData()) === 'RefreshSession'),
  );
  await Promise.all([page.reload(), other.goto(e2e.app)]);
  for (const answer of answers) expect((await (await answer).json()).data.refreshSession.accessToken).toBeTruthy();
  expect(arrived).toBe(2);
  await context.unroute(e2e.api);
  for (const tab of [page, other]) {
    await signedIn(tab);
    await tab.getByRole('link', { name: 'Billing' }).click(); // and their new access tokens work
    await expect(tab.getByRole('table', { name: 'Billing history' })).toBeVisible();
  }
  // The session lives on: a later reload is still signed in.
  await other.reload();
  await signedIn(other);
});

test('a payment for one clinician lands once when its first answer is lost and the app retries', async ({ page }) => {
  await signIn(page);
  await page.getByRole('link', { name: 'Billing' }).click();
  const record = page.getByRole('button', { name: 'Record payment' });
  const statement = page.getByRole('button', { name: 'Generate statement' });
  const cora = page.getByRole('checkbox', { name: e2e.clinicianName });
  const olive = page.getByRole('checkbox', { name: e2e.ownerName });

  // Enabled only while exactly one clinician is selected.
  await expect(record).toBeDisabled();
  await expect(statement).toBeDisabled();
  await cora.check();
  await expect(record).toBeEnabled();
  await olive.check();
  await expect(record).toBeDisabled();
  await expect(statement).toBeDisabled();
  await olive.uncheck();
  await expect(record).toBeEnabled();
  await expect(statement).toBeEnabled();
  await expect(page.getByTestId('balance')).toHaveText('100.00 USD');

  // The first recordPayment reaches the server and is answered, but the browser never gets the answer.
  const keys: string[] = [];
  const firstAnswers: unknown[] = [];
  await page.route(e2e.api, async (route) => {
    const body = route.request().postData();
    if (operation(body) !== 'RecordPayment') return route.continue();
    keys.push(JSON.parse(body!).variables.input.idempotencyKey);
    if (keys.length === 1) {
      const response = await route.fetch();
      firstAnswers.push(await response.json());
      return route.abort('connectionreset');
    }
    return route.continue();
  });
  await page.getByLabel('Amount').fill('40.00');
  await record.click();
  await expect(page.getByTestId('notice')).toHaveText('Payment recorded. Balance 60.00 USD.');
  expect(keys).toHaveLength(2);
  expect(keys[1]).toBe(keys[0]);
  expect(firstAnswers[0]).toMatchObject({ data: { recordPayment: { balance: { amount: '60.00' } } } });
  await page.unroute(e2e.api);

  // Once, as the server tells it to another client too.
  await expect(page.getByTestId('balance')).toHaveText('60.00 USD');
  const rows = page.getByRole('table', { name: 'Billing history' }).getByRole('row').filter({ hasText: 'PAYMENT' });
  await expect(rows).toHaveCount(1);
  const { logIn } = await gql(
    e2e.api,
    'mutation($i: LogInInput!) { logIn(input: $i) { accessToken } }',
    { i: { practiceSlug: e2e.slug, email: e2e.ownerEmail, password: e2e.password } },
  );
  const { practice } = await gql(
    e2e.api,
    '{ practice { billing { history(filter: {kinds: [PAYMENT]}) { edges { node { amount { amount } } } } } } }',
    {},
    logIn.accessToken,
  );
  expect(practice.billing.history.edges.map((e: any) => e.node.amount.amount)).toEqual(['40.00']);

  // And a statement for the same clinician.
  await statement.click();
  await expect(page.getByTestId('notice')).toContainText('Closing balance 60.00 USD.');
});

test('the app on an origin the API does not list is blocked by the browser', async ({ page }) => {
  const blocked: string[] = [];
  page.on('console', (message) => {
    if (message.text().includes('CORS')) blocked.push(message.text());
  });
  await page.goto(e2e.unlistedApp);
  await page.getByLabel('Practice').fill(e2e.slug);
  await page.getByLabel('Email').fill(e2e.ownerEmail);
  await page.getByLabel('Password').fill(e2e.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.getByRole('alert')).toHaveText('The server cannot be reached. Try again.');
  await expect(page.getByTestId('group-balance')).toHaveCount(0);
  expect(blocked.join('\n')).toContain('blocked by CORS policy');
  // A script there cannot read an answer from the API either, and gets no cookie.
  const outcome = await page.evaluate(async ({ api, id }) => {
    try {
      await fetch(api, {
        method: 'POST',
        credentials: 'include',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ documentId: id, variables: {} }),
      });
      return 'read';
    } catch (error) {
      return String(error);
    }
  }, { api: e2e.api, id: documentId('RefreshSession') });
  expect(outcome).toContain('Failed to fetch');
  expect((await page.context().cookies(e2e.api)).filter((c) => c.name === COOKIE)).toEqual([]);
});

test('log-out ends the session', async ({ page, context }) => {
  const logIn = page.waitForResponse((r) => operation(r.request().postData()) === 'LogIn');
  await signIn(page);
  const { accessToken } = (await (await logIn).json()).data.logIn;
  await page.getByRole('button', { name: 'Log out' }).click();
  await expect(page.getByRole('button', { name: 'Log in' })).toBeVisible();
  expect((await context.cookies(e2e.api)).filter((c) => c.name === COOKIE)).toEqual([]);
  await page.reload();
  await expect(page.getByRole('button', { name: 'Log in' })).toBeVisible();
  await expect(page.getByTestId('viewer')).toHaveCount(0);
  // The access token the app held is dead too.
  const answer = await (
    await fetch(e2e.api, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${accessToken}` },
      body: JSON.stringify({ query: '{ viewer { id } }' }),
    })
  ).json();
  expect(answer.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
});
