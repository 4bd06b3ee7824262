import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// The build is loaded from Tauri's custom protocol: relative asset paths, nothing external.
export default defineConfig({
  base: "./",
  plugins: [react()],
  clearScreen: false,
  server: {
    port: 5173,
    strictPort: true,
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // Oldest engines Tauri v2 runs on: WebView2 (Chromium) and WKWebView/WebKitGTK (Safari 13+).
    target: ["es2021", "chrome105", "safari15"],
    sourcemap: false,
  },
  test: {
    environment: "jsdom",
    setupFiles: ["./src/test/setup.ts"],
    css: false,
    restoreMocks: true,
  },
});
