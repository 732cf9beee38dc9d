// Pruning schedules: when the filter masks change and whether pruned filters keep learning.
//  - hard: select once (at `startEpoch`), then pruned filters are frozen at zero;
//  - sfp (soft filter pruning): every epoch, zero the lowest-ranked filters and mask them, and
//    let them keep receiving gradients (gradOfPrunedFilters) so a filter may come back;
//  - asfp (asymptotic SFP): as sfp, with the rate ramping up to its target along 1 - e^{-k t},
//    so early epochs prune little (less damage while the weights are still moving fast).
import { ArgumentError } from '../errors.js';

export type ScheduleKind = 'hard' | 'sfp' | 'asfp';

export interface PruningSchedule {
  kind: ScheduleKind;
  /** Target fraction of filters pruned per layer (or globally), in [0, 1). */
  rate: number;
  /** First epoch (0-based) that prunes; default 0. */
  startEpoch?: number;
  /** asfp: epochs from startEpoch until the rate reaches its target; default 4. */
  rampEpochs?: number;
}

/** The schedule, checked, with defaults filled in. */
export function pruningSchedule(s: PruningSchedule): Required<PruningSchedule> {
  if (!['hard', 'sfp', 'asfp'].includes(s?.kind))
    throw new ArgumentError('schedule.kind', s?.kind, "'hard', 'sfp' or 'asfp'");
  if (!(typeof s.rate === 'number' && s.rate >= 0 && s.rate < 1))
    throw new ArgumentError('schedule.rate', s.rate, 'a fraction in [0, 1)');
  const startEpoch = s.startEpoch ?? 0,
    rampEpochs = s.rampEpochs ?? 4;
  if (!(Number.isInteger(startEpoch) && startEpoch >= 0))
    throw new ArgumentError('schedule.startEpoch', startEpoch, 'an integer >= 0');
  if (!(Number.isInteger(rampEpochs) && rampEpochs >= 1))
    throw new ArgumentError('schedule.rampEpochs', rampEpochs, 'an integer >= 1');
  return { kind: s.kind, rate: s.rate, startEpoch, rampEpochs };
}

/** Whether pruned filters receive weight gradients (compile with gradOfPrunedFilters). */
export function isSoft(s: PruningSchedule): boolean {
  return s.kind !== 'hard';
}

/** The pruning rate in force during `epoch` (0 before startEpoch). */
export function rateAt(schedule: PruningSchedule, epoch: number): number {
  const s = pruningSchedule(schedule);
  const t = epoch - s.startEpoch;
  if (t < 0) return 0;
  if (s.kind !== 'asfp' || t >= s.rampEpochs) return s.rate;
  // 1 - e^{-k(t+1)}, normalized to reach the target at the end of the ramp; k = 3 / ramp puts
  // about 2/3 of the rate in the first third of the ramp.
  const k = 3 / s.rampEpochs;
  return (s.rate * (1 - Math.exp(-k * (t + 1)))) / (1 - Math.exp(-k * s.rampEpochs));
}

/** Whether masks are (re)selected at the start of `epoch`. */
export function selectsAt(schedule: PruningSchedule, epoch: number): boolean {
  const s = pruningSchedule(schedule);
  return s.kind === 'hard' ? epoch === s.startEpoch : epoch >= s.startEpoch;
}
