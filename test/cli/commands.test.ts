/**
 * `tgnet <command>` as the executable runs it (runCli, main.ts's body), in this process with the output captured:
 * --help prints the usage and exits 0, unknown flags and bad values exit 2 naming the flag, multi-value and
 * repeated flags parse. No command here gets far enough to open a GPU.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { flagName, type CommandLine, type OptionSpecs } from '../../src/cli/args.js';
import { BENCH_NOTE, COMMANDS, runCli, usage } from '../../src/cli/commands.js';
import { DEMO_CLI, parseDemoArgs } from '../../src/cli/demo.js';
import { EVALUATE_MASKS_CLI, EVALUATE_MODELS_CLI, EVALUATE_USAGE, parseEvaluateModelsArgs } from '../../src/cli/evaluate.js';
import { EXPORT_CLI } from '../../src/cli/export.js';
import { IMPORT_DODNET_CLI } from '../../src/cli/import-dodnet.js';
import { INFO_CLI } from '../../src/cli/info.js';
import { parsePredictArgs, PREDICT_CLI } from '../../src/cli/predict.js';
import { parseSynthArgs, SYNTH_CLI } from '../../src/cli/synth.js';
import { parseTrainArgs, TRAIN_CLI } from '../../src/cli/train.js';
import { TUNE_CLI } from '../../src/cli/tune.js';
import { captureOutput } from '../helpers/capture-output.js';

afterEach(() => vi.restoreAllMocks());

/** runCli's exit status and what it wrote to stdout and stderr. */
async function tgnet(...argv: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  const out = captureOutput();
  const err: string[] = [];
  vi.spyOn(console, 'error').mockImplementation((s: string) => { err.push(s); });
  const status = await runCli(argv);
  vi.restoreAllMocks();
  return { status, stdout: out.join('\n'), stderr: err.join('\n') };
}

const CLIS: Record<string, CommandLine<OptionSpecs>[]> = {
  demo: [DEMO_CLI], train: [TRAIN_CLI], synth: [SYNTH_CLI], info: [INFO_CLI], predict: [PREDICT_CLI],
  evaluate: [EVALUATE_MODELS_CLI, EVALUATE_MASKS_CLI], 'import-dodnet': [IMPORT_DODNET_CLI],
  tune: [TUNE_CLI], export: [EXPORT_CLI],
};

describe('tgnet --help', () => {
  it('covers every command', () => {
    expect(Object.keys(CLIS).sort()).toEqual(Object.keys(COMMANDS).sort());
  });

  it('tgnet, tgnet --help and tgnet help print the command list and exit 0', async () => {
    for (const argv of [[], ['--help'], ['-h'], ['help']]) {
      const { status, stdout, stderr } = await tgnet(...argv);
      expect(status).toBe(0);
      expect(stdout).toBe(usage());
      expect(stderr).toBe('');
    }
    for (const name of Object.keys(COMMANDS)) expect(usage()).toContain(`  ${name} `);
  });

  for (const name of Object.keys(CLIS)) {
    it(`tgnet ${name} --help prints its usage, every declared flag in it, and exits 0`, async () => {
      const expected = name === 'evaluate' ? EVALUATE_USAGE : CLIS[name][0].usage;
      for (const argv of [[name, '--help'], [name, '-h'], ['help', name], [name, '--seed', 'not-a-number', '--help']]) {
        const { status, stdout, stderr } = await tgnet(...argv);
        expect(status).toBe(0);
        expect(stderr).toBe('');
        expect(stdout).toBe(expected);
      }
      expect(expected.startsWith(`usage: tgnet ${name} `)).toBe(true);
      for (const cli of CLIS[name]) {
        expect(cli.usage).toBe(expected);
        for (const key of Object.keys(cli.options)) expect(expected).toMatch(new RegExp(`^ {2}${flagName(key)}\\b`, 'm'));
      }
    });
  }
});

