/**
 * TGNet's task table: the partially labelled datasets it is trained on, in the order of the task one-hot
 * (the model's own copy, so that src/tgnet does not depend on src/data).
 */
export const TASK_NAMES = ['liver', 'kidney', 'hepatic_vessel', 'pancreas', 'colon', 'lung', 'spleen'] as const;

export type TaskName = (typeof TASK_NAMES)[number];

export const NUM_TASKS = TASK_NAMES.length;

/** The task id of a task name; throws for a name outside the table. */
export function taskId(name: string): number {
  const i = (TASK_NAMES as readonly string[]).indexOf(name);
  if (i < 0) throw new RangeError(`taskId: unknown task '${name}'; expected one of ${TASK_NAMES.join(', ')}`);
  return i;
}
