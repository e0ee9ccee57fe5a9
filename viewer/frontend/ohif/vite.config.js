// Bundles roundTrip.js for Node (`vite build --config ohif/vite.config.js --outDir DIR`): the
// adapters' ESM imports @babel/runtime, which it does not depend on (it ships @babel/runtime-corejs2),
// so plain `node` cannot load it; the bundle resolves that and inlines everything.
import { resolve } from 'node:path';
import { defineConfig } from 'vite';

export default defineConfig({
  publicDir: false,
  logLevel: 'warn',
  resolve: { alias: [{ find: /^@babel\/runtime\//, replacement: '@babel/runtime-corejs2/' }] },
  ssr: { noExternal: true, target: 'node' },
  build: {
    ssr: resolve(import.meta.dirname, 'roundTrip.js'),
    target: 'node20',
    emptyOutDir: true,
    minify: false,
    rollupOptions: { output: { format: 'es', entryFileNames: 'roundTrip.mjs', codeSplitting: false } },
  },
});
