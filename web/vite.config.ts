import { defineConfig } from "vite";

// The build lands in dist/, which the server embeds (crates/server/build.rs). During
// development, `npm run dev` proxies the API to a running `dialboard demo`.
export default defineConfig({
  build: { outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 1200 },
  server: {
    proxy: { "/api": { target: "http://127.0.0.1:8080", ws: true } },
  },
});
