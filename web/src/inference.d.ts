import type * as tf from '@tensorflow/tfjs';

export const PROBABILITIES: string;
export const ATYPICALITY: string;
export const CROP_BOX: string;
export function predict(model: tf.GraphModel, pixels: tf.Tensor4D): Promise<{
  probabilities: number[][]; atypicality: number[] | null; cropBox: number[][] | null }>;
export function outputNode(model: tf.GraphModel, output?: string): string;
export function predictProbabilities(model: tf.GraphModel, pixels: tf.Tensor4D): Promise<number[][]>;
export function warmUp(model: tf.GraphModel, size: number, classNames: string[]): Promise<void>;
export interface Interpretation {
  classId: number | null;     // null (and className, confidence): probabilities that are not all numbers
  className: string | null;
  confidence: number | null;
  probabilities: { name: string; probability: number }[];
  invalid: boolean;
  lowConfidence: boolean;
  unlikeTraining: boolean;
  needsReview: boolean;
  atypicality: number | null;
}
export function interpret(probabilities: number[], classNames: string[], reviewThreshold: number,
  atypicality?: number | null): Interpretation;
export interface AnswerRecord {
  images: number;
  recall: number | null;
  alsoGivenTo: { name: string; share: number }[];
}
export function answerRecord(confusionMatrix: number[][] | null | undefined, classNames: string[],
  classId: number): AnswerRecord | null;
