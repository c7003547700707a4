import { describe, expect, it } from "vitest";
import { parseSoakArgs, replayArgs, SoakUsageError } from "./soak-args.js";

describe("parseSoakArgs", () => {
  it("defaults: the given seed, 4 nodes on one segment, 10 minutes", () => {
    expect(parseSoakArgs([], 123)).toMatchObject({ seed: 123, nodes: 4, segments: 1, minutes: 10, dualStack: false, ha: false, overlap: false, reregister: false });
  });

  it("takes every flag", () => {
    expect(parseSoakArgs(["--seed=9", "--minutes", "4", "--rounds=20", "--nodes=5", "--segments=2", "--dual-stack", "--ha", "--overlap", "--reregister", "--deadline=60"], 1))
      .toEqual({ seed: 9, minutes: 4, rounds: 20, nodes: 5, segments: 2, dualStack: true, ha: true, overlap: true, reregister: true, deadlineSeconds: 60 });
  });

  it.each([["--nodes=1"], ["--segments=5"], ["--minutes=0"], ["--seed=-1"], ["--seed=x"], ["--bogus"], ["stray"]])("refuses %s", (arg) => {
    expect(() => parseSoakArgs([arg], 1)).toThrow(SoakUsageError);
  });

  it("answers --help with the usage", () => {
    expect(parseSoakArgs(["--help"], 1)).toBe("help");
  });

  it("replays a run with its seed and layout", () => {
    const options = parseSoakArgs(["--seed=9", "--segments=2", "--dual-stack", "--ha", "--minutes=4"], 1);
    expect(options !== "help" && replayArgs(options)).toBe("--seed=9 --nodes=4 --segments=2 --dual-stack --ha");
  });
});
