import type { EventRecorder, KubeObject } from "@nio/runtime";

const NAMES_SHOWN = 10;

/**
 * One Event for a batch of like changes ("claimed 100 Machines as worker: w-001, …"): Events are rate limited per
 * object, and a large cluster must not spend its budget on one Event per node and lose the transitions after it.
 */
export function batchEvent(
  recorder: EventRecorder,
  obj: KubeObject,
  reason: string,
  what: (count: number) => string,
  names: readonly string[],
): void {
  if (names.length === 0) return;
  const shown = names.slice(0, NAMES_SHOWN).join(", ");
  const more = names.length > NAMES_SHOWN ? `, … (+${names.length - NAMES_SHOWN} more)` : "";
  recorder.event(obj, "Normal", reason, `${what(names.length)}: ${shown}${more}`);
}

export const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;
