/// <reference types="vite/client" />
interface ImportMetaEnv {
  readonly VITE_GROUPS_API_URL?: string;
}
