// Runs the graphql-http server audit against a URL and prints one JSON line per audit.
// usage: node graphql_http_audit.cjs URL NODE_PREFIX
const { createRequire } = require("node:module");
const path = require("node:path");
const [url, prefix] = process.argv.slice(2);
const requireFromPrefix = createRequire(path.join(prefix, "package.json"));
const { auditServer } = requireFromPrefix("graphql-http");

auditServer({ url }).then(
  (results) => {
    for (const r of results) {
      console.log(JSON.stringify({ id: r.id, name: r.name, status: r.status, reason: r.reason || null }));
    }
  },
  (error) => {
    console.error(error);
    process.exit(2);
  },
);
