/**
 * When this process first saw each object (by name) in a given state, on its monotonic clock: for waits that
 * must not lean on a time another host's wall clock wrote (client-go judges a lease's expiry the same way, from
 * when it saw the lease change). A state is a string the caller makes (a release: uid and releasedAt); a new
 * state starts the count again, and an object no longer in one is forgotten, so the map holds at most the cache.
 */
export class FirstSeen {
  private readonly seen = new Map<string, { state: string; at: number }>();

  constructor(private readonly clock: () => number = () => performance.now()) {}

  /** `state` undefined: the object is in no state worth timing. */
  note(name: string, state: string | undefined): void {
    if (state === undefined) this.seen.delete(name);
    else if (this.seen.get(name)?.state !== state) this.seen.set(name, { state, at: this.clock() });
  }

  forget(name: string): void {
    this.seen.delete(name);
  }

  /** When `name` was first seen in `state`; undefined if it is not known in that state. */
  at(name: string, state: string): number | undefined {
    const seen = this.seen.get(name);
    return seen?.state === state ? seen.at : undefined;
  }

  /** Keep only these names (objects gone without an event: a relist, a delete of our own). */
  keepOnly(names: Set<string>): void {
    for (const name of this.seen.keys()) if (!names.has(name)) this.seen.delete(name);
  }

  get size(): number { return this.seen.size; }
}
