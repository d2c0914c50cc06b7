// Compiles every contracts/src/*.sol with the pinned solc-js and writes
// contracts/artifacts/<Contract>.json (abi, bytecode, source hash).
// `node contracts/build.mjs --check` exits 1 when a committed artifact
// differs from what the sources compile to.
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const solc = require("solc");
const here = path.dirname(fileURLToPath(import.meta.url));
const srcDir = path.join(here, "src");
const outDir = path.join(here, "artifacts");
const check = process.argv.includes("--check");

const sources = {};
for (const f of fs.readdirSync(srcDir).filter((f) => f.endsWith(".sol")).sort()) {
  sources[f] = { content: fs.readFileSync(path.join(srcDir, f), "utf8") };
}
const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    // paris: no PUSH0 (shanghai) or transient storage (cancun); runs on every
    // chain we pay on. Why: README "Chain notes", EVM version.
    evmVersion: "paris",
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};
// Library imports (@openzeppelin/contracts, pinned in package.json) resolve
// from node_modules; their sources are hashed into every artifact below.
const imported = {};
function findImports(importPath) {
  try {
    const contents = fs.readFileSync(require.resolve(importPath), "utf8");
    imported[importPath] = contents;
    return { contents };
  } catch (e) {
    return { error: `not found: ${importPath} (npm ci installs it)` };
  }
}
const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
if (errors.length) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(2);
}
let stale = 0;
fs.mkdirSync(outDir, { recursive: true });
const libraryHash = crypto.createHash("sha256");
for (const k of Object.keys(imported).sort()) libraryHash.update(k + "\0" + imported[k] + "\0");
for (const [file, contracts] of Object.entries(output.contracts)) {
  if (!sources[file]) continue; // a library's own contracts: compiled into ours, no artifact
  const sourceHash = crypto.createHash("sha256").update(sources[file].content).digest("hex");
  for (const [name, c] of Object.entries(contracts)) {
    const artifact = {
      contractName: name,
      sourceName: file,
      compiler: `solc-js ${solc.version()}`,
      sourceSha256: sourceHash,
      ...(/^import /m.test(sources[file].content) ? { librariesSha256: libraryHash.copy().digest("hex") } : {}),
      abi: c.abi,
      bytecode: "0x" + c.evm.bytecode.object,
      deployedBytecode: "0x" + c.evm.deployedBytecode.object,
    };
    const text = JSON.stringify(artifact, null, 1) + "\n";
    const target = path.join(outDir, `${name}.json`);
    if (check) {
      const old = fs.existsSync(target) ? fs.readFileSync(target, "utf8") : "";
      if (old !== text) {
        console.error(`stale artifact: ${target}`);
        stale++;
      }
    } else {
      fs.writeFileSync(target, text);
      console.log(`wrote ${path.relative(process.cwd(), target)}`);
    }
  }
}
process.exit(stale ? 1 : 0);
