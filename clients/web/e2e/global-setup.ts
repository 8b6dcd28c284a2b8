// Starts `groups-api serve` on a free port with a fresh SQLite file, seeds a group practice through the API, and
// serves the built app (dist/) on two more ports: one origin the API lists in GROUPS_API_CORS_ORIGINS, one it does
// not. Same host (127.0.0.1), other ports: other origins of the same site, as an app and its API usually are
// (the refresh cookie is SameSite=Strict). What the tests need travels in process.env.GROUPS_WEB_E2E.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const web = resolve(fileURLToPath(new URL('..', import.meta.url)));
const repo = resolve(web, '../..');
const dist = join(web, 'dist');

export type E2E = {
  api: string; // http://127.0.0.1:PORT/graphql
  app: string; // the listed origin
  unlistedApp: string; // the same app on an origin the API does not list
  slug: string;
  ownerEmail: string;
  clinicianEmail: string;
  password: string;
  ownerName: string;
  clinicianName: string;
  patientName: string;
};

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createNetServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => ok(port));
    });
  });
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
};

/** dist/ as a static site, with /config.json naming the API (the app reads it at start-up). */
function serveApp(port: number, apiUrl: string): Promise<Server> {
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://x').pathname;
    if (path === '/config.json') {
      response.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      response.end(JSON.stringify({ apiUrl }));
      return;
    }
    let file = normalize(join(dist, path));
    if (!file.startsWith(dist) || !existsSync(file) || statSync(file).isDirectory()) file = join(dist, 'index.html');
    response.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
    createReadStream(file).pipe(response);
  });
  return new Promise((ok) => server.listen(port, '127.0.0.1', () => ok(server)));
}

async function waitUntilReady(base: string, server: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) throw new Error(`groups-api serve exited with ${server.exitCode}:\n${log()}`);
    try {
      if ((await fetch(`${base}/readyz`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`groups-api serve did not become ready:\n${log()}`);
}

/** A GraphQL request as a mobile app or a script sends it: no Origin, so tokens come back in the body. */
export async function gql<T = any>(api: string, query: string, variables: object = {}, token?: string): Promise<T> {
  const response = await fetch(api, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const answer = await response.json();
  if (answer.errors) throw new Error(`${query.slice(0, 60)}: ${JSON.stringify(answer.errors)}`);
  return answer.data;
}

async function seed(api: string, e2e: Omit<E2E, 'api' | 'app' | 'unlistedApp' | 'slug'>): Promise<string> {
  const today = new Date().toISOString().slice(0, 10);
  // A credential mutation is the only field of its operation.
  const { signUp } = await gql(
    api,
    'mutation($i: SignUpInput!) { signUp(input: $i) { accessToken member { id } } }',
    { i: { practiceName: 'Calm Minds', name: e2e.ownerName, email: e2e.ownerEmail, password: e2e.password, planCode: 'erx-lite' } },
  );
  const owner = signUp.accessToken;
  const { activateGroupPractice } = await gql(api, 'mutation { activateGroupPractice { practice { slug kind } } }', {}, owner);
  const { inviteMember } = await gql(
    api,
    'mutation($i: InviteMemberInput!) { inviteMember(input: $i) { token } }',
    { i: { email: e2e.clinicianEmail, role: 'CLINICIAN', planCode: 'therapist-essential' } },
    owner,
  );
  const { acceptInvitation } = await gql(
    api,
    'mutation($i: AcceptInvitationInput!) { acceptInvitation(input: $i) { member { id } } }',
    { i: { token: inviteMember.token, name: e2e.clinicianName, password: e2e.password } },
  );
  const clinicians = [signUp.member.id, acceptInvitation.member.id];
  const { createChart } = await gql(
    api,
    'mutation($i: CreateChartInput!) { createChart(input: $i) { chart { id } } }',
    { i: { patientName: e2e.patientName, clinicianIds: clinicians } },
    owner,
  );
  for (const [clinicianId, amount] of [[acceptInvitation.member.id, '100.00'], [signUp.member.id, '80.00']]) {
    await gql(
      api,
      'mutation($i: RecordChargeInput!) { recordCharge(input: $i) { entry { id } } }',
      { i: { chartId: createChart.chart.id, clinicianId, amount, occurredOn: today, description: 'Session' } },
      owner,
    );
  }
  return activateGroupPractice.practice.slug;
}

export default async function globalSetup(): Promise<() => Promise<void>> {
  if (!existsSync(join(dist, 'index.html'))) throw new Error('clients/web/dist is missing: run `npm run build` first');
  const [apiPort, appPort, unlistedPort] = [await freePort(), await freePort(), await freePort()];
  const base = `http://127.0.0.1:${apiPort}`;
  const app = `http://127.0.0.1:${appPort}`;
  const unlistedApp = `http://127.0.0.1:${unlistedPort}`;
  const api = `${base}/graphql`;
  const dir = mkdtempSync(join(tmpdir(), 'groups-web-e2e-'));

  const bin = process.env.GROUPS_API_BIN ?? join(repo, '.venv/bin/groups-api');
  let output = '';
  const server = spawn(bin, ['serve', '--host', '127.0.0.1', '--port', String(apiPort)], {
    cwd: dir,
    env: {
      ...process.env,
      GROUPS_API_ENV: 'development',
      GROUPS_API_DATABASE_URL: `sqlite://${join(dir, 'groups-api.sqlite3')}`,
      GROUPS_API_JWT_SECRET: randomBytes(48).toString('base64url'),
      GROUPS_API_CORS_ORIGINS: app,
      GROUPS_API_TRUSTED_DOCUMENTS: join(web, 'persisted-documents.json'),
      GROUPS_API_APP_URL: app,
      GROUPS_API_PUBLIC_URL: base,
      GROUPS_API_LOG_LEVEL: 'WARNING',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stdout!.on('data', (chunk) => (output += chunk));
  server.stderr!.on('data', (chunk) => (output += chunk));
  const servers: Server[] = [];
  const stop = async () => {
    server.kill('SIGTERM');
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitUntilReady(base, server, () => output);
    const people = {
      ownerEmail: 'olive@example.com',
      clinicianEmail: 'cora@example.com',
      password: `Tq7-vL2x-pX9m-${randomBytes(6).toString('hex')}`,
      ownerName: 'Olive Owner',
      clinicianName: 'Cora Clinician',
      patientName: 'Pat Patient',
    };
    const slug = await seed(api, people);
    servers.push(await serveApp(appPort, api), await serveApp(unlistedPort, api));
    const e2e: E2E = { api, app, unlistedApp, slug, ...people };
    process.env.GROUPS_WEB_E2E = JSON.stringify(e2e);
  } catch (error) {
    await stop();
    throw error;
  }
  return stop;
}
