/**
 * How tgnet trains, in one place: the recipe every front end hands to createTrainingSession, the defaults of
 * `tgnet train`, the profiles of `tgnet demo` (also the page's Train tab), and the one check of a recipe. Each
 * default is written here once; the front ends only say which recipe and what the user overrode.
 *
 * The demo's recipe is not the paper's: SGD with momentum 0.99 and lr 0.01 on a poly schedule is made for 1000
 * epochs and barely moves the loss in a few hundred steps. The demo uses Adam (lr 1e-2) with a linear warm-up and
 * the poly decay, whole-volume crops (the software profile: crops of two thirds of the volume, half of them centred on
 * a tumour), and no mirroring (the phantoms, like real CT, have a fixed orientation:
 * mirroring left-right would make the liver and spleen trade places, which a real scanner never does). The
 * report states both.
 */
import { DEFAULT_AUGMENT, DODNET_AUGMENT, NO_AUGMENT, type AugmentOptions } from '../data/augment.js';
import { phantomFieldSpacing } from '../data/phantom.js';
import type { DHW, XYZ } from '../common/shape.js';
import { DTYPES, type DType } from '../kernels/runtime/precision.js';
import { DEFAULT_LEARNING_RATES, OPTIMIZER_KINDS, type OptimizerKind } from '../nn/optim.js';
import { isGridSide, TGNET_VARIANTS, TOTAL_STRIDE, type TGNetVariant } from '../tgnet/model.js';

/**
 * The training crops' augmentation: 'none' (crops as they are), 'intensity' (DoDNet's scaling and intensity
 * changes without mirroring), 'default' (the same with mirroring on every axis) or 'dodnet' (DoDNet's loader:
 * zoom 0.7-1.4 with probability 0.2 and its flips).
 */
export const AUGMENTATIONS = ['none', 'intensity', 'default', 'dodnet'] as const;
export type Augmentation = (typeof AUGMENTATIONS)[number];

/** What a training run is: the model, the optimisation and the crops, everything but the data. */
export interface TrainingRecipe {
  variant: TGNetVariant;
  /** Channels of the first stage. */
  width: number;
  /** Training crop and validation tile [D, H, W], multiples of TOTAL_STRIDE. */
  crop: DHW;
  /** Crops per step. */
  batch: number;
  /** Total optimiser steps; the poly schedule reaches 0 there. */
  steps: number;
  optimizer: OptimizerKind;
  /** Peak learning rate. */
  lr: number;
  /** Steps of linear warm-up before the poly 0.9 decay. */
  warmupSteps: number;
  weightDecay: number;
  /** Share of crops centred on a labelled voxel (DoDNet: 0.8). */
  foregroundFraction: number;
  /**
   * Share of crops centred on a voxel of the case's own tumour, drawn before the foreground share (lesion-aware
   * sampling; default 0, DoDNet's sampling). Only matters when the crop is smaller than the volume.
   */
  tumourFraction?: number;
  augment: Augmentation;
  /** Seed of the weights and the crop stream. */
  seed: number;
  /** Loss read back every this many steps. */
  logEvery: number;
  /** Validation Dice on fixed crops every this many steps and at the end (0: only at the end). */
  valEvery: number;
  /** A checkpoint every this many steps (0: only at the end). */
  checkpointEvery: number;
  /** Recompute the encoder's first stages in backward (less memory, the same gradients). */
  checkpointActivations: boolean;
  /** 'f32', or 'f16': mixed precision (f16 activations and gradients, f32 weights, dynamic loss scaling). */
  precision: DType;
}

/** The default peak learning rate of an optimiser (nn/optim's table). */
export function defaultLearningRate(optimizer: OptimizerKind): number {
  return DEFAULT_LEARNING_RATES[optimizer];
}

/**
 * `tgnet train`'s defaults: the paper's optimiser (SGD, momentum 0.99 Nesterov, poly 0.9) and DoDNet's crops
 * (80 % foreground-centred, scaling, intensity and mirroring), on settings small enough that the default run takes
 * about two minutes on a software adapter; a real run gives --width 32 --crop 64 192 192 on a GPU.
 */
export const TRAIN_RECIPE: Readonly<TrainingRecipe> = {
  variant: 'tgnet', width: 4, crop: [16, 32, 32], batch: 2, steps: 24, optimizer: 'sgd', lr: defaultLearningRate('sgd'), warmupSteps: 0,
  weightDecay: 3e-5, foregroundFraction: 0.8, augment: 'default', seed: 0, logEvery: 4, valEvery: 12, checkpointEvery: 0,
  checkpointActivations: false, precision: 'f32',
};

/** The sampler settings an augmentation name stands for. */
export function augmentOptions(augment: Augmentation): AugmentOptions {
  switch (augment) {
    case 'none': return NO_AUGMENT;
    case 'intensity': return { ...DEFAULT_AUGMENT, mirror: false };
    case 'default': return DEFAULT_AUGMENT;
    case 'dodnet': return DODNET_AUGMENT;
  }
}

