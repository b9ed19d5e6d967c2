// Reads a JSON list of Mermaid diagrams on stdin and prints a JSON list of results:
// {"ok": true, "type": "xychart"} or {"ok": false, "error": "..."}.
// Mermaid's own parser (the one GitHub's renderer runs) in jsdom, offline.
import { JSDOM } from "jsdom";

const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
globalThis.DOMParser = dom.window.DOMParser;
const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false });

let input = "";
for await (const chunk of process.stdin) input += chunk;
const results = [];
for (const text of JSON.parse(input)) {
  try {
    const parsed = await mermaid.parse(text);
    results.push({ ok: true, type: parsed.diagramType });
  } catch (error) {
    results.push({ ok: false, error: String(error).slice(0, 500) });
  }
}
process.stdout.write(JSON.stringify(results));
