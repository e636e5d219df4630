// Runtime settings. The CDN URL of the model (…/<model_name>/, where latest.json is) comes from the
// page's ?model= parameter, else from VITE_MODEL_URL at build time, else /models/bloodcell/ on the
// page's own origin. A model may come only from the page's origin, VITE_MODEL_URL's, or one listed in
// VITE_ALLOWED_MODEL_ORIGINS (comma-separated): a link with ?model= cannot swap in someone's model.
export interface ClientConfig {
  modelUrl: string;
  backends: string[];
}

export class ConfigError extends Error {}

/** Origins a model may be loaded from (the build's Content-Security-Policy lists the same ones). */
export function allowedOrigins(pageOrigin: string = location.origin): string[] {
  const listed = (import.meta.env.VITE_ALLOWED_MODEL_ORIGINS ?? '').split(',').map((o) => o.trim()).filter(Boolean);
  const configured = import.meta.env.VITE_MODEL_URL ? [new URL(import.meta.env.VITE_MODEL_URL, pageOrigin).origin] : [];
  return [pageOrigin, ...configured, ...listed.map((o) => new URL(o).origin)];
}

export function readConfig(search: string = location.search, pageOrigin: string = location.origin): ClientConfig {
  const params = new URLSearchParams(search);
  const modelUrl = params.get('model') || import.meta.env.VITE_MODEL_URL || '/models/bloodcell/';
  const origin = new URL(modelUrl, pageOrigin).origin;
  if (!allowedOrigins(pageOrigin).includes(origin)) {
    throw new ConfigError(`models from ${origin} are not allowed here (allowed: ${allowedOrigins(pageOrigin).join(', ')})`);
  }
  const backend = params.get('backend');
  return { modelUrl, backends: backend ? [backend] : ['wasm'] };
}
