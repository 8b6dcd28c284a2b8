// The GraphQL client: trusted documents by id, the access token in memory only, the refresh token in the server's
// httpOnly cookie, and safe retries (a mutation is retried only when it carries an idempotencyKey).
import type { TypedDocumentString } from './gql/graphql';
import { RefreshSession, LogOut } from './documents';

export type Session = { accessToken: string; accessTokenExpiresAt: string; member: { id: string; name: string; role: string } };

export class ApiError extends Error {
  constructor(message: string, readonly code?: string, readonly field?: string) {
    super(message);
  }
}

type GraphQLAnswer<T> = {
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string; field?: string } }[];
};

let apiUrl = 'http://127.0.0.1:8000/graphql';
let session: Session | null = null;
let refreshing: Promise<Session | null> | null = null;

export function configure(url: string): void {
  apiUrl = url;
}

export const currentSession = (): Session | null => session;

export function startSession(next: Session): void {
  session = next;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A network failure or a gateway's "try again": the request may or may not have reached the server. */
const transient = (status: number) => status === 502 || status === 503 || status === 504;

async function send<TResult, TVariables>(
  document: TypedDocumentString<TResult, TVariables>,
  variables: TVariables | undefined,
  retries: number,
): Promise<GraphQLAnswer<TResult>> {
  const documentId = document.__meta__?.hash as string; // the trusted document's id: its text never leaves the app
  for (let attempt = 0; ; attempt++) {
    try {
      const response = await fetch(apiUrl, {
        method: 'POST',
        credentials: 'include', // the refresh cookie (SameSite=Strict, Path=/graphql) goes with credential mutations
        headers: {
          'content-type': 'application/json',
          ...(session ? { authorization: `Bearer ${session.accessToken}` } : {}),
        },
        body: JSON.stringify({ documentId, variables }),
      });
      if (transient(response.status) && attempt < retries) throw new TypeError(`HTTP ${response.status}`);
      if (!response.headers.get('content-type')?.includes('json')) throw new ApiError(`HTTP ${response.status}`);
      return (await response.json()) as GraphQLAnswer<TResult>;
    } catch (error) {
      if (!(error instanceof TypeError) || attempt >= retries) {
        throw error instanceof ApiError ? error : new ApiError('The server cannot be reached. Try again.', 'NETWORK');
      }
      await sleep(250 * 2 ** attempt);
    }
  }
}

function unwrap<T>(answer: GraphQLAnswer<T>): T {
  const [first] = answer.errors ?? [];
  if (first || answer.data == null) {
    throw new ApiError(first?.message ?? 'empty answer', first?.extensions?.code, first?.extensions?.field);
  }
  return answer.data;
}

/**
 * Runs a trusted document. Queries are retried after network failures; a mutation only when its input carries
 * an idempotencyKey (the server then answers a repeat with the first answer's objects and writes nothing).
 * An expired access token is renewed once through the cookie, then the request is sent again.
 */
export async function request<TResult, TVariables>(
  document: TypedDocumentString<TResult, TVariables>,
  variables?: TVariables,
  { retry = false }: { retry?: boolean } = {},
): Promise<TResult> {
  const retries = retry ? 3 : 0;
  let answer = await send(document, variables, retries);
  if (session && answer.errors?.some((e) => e.extensions?.code === 'UNAUTHENTICATED')) {
    if (await refresh()) answer = await send(document, variables, retries);
  }
  return unwrap(answer);
}

/** A new access token from the refresh cookie; one refresh at a time in this tab. Null: signed out. */
export function refresh(): Promise<Session | null> {
  refreshing ??= (async () => {
    session = null;
    try {
      // Safe to retry: the server answers a refresh token presented again within 30 s with a pair for the same session.
      const answer = await send(RefreshSession, undefined, 2);
      session = answer.data?.refreshSession ?? null;
    } catch {
      session = null;
    }
    return session;
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

export async function logOut(): Promise<void> {
  try {
    await request(LogOut); // ends the session and clears the cookie
  } finally {
    session = null;
  }
}