describe('tgnet refuses a bad command line with status 2, naming the flag', () => {
  it('an unknown flag, for every command', async () => {
    for (const name of Object.keys(COMMANDS)) {
      const { status, stdout, stderr } = await tgnet(name, '--frobnicate', '3');
      expect(status).toBe(2);
      expect(stdout).toBe('');
      expect(stderr.split('\n')[0]).toBe(`tgnet ${name}: unknown argument "--frobnicate"`);
      expect(stderr).toContain(`usage: tgnet ${name} `);
    }
  });

  it('a bad number, for every command', async () => {
    const cases: [string[], string][] = [
      [['demo', '--steps', 'ten'], 'tgnet demo: --steps is "ten"; expected an integer >= 1'],
      [['train', '--batch', '0'], 'tgnet train: --batch is "0"; expected an integer >= 1'],
      [['synth', '--out', 'x', '--cases', '1.5'], 'tgnet synth: --cases is "1.5"; expected an integer >= 1'],
      [['info', '--model-sizes', '--width', '-3'], 'tgnet info: --width is "-3"; expected a positive integer'],
      [['predict', '--model', 'm', '--input', 'i', '--task', '0', '--out', 'o.nii', '--overlap', '1'], 'tgnet predict: --overlap is "1"; expected a number in [0, 1)'],
      [['evaluate', '--model', 'a', '--data', 'd', '--batch', 'two'], 'tgnet evaluate: --batch is "two"; expected a positive integer'],
      [['import-dodnet', '--in', 'a', '--out', 'b', '--crop', '16', '16', '-32'], 'tgnet import-dodnet: --crop W is "-32"; expected a positive multiple of 16'],
      [['tune', '--crop', '16', '32', '24'], 'tgnet tune: --crop W is "24"; expected a positive multiple of 16'],
    ];
    for (const [argv, message] of cases) {
      const { status, stderr } = await tgnet(...argv);
      expect(status).toBe(2);
      expect(stderr.split('\n')[0]).toBe(message);
    }
  });

  it('an unknown command and a missing required flag', async () => {
    const unknown = await tgnet('trian');
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/^tgnet: unknown command "trian"; expected one of demo, info, synth, train/);
    const missing = await tgnet('predict', '--input', 'i', '--task', 'liver', '--out', 'o.nii.gz');
    expect(missing.status).toBe(2);
    expect(missing.stderr.split('\n')[0]).toBe('tgnet predict: --model FILE is required');
  });

  it('tgnet bench says where the benchmarks are: an error to run, the answer to --help', async () => {
    const run = await tgnet('bench', '--quick');
    expect(run.status).toBe(2);
    expect(run.stderr).toBe(`tgnet bench: ${BENCH_NOTE}`);
    expect(run.stderr).toContain('npm run bench');
    const help = await tgnet('bench', '--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toBe(BENCH_NOTE);
  });
});

describe('multi-value and repeated flags', () => {
  it('three words after --crop, --size, --volume, --spacing, --tile', () => {
    expect(parseTrainArgs(['--crop', '32', '64', '48', '--width', '2'])).toMatchObject({ crop: [32, 64, 48], width: 2 });
    expect(parseTrainArgs(['--crop=16', '32', '32']).crop).toEqual([16, 32, 32]);
    expect(() => parseTrainArgs(['--crop', '16', '32', '--width', '2'])).toThrow(/--crop W is "--width"; expected an integer >= 1/);
    expect(parseSynthArgs(['--out', 'x', '--size', '8', '16', '24']).size).toEqual([8, 16, 24]);
    expect(parseDemoArgs(['--volume', '32', '64', '64', '--no-flips'])).toMatchObject({ volume: [32, 64, 64], flips: false });
    expect(() => parseDemoArgs(['--volume', '32', '40', '64'])).toThrow(/--volume H is "40"; expected a positive multiple of 16/);
    const base = ['--model', 'm', '--input', 'i', '--task', 'kidney', '--out', 'o.nii.gz'];
    expect(parsePredictArgs([...base, '--spacing', '2', '1', '1', '--crop', '16', '32', '32'])).toMatchObject({ task: 1, spacingZYX: [2, 1, 1], crop: [16, 32, 32] });
    // --spacing and --native-spacing: the later one wins.
    expect(parsePredictArgs([...base, '--spacing', '2', '1', '1', '--native-spacing']).spacingZYX).toBeNull();
    expect(parsePredictArgs([...base, '--native-spacing', '--spacing', '2', '1', '1']).spacingZYX).toEqual([2, 1, 1]);
    expect(parseEvaluateModelsArgs(['--model', 'a', '--data', 'd', '--spacing', 'native', '--tile', '16', '32', '32']))
      .toMatchObject({ spacingZYX: null, tile: [16, 32, 32] });
  });

  it('--model A --model B with --name per model; a flag given twice keeps the last', () => {
    expect(parseEvaluateModelsArgs(['--model', 'runs/a.safetensors', '--name', 'A', '--data', 'd', '--model', 'runs/b.safetensors', '--name', 'B']))
      .toMatchObject({ models: ['runs/a.safetensors', 'runs/b.safetensors'], names: ['A', 'B'], data: 'd' });
    expect(parseEvaluateModelsArgs(['--model', 'x/a.safetensors', '--model', 'y/a.safetensors', '--data', 'd']).names).toEqual(['x/a', 'y/a']);
    expect(parseTrainArgs(['--steps', '3', '--steps', '5']).steps).toBe(5);
  });
});
