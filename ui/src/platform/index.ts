export type { Platform } from "./types";
export { PlatformProvider, usePlatform } from "./context";
export { createTauriPlatform } from "./tauri";
