// Starts ganache (the npm package that ci/ethereum installs) on 127.0.0.1 and prints its
// JSON-RPC URL on stdout once it listens. Options: --port N (0 = a free port), --chain-id N,
// --exit-on-stdin-eof (stop when the parent closes stdin, so a test that dies leaves no node
// behind). The wallet is deterministic, so account addresses are the same on every run.
"use strict";
const ganache = require("ganache");

let port = 0;
let chainId = 1337;
let exitOnStdinEof = false;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--port") port = Number(args[++i]);
  else if (args[i] === "--chain-id") chainId = Number(args[++i]);
  else if (args[i] === "--exit-on-stdin-eof") exitOnStdinEof = true;
  else {
    console.error(`ganache.js: unknown argument ${args[i]}`);
    process.exit(2);
  }
}

const server = ganache.server({
  wallet: { deterministic: true },
  chain: { chainId },
  logging: { quiet: true },
});
server.listen(port, "127.0.0.1", (err) => {
  if (err) {
    console.error(`ganache.js: cannot listen: ${err}`);
    process.exit(1);
  }
  process.stdout.write(`http://127.0.0.1:${server.address().port}\n`);
});
const stop = () => server.close().finally(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
if (exitOnStdinEof) {
  process.stdin.on("data", () => {});
  process.stdin.on("end", stop);
  process.stdin.on("close", stop);
}
