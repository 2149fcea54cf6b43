import cliProgress from 'cli-progress';
import type { FleetPhase, FleetProgress } from './fleet-options.ts';

export type ProgressMode = 'bar' | 'lines' | 'off';

export interface ProgressView {
  update(progress: FleetProgress): void;
  stop(): void;
}

const PHASE_TEXT: Readonly<Record<FleetPhase, string>> = {
  open: 'opening sockets',
  login: 'logging in',
  before: 'steps before',
  hold: 'holding tokens',
  warmup: 'warming up',
  load: 'sending',
  drain: 'draining',
  after: 'steps after',
  close: 'closing',
};

/** A bar (cli-progress) with live rate and errors on a terminal, plain periodic lines otherwise. */
export function createProgressView(mode: ProgressMode, stream: NodeJS.WriteStream = process.stdout): ProgressView {
  if (mode === 'off') return { update: () => undefined, stop: () => undefined };
  let phase: FleetPhase | undefined;
  let last = { done: 0, elapsedSec: 0 };
  let rate = 0;
  let bar: cliProgress.SingleBar | undefined;

  const detail = (p: FleetProgress) => {
    const parts = [`${p.done}${p.total !== undefined ? `/${p.total}` : ''} done`, `${Math.round(rate)}/s`];
    if (p.phase === 'load' || p.phase === 'drain' || p.phase === 'warmup') {
      parts.push(`unexpected ${p.unexpected}`, `timeouts ${p.timeouts}`, `in flight ${p.inFlight}`);
    }
    return parts.join(' | ');
  };
  const fraction = (p: FleetProgress): number => {
    if (p.total !== undefined && p.total > 0) return Math.min(1, p.done / p.total);
    if (p.durationSec !== undefined) return Math.min(1, p.elapsedSec / p.durationSec);
    return 0;
  };

  return {
    update(p) {
      if (p.phase !== phase) {
        bar?.stop();
        bar = undefined;
        phase = p.phase;
        last = { done: p.done, elapsedSec: p.elapsedSec };
        rate = 0;
      } else if (p.elapsedSec - last.elapsedSec >= 0.2) {
        rate = (p.done - last.done) / (p.elapsedSec - last.elapsedSec);
        last = { done: p.done, elapsedSec: p.elapsedSec };
      }
      if (mode === 'lines') {
        // Skip the empty line a phase starts with; its periodic and final lines follow.
        if (p.done > 0 || p.elapsedSec >= 0.05) stream.write(`${PHASE_TEXT[p.phase]} ${p.elapsedSec.toFixed(1)} s: ${detail(p)}\n`);
        return;
      }
      if (bar === undefined) {
        bar = new cliProgress.SingleBar({
          format: `${PHASE_TEXT[p.phase].padEnd(15)} [{bar}] {percentage}% | {detail}`,
          stream, hideCursor: true, clearOnComplete: false, barsize: 30, fps: 5,
        }, cliProgress.Presets.shades_classic);
        bar.start(1000, 0, { detail: detail(p) });
      }
      bar.update(Math.round(fraction(p) * 1000), { detail: detail(p) });
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}
