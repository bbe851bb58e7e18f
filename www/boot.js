// Boots the UI's wasm. A file, not an inline script, so the page's CSP forbids inline code.
import init from './m1-app.js';

const showBootError = (message) => {
  const el = document.getElementById('boot-error');
  if (el) {
    el.hidden = false;
    el.textContent = message;
  }
};

if (typeof WebAssembly !== 'object') {
  showBootError('This browser cannot run WebAssembly, which m1 needs.');
} else {
  init({ module_or_path: './m1-app_bg.wasm' }).then((wasm) => {
    // The UI's own WebAssembly memory in bytes, for diagnostics (the kiosk soak test).
    globalThis.m1UiMemoryBytes = () => wasm.memory.buffer.byteLength;
  }).catch((e) => {
    showBootError(`m1 could not start: ${e && e.message ? e.message : e}`);
  });
}

// The app shell is cached for offline use (kiosks); models live in OPFS, not here.
if ('serviceWorker' in navigator && location.protocol !== 'file:') {
  navigator.serviceWorker.register('./sw.js').catch(() => {});
}
