/** Small networking helpers. */
import { createServer } from 'node:net';

/** Asks the OS for a free TCP port on `host` (loopback by default). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, host, () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

// A port that cannot be bound must stop `weft serve` with a message naming the flag, rather
// than leave a process that runs but serves nothing.

/** Socket errors a person fixes by freeing the address or choosing another, with what they mean. */
const REASONS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'is in use',
  EACCES: 'may not be bound by this user',
  EADDRNOTAVAIL: 'is not an address of this machine',
};

/** A listener that could not start; its message names the flag, the address and the fix. */
export class ListenError extends Error {
  /** The socket error code (`EADDRINUSE`, ...), when one was found. */
  readonly code: string | undefined;

  constructor(message: string, code: string | undefined) {
    super(message);
    this.name = 'ListenError';
    this.code = code;
  }
}

/**
 * The socket error code of a failed listen. Node's `listen` sets `code`; `@grpc/grpc-js`'s
 * `bindAsync` only writes it inside the message ("... [listen EADDRINUSE: ...]").
 */
function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code !== '') return code;
  const text = err instanceof Error ? err.message : String(err);
  return /\b(E[A-Z]{3,})\b/.exec(text)?.[1];
}

/** Turns a failed listen on `address`, given by `flag`, into a {@link ListenError}. */
export function listenError(flag: string, address: string, err: unknown): ListenError {
  const code = codeOf(err);
  const reason = code ? REASONS[code] : undefined;
  if (code && reason) {
    const fix =
      code === 'EADDRINUSE' ? 'stop what listens there or choose another address' : 'choose another address';
    return new ListenError(`${flag} ${address} ${reason} (${code}); ${fix}`, code);
  }
  const text = err instanceof Error ? err.message : String(err);
  return new ListenError(`${flag} ${address}: cannot listen there (${text}); choose another address`, code);
}

/** Runs `start` (which binds `address`); a failure becomes a {@link ListenError} naming `flag`. */
export async function listenOn<T>(flag: string, address: string, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (err) {
    throw listenError(flag, address, err);
  }
}
