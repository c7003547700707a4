import { describe, expect, it } from "vitest";
import { LatestOnly } from "./status-writer.js";

/** A job that runs until the test lets it finish. */
function gatedRunner() {
  const ran: number[] = [];
  const gates: Array<() => void> = [];
  let inFlight = 0;
  let most = 0;
  const errors: unknown[] = [];
  const runner = new LatestOnly<number>(async (n) => {
    inFlight++;
    most = Math.max(most, inFlight);
    ran.push(n);
    await new Promise<void>((resolve) => gates.push(resolve));
    inFlight--;
    if (n < 0) throw new Error(`job ${n}`);
  }, (err) => errors.push(err));
  const release = async () => { gates.shift()!(); await new Promise((r) => setTimeout(r, 0)); };
  return { runner, ran, release, errors, most: () => most };
}

describe("LatestOnly: the newest job, one at a time", () => {
  it("runs an offer at once, and of those made meanwhile only the newest, after it", async () => {
    const { runner, ran, release, most } = gatedRunner();
    runner.offer(1);
    expect(runner.running).toBe(true);
    runner.offer(2);
    runner.offer(3);
    expect(ran).toEqual([1]);
    await release();
    expect(ran).toEqual([1, 3]);
    await release();
    expect(runner.running).toBe(false);
    runner.offer(4);
    await release();
    expect(ran).toEqual([1, 3, 4]);
    expect(most()).toBe(1);
  });

  it("a job that throws is reported and the next one still runs", async () => {
    const { runner, ran, release, errors } = gatedRunner();
    runner.offer(-1);
    runner.offer(5);
    await release();
    await release();
    expect(ran).toEqual([-1, 5]);
    expect(errors.map((e) => (e as Error).message)).toEqual(["job -1"]);
  });

  it("stop drops what waits, resolves when the running job ends, and takes no offer after", async () => {
    const { runner, ran, release } = gatedRunner();
    runner.offer(1);
    runner.offer(2);
    let stopped = false;
    const stopping = runner.stop().then(() => { stopped = true; });
    await new Promise((r) => setTimeout(r, 0));
    expect(stopped).toBe(false);
    await release();
    await stopping;
    runner.offer(3);
    expect(ran).toEqual([1]);
    expect(runner.running).toBe(false);
  });
});
