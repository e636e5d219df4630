/// <reference types="vite/client" />
interface ImportMetaEnv {
  readonly VITE_MODEL_URL?: string;
}
