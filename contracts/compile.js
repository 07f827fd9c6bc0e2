// Compiles the Solidity files named on the command line with solcjs (the npm `solc` package
// that ci/ethereum installs) and prints {"ContractName": {"abi": [...], "bytecode": "0x..."}}
// on stdout. Any compiler error is printed on stderr and exits 1.
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const sources = {};
for (const file of process.argv.slice(2)) {
  sources[path.basename(file)] = { content: fs.readFileSync(file, "utf8") };
}
const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    // Paris has no PUSH0, so the bytecode runs on every EVM the tests might use.
    evmVersion: "paris",
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === "error");
if (errors.length > 0) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}
const contracts = {};
for (const file of Object.keys(output.contracts || {})) {
  for (const [name, c] of Object.entries(output.contracts[file])) {
    contracts[name] = { abi: c.abi, bytecode: "0x" + c.evm.bytecode.object };
  }
}
process.stdout.write(JSON.stringify(contracts) + "\n");
