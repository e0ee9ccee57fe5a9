// Builds the reading page into static/viewer/ with stable names (read.js, read.css) that
// viewer/templates/viewer/read.html references; code-split chunks, workers and codec WASM
// files get hashed names under static/viewer/assets/.
import { resolve } from 'node:path';
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/static/viewer/',
  publicDir: false,
  // The image loader starts its decode workers with new URL(..., import.meta.url); pre-bundling breaks that.
  optimizeDeps: { exclude: ['@cornerstonejs/dicom-image-loader'] },
  worker: { format: 'es' },
  build: {
    target: 'esnext',
    outDir: resolve(import.meta.dirname, '../../static/viewer'),
    emptyOutDir: true,
    chunkSizeWarningLimit: 6000,
    rollupOptions: {
      input: { read: resolve(import.meta.dirname, 'src/main.js') },
      output: {
        entryFileNames: '[name].js',
        chunkFileNames: 'assets/[name]-[hash].js',
        assetFileNames: (asset) =>
          (asset.names?.[0] || asset.name || '').endsWith('.css') ? 'read.css' : 'assets/[name]-[hash][extname]',
      },
    },
  },
});
