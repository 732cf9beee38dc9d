// Applies a criterion and a schedule to a MaskedCnn: picks each epoch's filter masks from the
// current weights, links them through the network and zeroes the pruned filters.
import type { MaskedCnn } from '../tfjs/masked-cnn.js';
import { filterScores, selectFilters, selectFiltersGlobal, type FilterCriterion } from './criteria.js';
import { pruningSchedule, rateAt, selectsAt, type PruningSchedule } from './schedule.js';
import { ArgumentError } from '../errors.js';

export interface PruningOptions {
  criterion: FilterCriterion;
  schedule: PruningSchedule;
  /** 'layer' (default): the rate applies to every conv layer; 'global': ranked over all layers. */
  scope?: 'layer' | 'global';
}

/** Keep-masks for OIHW conv weights at one pruning rate. */
export function selectMasks(
  kernels: readonly { w: Float32Array; outChannels: number }[],
  criterion: FilterCriterion,
  rate: number,
  scope: 'layer' | 'global' = 'layer',
): Uint8Array[] {
  if (scope !== 'layer' && scope !== 'global') throw new ArgumentError('scope', scope, "'layer' or 'global'");
  const scores = kernels.map((k) => filterScores(k.w, k.outChannels, criterion));
  return scope === 'global'
    ? selectFiltersGlobal(
        scores.map((s) => ({ scores: s })),
        rate,
      )
    : scores.map((s) => selectFilters(s, rate));
}

/**
 * At the start of `epoch`: if the schedule selects then, rank the filters of the current weights,
 * set the linked masks and zero the pruned filters. Returns the rate in force (or undefined when
 * the masks were left as they are).
 */
export function pruneAtEpoch(net: MaskedCnn, opts: PruningOptions, epoch: number): number | undefined {
  const schedule = pruningSchedule(opts.schedule);
  if (!selectsAt(schedule, epoch)) return undefined;
  const rate = rateAt(schedule, epoch);
  const kernels = net.convs.map((c) => ({
    w: c.kernel.dataSync() as Float32Array,
    outChannels: c.conv.spec.outChannels,
  }));
  net.setFilterMasks(selectMasks(kernels, opts.criterion, rate, opts.scope));
  net.zeroPruned();
  return rate;
}
