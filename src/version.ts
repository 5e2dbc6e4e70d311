/** The gateway version; release builds stamp it (see build.ts). */
export const VERSION = "0.1.0-dev";
