/** Running a command to completion. */
import { spawn } from 'node:child_process';

/** What a finished command printed and its exit code (-1 when a signal ended it). */
export interface ProcessResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@link runProcess}. */
export interface RunOptions {
  /** Kill the command (SIGKILL) when it runs longer than this; it then resolves with code -1. */
  readonly timeoutMs?: number;
}

/**
 * Runs `bin` with `args`, writing `stdin` (or nothing) to it, and resolves when it exits, whatever
 * its exit code. Rejects only when the command cannot be started.
 */
export function runProcess(
  bin: string,
  args: readonly string[],
  stdin?: string,
  opts: RunOptions = {},
): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(bin, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(opts.timeoutMs ? { timeout: opts.timeoutMs, killSignal: 'SIGKILL' as const } : {}),
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
    });
    p.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    p.stdin.end(stdin ?? '');
  });
}
