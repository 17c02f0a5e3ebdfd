// Copies the third-party browser builds the dashboard needs from node_modules into vendor/,
// where web.go embeds them (`//go:embed all:vendor`). Run with `npm run build` after `npm ci`.
import { copyFile, mkdir, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const vendor = join(here, 'vendor');

// [package, file inside the package, name in vendor/]
const files = [['mqtt', 'dist/mqtt.min.js', 'mqtt.min.js']];

await mkdir(vendor, { recursive: true });
for (const [pkg, file, name] of files) {
  const dir = join(here, 'node_modules', pkg);
  let version;
  try {
    version = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')).version;
  } catch {
    console.error(`build: ${pkg} is not installed; run \`npm ci\` in web/ first`);
    process.exit(1);
  }
  const from = join(dir, file);
  const to = join(vendor, name);
  await copyFile(from, to);
  const { size } = await stat(to);
  console.log(`build: ${pkg}@${version} ${file} -> vendor/${name} (${size} bytes)`);
}