/** How augmentation is described in a report. */
export function describeAugmentation(augment: Augmentation): string {
  switch (augment) {
    case 'none': return 'none (a run this short does not overfit the training cases); no mirroring (fixed anatomical orientation)';
    case 'intensity': return 'scaling, noise, brightness, contrast, gamma (DoDNet\'s); no mirroring (fixed anatomical orientation)';
    case 'default': return 'scaling, noise, brightness, contrast, gamma and mirroring on every axis';
    case 'dodnet': return 'DoDNet\'s loader: zoom 0.7-1.4 with probability 0.2 resized back, and its flips';
  }
}

/**
 * What is wrong with a recipe, one sentence per problem naming the setting, its value and what was expected;
 * empty when it can be trained. `name` turns a field into the front end's word for it (a flag, a form label).
 */
export function recipeProblems(r: TrainingRecipe, name: (field: keyof TrainingRecipe) => string = (f) => f): string[] {
  const problems: string[] = [];
  const integer = (field: keyof TrainingRecipe, min: number) => {
    const v = r[field] as number;
    if (!Number.isSafeInteger(v) || v < min) problems.push(`${name(field)} is ${v}; expected an integer >= ${min}`);
  };
  if (!TGNET_VARIANTS.includes(r.variant)) problems.push(`${name('variant')} is ${JSON.stringify(r.variant)}; expected one of ${TGNET_VARIANTS.join(', ')}`);
  integer('width', 1);
  if (!Array.isArray(r.crop) || r.crop.length !== 3 || !r.crop.every(isGridSide)) {
    problems.push(`${name('crop')} is ${String(r.crop).replace(/,/g, 'x')}; expected three positive multiples of ${TOTAL_STRIDE} (the network halves the grid four times)`);
  }
  integer('batch', 1);
  integer('steps', 1);
  if (!OPTIMIZER_KINDS.includes(r.optimizer)) problems.push(`${name('optimizer')} is ${JSON.stringify(r.optimizer)}; expected one of ${OPTIMIZER_KINDS.join(', ')}`);
  if (!(r.lr > 0 && Number.isFinite(r.lr))) problems.push(`${name('lr')} is ${r.lr}; expected a positive learning rate`);
  integer('warmupSteps', 0);
  if (Number.isSafeInteger(r.warmupSteps) && Number.isSafeInteger(r.steps) && r.warmupSteps >= r.steps) {
    problems.push(`${name('warmupSteps')} is ${r.warmupSteps}; expected fewer warm-up steps than ${name('steps')} ${r.steps}`);
  }
  if (!(r.weightDecay >= 0 && Number.isFinite(r.weightDecay))) problems.push(`${name('weightDecay')} is ${r.weightDecay}; expected a finite number >= 0`);
  if (!(r.foregroundFraction >= 0 && r.foregroundFraction <= 1)) problems.push(`${name('foregroundFraction')} is ${r.foregroundFraction}; expected a share in [0, 1]`);
  if (r.tumourFraction !== undefined && !(r.tumourFraction >= 0 && r.tumourFraction <= 1)) problems.push(`${name('tumourFraction')} is ${r.tumourFraction}; expected a share in [0, 1]`);
  if (!AUGMENTATIONS.includes(r.augment)) problems.push(`${name('augment')} is ${JSON.stringify(r.augment)}; expected one of ${AUGMENTATIONS.join(', ')}`);
  if (!DTYPES.includes(r.precision)) problems.push(`${name('precision')} is ${JSON.stringify(r.precision)}; expected one of ${DTYPES.join(', ')}`);
  integer('seed', 0);
  integer('logEvery', 1);
  integer('valEvery', 0);
  integer('checkpointEvery', 0);
  return problems;
}

/** Throws naming every problem of the recipe (see recipeProblems). */
export function checkRecipe(r: TrainingRecipe, who = 'training recipe'): void {
  const problems = recipeProblems(r);
  if (problems.length) throw new RangeError(`${who}: ${problems.join('; ')}`);
}

/**
 * A profile's warm-up fitted to a run shortened by the user: a tenth of the steps when the profile's warm-up
 * would not end before the run does.
 */
export function fitWarmup(warmupSteps: number, steps: number): number {
  return warmupSteps < steps ? warmupSteps : Math.floor(steps / 10);
}

export const DEMO_PROFILES = ['software', 'gpu', 'tiny'] as const;
export type DemoProfile = (typeof DEMO_PROFILES)[number];

/**
 * What `tgnet demo` trains, chosen by the adapter: the software adapter (a CPU running the WGSL) gets a
 * configuration that learns within the 15-minute budget on two cores; a real GPU gets a bigger one (more width,
 * larger volumes and crops, more steps) that still finishes in minutes; `tiny` exercises the whole pipeline in
 * seconds for tests. The model's variant and the seed are the run's, not the profile's.
 */
