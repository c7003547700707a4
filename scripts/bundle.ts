// make bundle: dist/podnet.mjs, the single-file CLI the image runs.
import { buildBundle } from "../src/localcluster/bundle.js";

const out = await buildBundle(process.argv[2] ?? "dist/podnet.mjs");
console.log(`bundled ${out}`);
