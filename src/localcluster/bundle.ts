import type { Plugin } from "esbuild";

/**
 * The podnet CLI as one ESM file (esbuild): what the image runs, and what the local cluster and the benchmarks
 * start, so every process they measure is the production artifact. One file instead of ~2,000 modules halves
 * start-up (≈0.35 s vs 0.7–0.9 s here) and saves ≈30 MB of resident memory per process. Whitespace and
 * syntax are minified (7.2 → 3.6 MB, less to read and parse at every start; 3.3 MB without whatwg-url, below);
 * identifiers are kept and there is no source map, so stack traces still name functions: --enable-source-maps
 * would parse a 5.7 MB map at start and cost 120 MB per process.
 */
/**
 * An ES-module import of node:http evaluates every export of it, including the lazy WebSocket/CloseEvent
 * getters that load Node's bundled undici: +13 MB resident and +30 ms start-up per process (measured on
 * Node 24). podnet, hpagent and client-node import it that way; in the bundle they get it through require(),
 * which leaves those getters alone.
 */
const requireNodeHttp: Plugin = {
  name: "require-node-http",
  setup(build) {
    build.onResolve({ filter: /^(node:)?http$/ }, (args) => (args.kind === "import-statement" ? { path: "node:http", namespace: "podnet-require" } : undefined));
    build.onLoad({ filter: /.*/, namespace: "podnet-require" }, () => ({ contents: 'module.exports = require("node:http");', loader: "js" }));
  },
};

/**
 * node-fetch (client-node's HTTP client) takes URL from Node and falls back to the whatwg-url package only
 * where Node has none, which never happens on Node 24. Loading that package anyway builds tr46's Unicode
 * mapping table at every start; the bundle gets Node's own URL under that name instead.
 */
const nodeUrlForWhatwgUrl: Plugin = {
  name: "node-url-for-whatwg-url",
  setup(build) {
    build.onResolve({ filter: /^whatwg-url$/ }, () => ({ path: "whatwg-url", namespace: "podnet-node-url" }));
    build.onLoad({ filter: /.*/, namespace: "podnet-node-url" }, () => ({ contents: "module.exports = { URL: globalThis.URL };", loader: "js" }));
  },
};

export async function buildBundle(outfile: string): Promise<string> {
  // esbuild is a build-time dependency: loaded only when a bundle is built from sources, never by the bundle.
  const { build } = await import("esbuild");
  await build({
    entryPoints: [new URL("../cli/main.ts", import.meta.url).pathname],
    outfile, bundle: true, platform: "node", target: "node24", format: "esm", minifyWhitespace: true, minifySyntax: true,
    external: ["esbuild"], logLevel: "warning", plugins: [requireNodeHttp, nodeUrlForWhatwgUrl],
    // client-node's dependencies are CommonJS and call require(); give the ESM bundle one.
    banner: { js: "import { createRequire as podnetRequire } from 'node:module'; const require = podnetRequire(import.meta.url);" },
  });
  return outfile;
}
