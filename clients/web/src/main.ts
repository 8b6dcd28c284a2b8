import './style.css';
import { ApiError, configure, currentSession, logOut, refresh, request, startSession } from './api';
import { BillingHistory, Dashboard, GenerateStatement, LogIn, RecordPayment } from './documents';
import { h, money, today } from './dom';

const root = document.querySelector<HTMLDivElement>('#app')!;

function show(...children: Node[]): void {
  root.replaceChildren(...children);
}

function errorText(error: unknown): string {
  return error instanceof ApiError ? error.message : String(error);
}

function header(title: string): HTMLElement {
  const session = currentSession();
  return h(
    'header',
    {},
    h('h1', {}, title),
    h(
      'nav',
      {},
      h('a', { href: '#/dashboard' }, 'Dashboard'),
      h('a', { href: '#/billing' }, 'Billing'),
      h('span', { 'data-testid': 'viewer' }, session?.member.name ?? ''),
      h('button', { type: 'button', onclick: () => void signOut() }, 'Log out'),
    ),
  );
}

async function signOut(): Promise<void> {
  try {
    await logOut();
  } finally {
    location.hash = '#/login';
    void route();
  }
}

// ------------------------------------------------------------------ log in

function loginScreen(message = ''): void {
  const status = h('p', { role: 'alert' }, message);
  const form = h(
    'form',
    { 'aria-label': 'Log in' },
    h('h1', {}, 'Log in'),
    h('label', {}, 'Practice', h('input', { name: 'practiceSlug', required: true, autocomplete: 'organization' })),
    h('label', {}, 'Email', h('input', { name: 'email', type: 'email', required: true, autocomplete: 'username' })),
    h('label', {}, 'Password', h('input', { name: 'password', type: 'password', required: true, autocomplete: 'current-password' })),
    h('button', { type: 'submit' }, 'Log in'),
    status,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const input = {
      practiceSlug: String(data.get('practiceSlug')).trim(),
      email: String(data.get('email')).trim(),
      password: String(data.get('password')),
    };
    status.textContent = 'Signing in…';
    try {
      const { logIn } = await request(LogIn, { input });
      if (!logIn) throw new ApiError('Log-in failed');
      startSession(logIn); // logIn.refreshToken is not asked for: the server keeps it in an httpOnly cookie
      location.hash = '#/dashboard';
      await route();
    } catch (error) {
      status.textContent = errorText(error);
    }
  });
  show(form);
}

// ------------------------------------------------------------------ dashboard

