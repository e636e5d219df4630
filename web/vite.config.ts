import { defineConfig, loadEnv, type Plugin } from 'vite';

/** The page's Content-Security-Policy: scripts and everything else from the page's own origin; the
 * model (connect-src) also from the origins config.ts allows. wasm needs 'wasm-unsafe-eval'. */
function contentSecurityPolicy(env: Record<string, string>): Plugin {
  const origins = [env.VITE_MODEL_URL, ...(env.VITE_ALLOWED_MODEL_ORIGINS ?? '').split(',')]
    .map((u) => u?.trim()).filter((u) => u && /^https?:\/\//.test(u)).map((u) => new URL(u).origin);
  const policy = [
    "default-src 'self'", "script-src 'self' 'wasm-unsafe-eval'", `connect-src 'self' ${[...new Set(origins)].join(' ')}`.trim(),
    "img-src 'self' blob: data:", "style-src 'self'", "worker-src 'self' blob:", "object-src 'none'",
    "base-uri 'self'", "form-action 'none'",
  ].join('; ');
  return {
    name: 'content-security-policy',
    apply: 'build',
    transformIndexHtml: (html) => html.replace('<head>',
      `<head>\n    <meta http-equiv="Content-Security-Policy" content="${policy}" />`),
  };
}

// Relative base: the built folder can be served from any path (or a file server) as is.
export default defineConfig(({ mode }) => ({
  base: './',
  // asset-manifest.json: every built file, for the service worker to keep at install (public/sw.js).
  build: { outDir: 'dist', target: 'es2022', chunkSizeWarningLimit: 4096, manifest: 'asset-manifest.json' },
  plugins: [contentSecurityPolicy(loadEnv(mode, process.cwd(), 'VITE_'))],
}));
