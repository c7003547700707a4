import type { Condition } from "../crds/common.js";

export interface ConditionInput {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
}

/** A time as Kubernetes writes it in status fields: RFC 3339, whole seconds. */
export const kubeTime = (at: Date) => at.toISOString().replace(/\.\d{3}Z$/, "Z");

/**
 * The condition to write: lastTransitionTime moves only when the status flips (API conventions), so a
 * level-based loop rewriting the same condition does not pretend something changed.
 */
export function nextCondition(existing: Condition[] | undefined, input: ConditionInput, generation: number | undefined, now: Date): Condition {
  const previous = existing?.find((c) => c.type === input.type);
  const lastTransitionTime = previous && previous.status === input.status ? previous.lastTransitionTime : kubeTime(now);
  // The schema's limit (metav1.Condition's): a longer message would have the whole status write refused.
  const message = input.message.length > MAX_CONDITION_MESSAGE ? `${input.message.slice(0, MAX_CONDITION_MESSAGE - 3)}...` : input.message;
  return { ...input, message, ...(generation !== undefined ? { observedGeneration: generation } : {}), lastTransitionTime };
}
export const MAX_CONDITION_MESSAGE = 32_768;

/** True when writing `wanted` would change nothing that matters (ignores lastTransitionTime). */
export function conditionsEqual(existing: Condition[] | undefined, wanted: Condition[]): boolean {
  return wanted.every((w) => {
    const e = existing?.find((c) => c.type === w.type);
    return e !== undefined && e.status === w.status && e.reason === w.reason && e.message === w.message && e.observedGeneration === w.observedGeneration;
  });
}
