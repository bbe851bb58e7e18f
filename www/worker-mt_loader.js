// The threaded engine worker (xtask/src/threaded.rs builds worker-mt.js), started by the
// page where it is cross-origin isolated; Trunk writes the same shim for the other build.
// `m1Stage` says how far the start got (the engine's code takes it over once it runs).
self.m1Stage = "loading the engine's glue (worker-mt.js)";
importScripts("./worker-mt.js");
self.m1Stage = "fetching and compiling the engine (worker-mt_bg.wasm)";
wasm_bindgen("./worker-mt_bg.wasm").catch((e) => {
  self.m1Stage = `the engine did not start: ${e}`;
  // A rejection in a worker never reaches the page; an uncaught error does, as the
  // worker's `error` event, which the UI reports ("the engine worker stopped: …").
  setTimeout(() => { throw e; });
});
