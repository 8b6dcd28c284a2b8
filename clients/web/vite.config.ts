import { defineConfig } from 'vite';

// A static single-page app: `vite build` writes dist/, served from its own origin (the API allows it through
// GROUPS_API_CORS_ORIGINS). dist/config.json, when present, says where the API is.
export default defineConfig({
  base: './',
  server: { host: '127.0.0.1', port: 5173, strictPort: true },
  preview: { host: '127.0.0.1', port: 4173, strictPort: true },
});
