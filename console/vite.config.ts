import { defineConfig } from "vite";

// Preact through Vite's own JSX transform (no Babel plugin): the automatic runtime from preact.
export default defineConfig({
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // The polyfill would be an inline script, which the console's Content-Security-Policy refuses.
    modulePreload: { polyfill: false },
    // Everything is served by the cloud from its own origin: no inlined scripts, hashed file names.
    assetsInlineLimit: 0,
    sourcemap: false,
    target: "es2022",
  },
});