export interface DemoConfig extends Omit<TrainingRecipe, 'variant' | 'seed' | 'checkpointEvery' | 'checkpointActivations' | 'precision'> {
  profile: DemoProfile;
  /** Phantom volume [D, H, W] voxels; the crop is the whole volume or a part of it. */
  volume: DHW;
  /** Phantom cases per task; `valCases` of them are held out. */
  casesPerTask: number;
  valCases: number;
  /** 8-flip test-time averaging at the final evaluation. */
  flips: boolean;
  /** Why this configuration, printed and put in the report. */
  reason: string;
}

/** The recipe of a demo configuration for one model and seed. */
export function demoRecipe(
  config: DemoConfig, run: Pick<TrainingRecipe, 'variant' | 'seed'> & Partial<Pick<TrainingRecipe, 'checkpointActivations' | 'precision'>>,
): TrainingRecipe {
  const { profile: _profile, volume: _volume, casesPerTask: _cases, valCases: _val, flips: _flips, reason: _reason, ...recipe } = config;
  return {
    ...recipe, variant: run.variant, seed: run.seed, checkpointEvery: 0, checkpointActivations: run.checkpointActivations ?? false,
    precision: run.precision ?? 'f32',
  };
}

/** The phantom world's size along each axis, mm (data/phantom.ts); re-exported for the demo's and the page's callers. */
export { PHANTOM_FIELD_MM } from '../data/phantom.js';

/** Voxel size [x, y, z] mm at which a phantom volume [D, H, W] covers the whole phantom world (phantomFieldSpacing). */
export function phantomSpacing(volume: DHW): XYZ {
  return phantomFieldSpacing(volume);
}

/**
 * DoDNet's 0.8 foreground share starves the network of look-alike tissue far from the organ (measured: the liver
 * was found but predicted 2x too large); half and half learns both. No augmentation: a short run does not overfit
 * 9 cases per task, and augmentation slows early learning.
 */
const DEMO_COMMON = { optimizer: 'adam' as OptimizerKind, lr: 1e-2, weightDecay: 3e-5, flips: false, foregroundFraction: 0.5, augment: 'none' as Augmentation };

export const DEMO_CONFIGS: Record<DemoProfile, DemoConfig> = {
  software: {
    ...DEMO_COMMON, profile: 'software', volume: [16, 48, 48], crop: [16, 32, 32], width: 4, batch: 2, steps: 5000, tumourFraction: 0.5,
    casesPerTask: 24, valCases: 6, warmupSteps: 40, valEvery: 100, logEvery: 10,
    reason: 'software adapter (the WGSL runs on the CPU): width 4, 16x48x48 phantoms (7.5x7.5x22.5 mm voxels, lesions of 5-90 voxels) '
      + 'cut into 16x32x32 crops (two thirds of the abdomen across, so liver and spleen keep their context), half of them centred on '
      + 'a voxel of the case\'s own tumour (lesion-aware sampling; the rest as DoDNet: half on a labelled voxel, half anywhere; the loss '
      + 'is DoDNet\'s, unweighted), 5000 steps of batch 2: about 10-13 minutes for the whole demo on two idle cores. Measured on seed 0 '
      + 'against the previous default (whole 16x32x32 phantoms, 2000 steps): held-out tumour Dice liver 0.35 (was 0.00), kidney 0.43 '
      + '(0.05), pancreas 0.35 (0.12), colon 0.05 (0.00), with every organ higher (kidney 0.95, was 0.78); the same compute on whole '
      + '16x48x48 phantoms (2000 steps) found liver tumours at 0.04, and 16x32x64 crops of 32x64x64 phantoms over-called the tumours '
      + '(Dice per crop does not penalise a tumour predicted in a crop without one)',
  },
  gpu: {
    ...DEMO_COMMON, profile: 'gpu', volume: [32, 64, 64], crop: [32, 64, 64], width: 16, batch: 2, steps: 2000,
    casesPerTask: 16, valCases: 4, warmupSteps: 50, valEvery: 100, logEvery: 10, augment: 'intensity',
    reason: 'hardware GPU: width 16, whole 32x64x64 phantoms (twice the software profile\'s resolution, 5.6x5.6x11 mm voxels) '
      + 'and 2000 steps with DoDNet\'s intensity augmentation still finish in minutes',
  },
  tiny: {
    ...DEMO_COMMON, profile: 'tiny', volume: [16, 32, 32], crop: [16, 32, 32], width: 2, batch: 2, steps: 4,
    casesPerTask: 2, valCases: 1, lr: 3e-3, warmupSteps: 1, valEvery: 2, logEvery: 1,
    reason: 'tiny: the whole pipeline in seconds (a test of the artefacts, not of learning)',
  },
};
