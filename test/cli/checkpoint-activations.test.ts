import { describe, expect, it } from 'vitest';
import { DEMO_CLI, parseDemoArgs } from '../../src/cli/demo.js';
import { parseTrainArgs, TRAIN_CLI } from '../../src/cli/train.js';

describe('--checkpoint-activations', () => {
  it('is an off-by-default switch of train and demo, listed in their help', () => {
    expect(parseTrainArgs([]).checkpointActivations).toBe(false);
    expect(parseTrainArgs(['--checkpoint-activations', '--width', '2'])).toMatchObject({ checkpointActivations: true, width: 2 });
    expect(parseDemoArgs([]).checkpointActivations).toBe(false);
    expect(parseDemoArgs(['--checkpoint-activations']).checkpointActivations).toBe(true);
    expect(TRAIN_CLI.usage).toMatch(/--checkpoint-activations/);
    expect(DEMO_CLI.usage).toMatch(/--checkpoint-activations/);
  });
});
