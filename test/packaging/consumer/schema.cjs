// The config document's JSON Schema as a user reaches it: by the package's export (for tools), and
// at the path a config file's "$schema" names (./node_modules/proxyless/dist/config-file.schema.json).
const fs = require('node:fs');

const resolved = require.resolve('proxyless/config-file.schema.json');
const schema = require('proxyless/config-file.schema.json');
const byPath = JSON.parse(fs.readFileSync('node_modules/proxyless/dist/config-file.schema.json', 'utf8'));
if (JSON.stringify(byPath) !== JSON.stringify(schema)) throw new Error('the two copies differ');
process.stdout.write(JSON.stringify({ resolved: fs.realpathSync(resolved), schema }));
