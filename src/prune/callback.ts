// PruningCallback: pass it to model.fit on a model from prune(). At each epoch's start it applies
// the schedule (ranks filters, sets the linked masks, zeroes the pruned) and logs kept counts.
import { tf } from '../tfjs/tf.js';
import { applyPruning, type PruningStep } from './prune-model.js';

export class PruningCallback extends tf.Callback {
  /** Every selection made during fit, in order. */
  readonly steps: PruningStep[] = [];

  /** `log` receives one line per selection (default: none). */
  constructor(private readonly log?: (line: string) => void) {
    super();
  }

  override async onEpochBegin(epoch: number): Promise<void> {
    const step = applyPruning(this.model, epoch);
    if (!step) return;
    this.steps.push(step);
    const kept = Object.entries(step.kept).map(([name, k]) => `${name} ${k.kept}/${k.total}`);
    this.log?.(`epoch ${epoch + 1}: pruning rate ${(100 * step.rate).toFixed(1)}%, kept filters: ${kept.join(', ')}`);
  }
}
