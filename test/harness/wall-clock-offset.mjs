// Loaded with `node --import` into a process under test: its wall clock (Date.now(), new Date()) is off by
// WALL_CLOCK_OFFSET_MS, or by the number in the file WALL_CLOCK_OFFSET_FILE, read again on SIGUSR2 (a clock
// stepped while running, as NTP or an operator steps one). performance.now() and timers are left alone: a host
// whose wall clock is skewed or stepped keeps its monotonic clock, and that is the difference under test.
import { readFileSync } from "node:fs";
import process from "node:process";

const file = process.env.WALL_CLOCK_OFFSET_FILE;
let offsetMs = Number(process.env.WALL_CLOCK_OFFSET_MS ?? 0);
const readOffset = () => {
  try { offsetMs = Number(readFileSync(file, "utf8").trim()) || 0; } catch { /* unreadable: the clock stays where it was */ }
};
if (file) {
  readOffset();
  process.on("SIGUSR2", readOffset);
}

const RealDate = Date;
const realNow = RealDate.now.bind(RealDate);
class OffsetDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(realNow() + offsetMs);
    else super(...args);
  }
  static now() { return realNow() + offsetMs; }
}
globalThis.Date = OffsetDate;
