// Validate AsyncAPI documents with the official parser (@asyncapi/parser).
// Usage: node validate.js FILE...   Prints one JSON line per file:
// {"file", "errors": [...], "warnings": [...], "infos": [...]}; exit status 1 when any
// file has a diagnostic of severity error (or cannot be parsed into a document).
'use strict';
const fs = require('fs');
const { Parser } = require('@asyncapi/parser');

const SEVERITY = { 0: 'errors', 1: 'warnings', 2: 'infos', 3: 'infos' };

async function check(parser, file) {
  const { document, diagnostics } = await parser.parse(fs.readFileSync(file, 'utf8'), {
    source: file,
  });
  const out = { file, errors: [], warnings: [], infos: [] };
  for (const d of diagnostics) {
    out[SEVERITY[d.severity] || 'infos'].push({
      code: d.code,
      message: d.message,
      path: (d.path || []).join('.'),
    });
  }
  if (!document && out.errors.length === 0) {
    out.errors.push({ code: 'no-document', message: 'the parser made no document', path: '' });
  }
  return out;
}

async function main(files) {
  const parser = new Parser();
  let failed = false;
  for (const file of files) {
    const out = await check(parser, file);
    failed = failed || out.errors.length > 0;
    process.stdout.write(JSON.stringify(out) + '\n');
  }
  return failed ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(String(err && err.stack ? err.stack : err) + '\n');
    process.exit(2);
  },
);
