/**
 * Pure: how long the allocation loop sleeps before its next pass, given in how many ms each pending thing falls
 * due (a cooldown's end, a retry; undefined when there is none): until the earliest, at least 50 ms (a burst of
 * due times close together makes one pass, not one each), and never past the resync period. A due time far ahead
 * is capped there: past 2^31−1 ms Node fires a timer after 1 ms instead, and the loop would plan every few ms.
 */
export function nextPassInMs(dueInMs: Array<number | undefined>, resyncMs: number): number {
  const due = dueInMs.filter((ms): ms is number => ms !== undefined);
  return due.length ? Math.min(resyncMs, Math.max(50, Math.min(...due))) : resyncMs;
}