async function dashboardScreen(): Promise<void> {
  const { viewer, practice } = await request(Dashboard, {}, { retry: true });
  if (!practice || !viewer) throw new ApiError('No practice');
  const members = practice.members?.edges.map((edge) => edge.node) ?? [];
  show(
    header(practice.name),
    h(
      'main',
      {},
      h('p', {}, `Signed in as ${viewer.name} (${viewer.role.toLowerCase()}) · practice ${practice.slug}`),
      h('p', {}, 'Group balance: ', h('strong', { 'data-testid': 'group-balance' }, money(practice.billing?.currentBalance))),
      h('h2', {}, `Members (${practice.members?.totalCount ?? 0})`),
      h(
        'table',
        { 'aria-label': 'Members' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Role'), h('th', {}, 'Status'))),
        h(
          'tbody',
          {},
          members.map((m) => h('tr', {}, h('td', {}, m.name), h('td', {}, m.role), h('td', {}, m.status))),
        ),
      ),
    ),
  );
}

// ------------------------------------------------------------------ billing

type BillingState = { clinicianIds: string[]; chartId: string | null; notice: string };
const billing: BillingState = { clinicianIds: [], chartId: null, notice: '' };

async function billingScreen(): Promise<void> {
  const selection = billing.clinicianIds.length ? billing.clinicianIds : null;
  const { practice } = await request(
    BillingHistory,
    { clinicianIds: selection, chartId: billing.chartId, first: 50 },
    { retry: true },
  );
  if (!practice) throw new ApiError('No practice');
  const clinicians = (practice.members?.edges ?? [])
    .map((edge) => edge.node)
    .filter((m) => m.status === 'ACTIVE' && (m.role === 'OWNER' || m.role === 'CLINICIAN'));
  const charts = practice.charts?.edges.map((edge) => edge.node) ?? [];
  billing.chartId ??= charts[0]?.id ?? null;
  const entries = practice.billing?.history?.edges.map((edge) => edge.node) ?? [];

  // The product's rule, as a user meets it: money moves for exactly one clinician at a time.
  const single = billing.clinicianIds.length === 1 && billing.chartId !== null;
  const notice = h('p', { role: 'status', 'data-testid': 'notice' }, billing.notice);
  const amount = h('input', { name: 'amount', inputmode: 'decimal', value: '40.00', 'aria-label': 'Amount' });

  const selector = h(
    'fieldset',
    {},
    h('legend', {}, 'Clinicians'),
    clinicians.map((c) =>
      h(
        'label',
        {},
        h('input', {
          type: 'checkbox',
          value: c.id,
          checked: billing.clinicianIds.includes(c.id),
          onchange: (event: Event) => {
            const box = event.target as HTMLInputElement;
            billing.clinicianIds = box.checked
              ? [...billing.clinicianIds, c.id]
              : billing.clinicianIds.filter((id) => id !== c.id);
            billing.notice = '';
            void render(billingScreen);
          },
        }),
        ` ${c.name}`,
      ),
    ),
  );
  const chartSelect = h(
    'select',
    {
      'aria-label': 'Chart',
      onchange: (event: Event) => {
        billing.chartId = (event.target as HTMLSelectElement).value;
        void render(billingScreen);
      },
    },
    charts.map((c) => h('option', { value: c.id, selected: c.id === billing.chartId }, c.patientName)),
  );

  async function act(run: () => Promise<string>, buttons: HTMLButtonElement[]): Promise<void> {
    buttons.forEach((b) => (b.disabled = true));
    notice.textContent = 'Working…';
    try {
      billing.notice = await run();
      await render(billingScreen);
    } catch (error) {
      notice.textContent = errorText(error);
      buttons.forEach((b) => (b.disabled = false));
    }
  }
  const recordPayment = h('button', { type: 'button', disabled: !single }, 'Record payment');
  const generateStatement = h('button', { type: 'button', disabled: !single }, 'Generate statement');
  recordPayment.addEventListener('click', () =>
    act(async () => {
      // One key per payment the user means to make: every retry of it carries the same key, so it lands once.
      const input = {
        chartId: billing.chartId!,
        clinicianIds: billing.clinicianIds,
        amount: amount.value.trim(),
        occurredOn: today(),
        idempotencyKey: crypto.randomUUID(),
      };
      const { recordPayment: paid } = await request(RecordPayment, { input }, { retry: true });
      return `Payment recorded. Balance ${money(paid?.balance)}.`;
    }, [recordPayment, generateStatement]),
  );
  generateStatement.addEventListener('click', () =>
    act(async () => {
      const end = today();
      const input = {
        chartId: billing.chartId!,
        clinicianIds: billing.clinicianIds,
        periodStart: `${end.slice(0, 8)}01`,
        periodEnd: end,
        idempotencyKey: crypto.randomUUID(),
      };
      const { generateStatement: made } = await request(GenerateStatement, { input }, { retry: true });
      return `Statement ${made?.statement.number} generated. Closing balance ${money(made?.statement.closingBalance)}.`;
    }, [recordPayment, generateStatement]),
  );

  show(
    header('Billing'),
    h(
      'main',
      {},
      h('label', {}, 'Chart ', chartSelect),
      selector,
      h('p', {}, 'Balance: ', h('strong', { 'data-testid': 'balance' }, money(practice.billing?.currentBalance))),
      h(
        'div',
        { class: 'actions' },
        amount,
        recordPayment,
        generateStatement,
        single ? null : h('small', {}, 'Select exactly one clinician to record a payment or generate a statement.'),
      ),
      notice,
      h(
        'table',
        { 'aria-label': 'Billing history' },
        h(
          'thead',
          {},
          h('tr', {}, ['Date', 'Kind', 'Patient', 'Clinician', 'Description', 'Amount'].map((t) => h('th', {}, t))),
        ),
        h(
          'tbody',
          {},
          entries.map((e) =>
            h(
              'tr',
              {},
              h('td', {}, e.occurredOn),
              h('td', {}, e.kind),
              h('td', {}, e.patientName),
              h('td', {}, e.clinician.name),
              h('td', {}, e.description),
              h('td', {}, money(e.amount)),
            ),
          ),
        ),
      ),
    ),
  );
}

// ------------------------------------------------------------------ routing

async function render(screen: () => Promise<void>): Promise<void> {
  try {
    await screen();
  } catch (error) {
    if (error instanceof ApiError && error.code === 'UNAUTHENTICATED') loginScreen('Your session has ended.');
    else show(h('p', { role: 'alert' }, errorText(error)));
  }
}

async function route(): Promise<void> {
  if (!currentSession()) return loginScreen();
  if (location.hash === '#/billing') return render(billingScreen);
  return render(dashboardScreen);
}

async function start(): Promise<void> {
  // Where the API is: /config.json next to the app (one build for every deployment), else the build's setting.
  const config: { apiUrl?: string } = await fetch('config.json')
    .then((r) => (r.ok ? r.json() : {}))
    .catch(() => ({}));
  configure(config.apiUrl ?? import.meta.env.VITE_GROUPS_API_URL ?? 'http://127.0.0.1:8000/graphql');
  // A reload keeps the session: the access token lived in memory only, the httpOnly cookie brings a new one.
  await refresh();
  window.addEventListener('hashchange', () => void route());
  await route();
  document.body.dataset.ready = 'true';
}

void start();
