// Runtime settings. The CDN URL of the model (…/<model_name>/, where latest.json is) comes from the
// page's ?model= parameter, else from VITE_MODEL_URL at build time, else /models/bloodcell/ on the
// page's own origin.
export interface ClientConfig {
  modelUrl: string;
  backends: string[];
}

export function readConfig(search: string = location.search): ClientConfig {
  const params = new URLSearchParams(search);
  const modelUrl = params.get('model') || import.meta.env.VITE_MODEL_URL || '/models/bloodcell/';
  const backend = params.get('backend');
  return { modelUrl, backends: backend ? [backend] : ['wasm'] };
}
