import { defineConfig } from 'vite';

// Relative base: the built folder can be served from any path (or a file server) as is.
export default defineConfig({
  base: './',
  build: { outDir: 'dist', target: 'es2022', chunkSizeWarningLimit: 4096 },
});
