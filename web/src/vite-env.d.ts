/// <reference types="vite/client" />
interface ImportMetaEnv {
  readonly VITE_MODEL_URL?: string;
  readonly VITE_ALLOWED_MODEL_ORIGINS?: string;
}
