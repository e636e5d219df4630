import type * as tf from '@tensorflow/tfjs';

export const PROBABILITIES: string;
export function outputNode(model: tf.GraphModel, output?: string): string;
export function predictProbabilities(model: tf.GraphModel, pixels: tf.Tensor4D): Promise<number[][]>;
export function warmUp(model: tf.GraphModel, size: number): Promise<void>;
export interface Interpretation {
  classId: number;
  className: string;
  confidence: number;
  probabilities: { name: string; probability: number }[];
  needsReview: boolean;
}
export function interpret(probabilities: number[], classNames: string[], reviewThreshold: number): Interpretation;
