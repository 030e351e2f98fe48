// Firefox exposes the promise-based WebExtension API as `browser`; Chromium-family browsers as
// `chrome`, which returns promises too in Manifest V3.
export const api = globalThis.browser ?? globalThis.chrome;
