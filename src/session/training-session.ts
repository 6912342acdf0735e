/**
 * One training session, whoever starts it: `tgnet train`, `tgnet demo` and the page's Train tab each build their
 * data their own way (a folder of datasets through the preprocessing cache, a phantom collection, phantoms made in
 * the tab) and hand it with a recipe to createTrainingSession, which makes the model, the sampler, the trainer
 * (optimiser and schedule) and the validation in one way. Nothing here touches Node or the DOM.
 */
import { BatchSampler, type BatchSamplerOptions, type TrainingCase } from '../data/sampler.js';
import { validationDice, type ValidationCrop, type ValidationDice } from '../eval/validation-crops.js';
import { warmUpPipelines, type WarmUpResult } from '../eval/warm-up.js';
import type { CheckpointRunInfo } from '../tgnet/checkpoint.js';
import { TGNet } from '../tgnet/model.js';
import { Trainer, type BatchSource } from '../tgnet/train.js';
import { augmentOptions, checkRecipe, type TrainingRecipe } from './recipes.js';

/** A crop stream the session drives; `close` ends worker threads or file handles it holds. */
export interface SessionSampler extends BatchSource {
  close?(): Promise<void>;
}

/** What a session trains on: a sampler made to the recipe's crops, and fixed validation crops. */
export interface TrainingData {
  /** Builds the crop stream for the recipe's batch, crop, seed, augmentation and foreground share. */
  sampler(options: BatchSamplerOptions): SessionSampler;
  /** One fixed crop per validation case (may be empty: no validation). */
  validation: readonly ValidationCrop[];
  /** Training cases, for the front ends' messages. */
  trainCases: number;
}

/** Training cases held in memory (the page, tests): BatchSampler over them. */
export function inMemoryData(cases: readonly TrainingCase[], validation: readonly ValidationCrop[]): TrainingData {
  return { sampler: (options) => new BatchSampler(cases, options), validation, trainCases: cases.length };
}

export interface SessionOptions {
  /** Where checkpoints go (none: no checkpoint files, e.g. in a browser). */
  checkpointPath?: string;
  /** Recorded in checkpoints for the command line to continue the run. */
  runInfo?: CheckpointRunInfo;
}

export interface TrainingSession {
  readonly recipe: Readonly<TrainingRecipe>;
  readonly model: TGNet;
  readonly trainer: Trainer;
  readonly sampler: SessionSampler;
  readonly validation: readonly ValidationCrop[];
  readonly trainCases: number;
  /**
   * Compiles every pipeline of a step (and of validation when there is any) before the first step, several at a
   * time, with progress; the first step's time is then the step's.
   */
  warmUp(onProgress?: (done: number, total: number) => void): Promise<WarmUpResult>;
  /** Thresholded Dice on the validation crops. */
  validate(): Promise<ValidationDice>;
  /** Ends the sampler's workers and frees the model's and optimiser's GPU memory. */
  close(): Promise<void>;
}

/** Makes the model, the sampler and the trainer of a recipe; the GPU must be initialised. */
export function createTrainingSession(recipe: TrainingRecipe, data: TrainingData, options: SessionOptions = {}): TrainingSession {
  checkRecipe(recipe);
  const frozen: Readonly<TrainingRecipe> = Object.freeze({ ...recipe, crop: [...recipe.crop] as const });
  const sampler = data.sampler({
    batchSize: recipe.batch, cropSize: recipe.crop, seed: recipe.seed, augment: augmentOptions(recipe.augment), foregroundFraction: recipe.foregroundFraction,
    tumourFraction: recipe.tumourFraction ?? 0,
  });
  let model: TGNet | null = null;
  try {
    model = TGNet.create({ variant: recipe.variant, width: recipe.width, seed: recipe.seed, checkpointActivations: recipe.checkpointActivations });
    const trainer = new Trainer({
      model, batches: sampler, totalSteps: recipe.steps, optimizer: recipe.optimizer, lr0: recipe.lr, warmupSteps: recipe.warmupSteps,
      weightDecay: recipe.weightDecay, logEvery: recipe.logEvery, checkpointEvery: recipe.checkpointEvery, checkpointPath: options.checkpointPath,
      seed: recipe.seed, crop: recipe.crop, batchSize: recipe.batch, runInfo: options.runInfo, precision: recipe.precision,
    });
    const built = model;
    return {
      recipe: frozen, model: built, trainer, sampler, validation: data.validation, trainCases: data.trainCases,
      warmUp: (onProgress) => warmUpPipelines(built, {
        crop: recipe.crop, batch: recipe.batch, optimizer: recipe.optimizer, inference: data.validation.length > 0, onProgress,
        precision: recipe.precision,
      }),
      validate: () => validationDice(built, data.validation, recipe.crop, recipe.batch),
      async close() {
        try {
          await sampler.close?.();
        } finally {
          trainer.dispose();
          built.dispose();
        }
      },
    };
  } catch (e) {
    model?.dispose();
    void sampler.close?.();
    throw e;
  }
}
